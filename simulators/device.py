"""The interface every simulated device implements, and the snapshot the kiosk reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class SimDevice(Protocol):
    """One simulated piece of kiosk hardware, served over its real transport.

    Rules a device follows:

    - The constructor does no I/O: no sockets, ptys or files are opened before :meth:`start`.
    - ``name`` is unique within a kiosk and stable; it is the key in the endpoints file.
    - ``endpoint`` is final once :meth:`start` has returned ("tcp:127.0.0.1:PORT", a pty path,
      a URL) and stays the same across :meth:`reset`.
    - Every method is called from the simulator's event loop; blocking work goes to a thread.
    """

    @property
    def name(self) -> str:
        """Device name, e.g. ``"carousel"``; unique within the kiosk."""
        ...

    @property
    def kind(self) -> str:
        """Device kind, e.g. ``"adb-phone"``, ``"printer"``."""
        ...

    @property
    def endpoint(self) -> str:
        """Where a client reaches the device; valid after :meth:`start`."""
        ...

    @property
    def state(self) -> str:
        """Short human-readable state, e.g. ``"idle"`` or ``"fault: jam"``."""
        ...

    async def start(self) -> None:
        """Open the transport and begin serving.

        :raises Exception: anything; the kiosk then stops the devices already started and the
            simulator exits with status 1.
        """
        ...

    async def stop(self) -> None:
        """Stop serving and release every resource. Called once, after a successful start."""
        ...

    async def reset(self) -> None:
        """Go back to the initial state (faults cleared, phones unplugged), keeping the endpoint."""
        ...


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the kiosk reports about one device at one instant."""

    name: str
    kind: str
    endpoint: str
    state: str

    @classmethod
    def of(cls, device: SimDevice) -> DeviceView:
        """Snapshot ``device``'s current attributes."""
        return cls(name=device.name, kind=device.kind, endpoint=device.endpoint, state=device.state)
