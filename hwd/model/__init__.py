"""Pure value types shared by every layer: no I/O, no protobuf."""

from hwd.model.commands import CommandRecord, CommandState
from hwd.model.events import (
    Alarm,
    CarouselMotion,
    CommandOutcomeUnknown,
    DaemonLifecycle,
    DeviceStatusChanged,
    Event,
    EventPayload,
    LeaseChanged,
    LockCommanded,
    LockSensors,
    MotionPhase,
    NoteAdded,
    PrintJobChanged,
    payload_from_json,
    payload_to_json,
)
from hwd.model.leases import Lease, LeaseChange, LifecyclePhase
from hwd.model.peripherals import (
    CableTest,
    CarouselState,
    CommandResult,
    Connector,
    ControllerIdentity,
    LockState,
)
from hwd.model.status import DeviceState, DeviceStatus

__all__ = [
    "Alarm",
    "CableTest",
    "CarouselMotion",
    "CarouselState",
    "CommandOutcomeUnknown",
    "CommandRecord",
    "CommandResult",
    "CommandState",
    "Connector",
    "ControllerIdentity",
    "DaemonLifecycle",
    "DeviceState",
    "DeviceStatus",
    "DeviceStatusChanged",
    "Event",
    "EventPayload",
    "Lease",
    "LeaseChange",
    "LeaseChanged",
    "LifecyclePhase",
    "LockCommanded",
    "LockSensors",
    "LockState",
    "MotionPhase",
    "NoteAdded",
    "PrintJobChanged",
    "payload_from_json",
    "payload_to_json",
]
