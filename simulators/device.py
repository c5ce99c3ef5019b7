"""The interface every simulated device implements, and the snapshot the kiosk reports."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

    @property
    def faults(self) -> list[str]:
        """The faults and actions :meth:`fault` accepts, e.g. ``["jam", "unplug"]``."""
        ...

    # A device that produces files (a printer's receipts) also has ``artifacts: list[str]``, their
    # absolute paths, oldest first; it is optional, so it is read with getattr (see DeviceView.of).

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

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """Make fault or action ``name`` (one of :attr:`faults`) happen now.

        :param params: the fault's optional parameters, e.g. ``{"seconds": "5"}``.
        :raises ValueError: an unknown fault, or a parameter it does not take or cannot parse;
            the message says what is accepted.
        """
        ...


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the kiosk reports about one device at one instant."""

    name: str
    kind: str
    endpoint: str
    state: str
    faults: tuple[str, ...] = field(default=())
    artifacts: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, device: SimDevice) -> DeviceView:
        """Snapshot ``device``'s current attributes."""
        return cls(
            name=device.name,
            kind=device.kind,
            endpoint=device.endpoint,
            state=device.state,
            faults=tuple(device.faults),
            artifacts=tuple(getattr(device, "artifacts", ())),
        )


def check_params(fault: str, params: Mapping[str, str], allowed: Sequence[str]) -> None:
    """Refuse parameters that fault ``fault`` does not take.

    :raises ValueError: naming the unknown keys and the accepted ones.
    """
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) or "no parameters"
        raise ValueError(f"fault {fault!r} does not take {', '.join(unknown)} (it takes: {takes})")


def int_param(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    """Whole-number parameter ``key``, ``default`` when absent.

    :raises ValueError: not a whole number from ``low`` to ``high``.
    """
    text = params.get(key)
    if text is None:
        return default
    with contextlib.suppress(ValueError):
        value = int(text)
        if low <= value <= high:
            return value
    raise ValueError(f"{key} must be a whole number from {low} to {high}, not {text!r}")


def seconds_param(params: Mapping[str, str], key: str, default: float, high: float) -> float:
    """Duration parameter ``key`` in seconds, ``default`` when absent.

    :raises ValueError: not a number from 0 to ``high``.
    """
    text = params.get(key)
    if text is None:
        return default
    with contextlib.suppress(ValueError):
        value = float(text)
        if 0 <= value <= high:  # also refuses nan
            return value
    raise ValueError(f"{key} must be a number of seconds from 0 to {high:g}, not {text!r}")
