"""hwd: the hardware abstraction daemon of a phone trade-in kiosk."""

__version__ = "0.1.0"
