"""Discovery: which phone is on which USB port. Every source yields the same
:class:`hwd.model.phones.PortEvent` stream: udev on a kiosk (:class:`UdevWatcher`), the
simulated kiosk's control service (:class:`SimulatorPhones`)."""

from __future__ import annotations

from hwd.discovery.simbus import SimulatorPhones
from hwd.discovery.udev import UdevWatcher

__all__ = ["SimulatorPhones", "UdevWatcher"]
