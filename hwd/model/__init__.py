"""Pure value types shared by every layer: no I/O, no protobuf."""

from hwd.model.commands import CommandRecord, CommandState
from hwd.model.events import (
    CommandOutcomeUnknown,
    DaemonLifecycle,
    DeviceStatusChanged,
    Event,
    EventPayload,
    LeaseChanged,
    NoteAdded,
    payload_from_json,
    payload_to_json,
)
from hwd.model.leases import Lease, LeaseChange, LifecyclePhase
from hwd.model.status import DeviceState, DeviceStatus

__all__ = [
    "CommandOutcomeUnknown",
    "CommandRecord",
    "CommandState",
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
    "NoteAdded",
    "payload_from_json",
    "payload_to_json",
]
