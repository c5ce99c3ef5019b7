"""The simulated kiosk: fake hardware that speaks the real wire protocols, in its own process.

Run it with ``python -m simulators --dir DIR``; see ``docs/simulators.md``. A device family plugs
in by implementing :class:`SimDevice` and adding its devices in :func:`simulators.kiosk.default_devices`.
"""

from simulators.device import DeviceView, SimDevice
from simulators.kiosk import SimKiosk

__all__ = ["DeviceView", "SimDevice", "SimKiosk"]
