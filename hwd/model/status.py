"""Device status in the XFS4IoT spirit: a state, a stable reason, a detail and a recovery hint."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DeviceState(enum.Enum):
    """What a device can do right now (mirrors hwd.v1.DeviceState)."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    BUSY = "BUSY"
    STARTING = "STARTING"
    NO_DEVICE = "NO_DEVICE"
    HARDWARE_ERROR = "HARDWARE_ERROR"
    USER_ERROR = "USER_ERROR"
    TAMPERED = "TAMPERED"
    STOPPING = "STOPPING"


@dataclass(frozen=True)
class DeviceStatus:
    """The status of one device; ``since_ns`` is wall-clock nanoseconds since the epoch."""

    device: str
    state: DeviceState
    reason: str = "OK"
    detail: str = ""
    recovery_hint: str = ""
    since_ns: int = 0

    def same_condition(self, other: DeviceStatus) -> bool:
        """True when ``other`` describes the same condition (ignoring when it began)."""
        return (self.state, self.reason, self.detail, self.recovery_hint) == (
            other.state,
            other.reason,
            other.detail,
            other.recovery_hint,
        )
