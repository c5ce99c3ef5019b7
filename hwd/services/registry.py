"""The device registry: the current DeviceStatus of every device, with an event on each change."""

from __future__ import annotations

import time

from hwd.errors import UnknownDevice
from hwd.model import DeviceState, DeviceStatus, DeviceStatusChanged
from hwd.services.events import EventBus

DAEMON = "daemon"


class DeviceRegistry:
    """Holds each device's status; publishes DeviceStatusChanged when its condition changes."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._status: dict[str, DeviceStatus] = {}

    async def set(
        self, device: str, state: DeviceState, reason: str = "OK", detail: str = "", recovery_hint: str = ""
    ) -> DeviceStatus:
        """Records a device's status; journals an event only when the condition changed.

        :returns: the status now in force (with its original ``since`` if nothing changed).
        """
        status = DeviceStatus(device, state, reason, detail, recovery_hint, time.time_ns())
        current = self._status.get(device)
        if current is not None and current.same_condition(status):
            return current
        self._status[device] = status
        await self._bus.publish(device, DeviceStatusChanged(status))
        return status

    def get(self, device: str) -> DeviceStatus:
        """The status of ``device``. :raises UnknownDevice:"""
        try:
            return self._status[device]
        except KeyError:
            raise UnknownDevice(f"no device named {device!r}", device=device) from None

    def devices(self) -> list[DeviceStatus]:
        """Every device but the daemon itself, sorted by name."""
        return [self._status[name] for name in sorted(self._status) if name != DAEMON]

    def __contains__(self, device: object) -> bool:
        return device in self._status
