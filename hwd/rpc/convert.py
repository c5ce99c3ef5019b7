"""Model <-> protobuf converters: protobuf exists only at this edge. Round-trip tested."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from hwd.model import (
    Alarm,
    CarouselMotion,
    CommandOutcomeUnknown,
    DaemonLifecycle,
    DeviceState,
    DeviceStatus,
    DeviceStatusChanged,
    Event,
    EventPayload,
    EvidenceCaptured,
    Lease,
    LeaseChange,
    LeaseChanged,
    LifecyclePhase,
    LockCommanded,
    LockSensors,
    MotionPhase,
    NoteAdded,
    PortChanged,
    PrintJobChanged,
)
from hwd.rpc.pb.hwd.v1 import common_pb2 as pb
from hwd.services.registry import DeviceRegistry


def ts(ns: int) -> Timestamp:
    """A Timestamp from wall-clock nanoseconds since the epoch."""
    out = Timestamp()
    out.FromNanoseconds(ns)
    return out


def status_to_pb(status: DeviceStatus) -> pb.DeviceStatus:
    """DeviceStatus to protobuf."""
    return pb.DeviceStatus(
        device=status.device,
        state=pb.DeviceState.Value(f"DEVICE_STATE_{status.state.value}"),
        reason=status.reason,
        detail=status.detail,
        recovery_hint=status.recovery_hint,
        since=ts(status.since_ns),
    )


def device_status(registry: DeviceRegistry, device: str) -> pb.DeviceStatus:
    """A device's status from the registry; STARTING before its first reading."""
    status = registry.get(device) if device in registry else DeviceStatus(device, DeviceState.STARTING, "STARTING")
    return status_to_pb(status)


def status_from_pb(msg: pb.DeviceStatus) -> DeviceStatus:
    """Protobuf to DeviceStatus."""
    state = DeviceState(pb.DeviceState.Name(msg.state).removeprefix("DEVICE_STATE_"))
    return DeviceStatus(msg.device, state, msg.reason, msg.detail, msg.recovery_hint, msg.since.ToNanoseconds())


def lease_to_pb(lease: Lease, *, reveal_id: bool) -> pb.Lease:
    """Lease to protobuf; the id (the holder's secret) only for its holder."""
    return pb.Lease(
        lease_id=lease.lease_id if reveal_id else "",
        device=lease.device,
        holder=lease.holder,
        expires=ts(lease.expires_ns),
    )


def event_to_pb(event: Event) -> pb.Event:
    """Event to protobuf, with its payload in the matching oneof field."""
    msg = pb.Event(sequence=event.sequence, time=ts(event.time_ns), source=event.source)
    p = event.payload
    match p:
        case DeviceStatusChanged():
            msg.device_status_changed.status.CopyFrom(status_to_pb(p.status))
        case NoteAdded():
            msg.note_added.CopyFrom(pb.NoteAdded(text=p.text, author=p.author))
        case DaemonLifecycle():
            phase = pb.LifecyclePhase.Value(f"LIFECYCLE_PHASE_{p.phase.value}")
            msg.daemon_lifecycle.CopyFrom(pb.DaemonLifecycle(phase=phase, version=p.version, simulated=p.simulated))
        case LeaseChanged():
            change = pb.LeaseChange.Value(f"LEASE_CHANGE_{p.change.value}")
            msg.lease_changed.CopyFrom(pb.LeaseChanged(change=change, device=p.device, holder=p.holder))
        case CommandOutcomeUnknown():
            msg.command_outcome_unknown.CopyFrom(
                pb.CommandOutcomeUnknown(request_id=p.request_id, method=p.method, started=ts(p.started_ns))
            )
        case CarouselMotion():
            msg.carousel_motion.CopyFrom(
                pb.CarouselMotion(
                    phase=pb.MotionPhase.Value(f"MOTION_PHASE_{p.phase.value}"),
                    target_slot=p.target_slot,
                    current_slot=p.current_slot,
                )
            )
        case LockSensors():
            msg.lock_sensors.CopyFrom(pb.LockSensors(**dataclasses.asdict(p)))
        case LockCommanded():
            msg.lock_commanded.CopyFrom(pb.LockCommanded(**dataclasses.asdict(p)))
        case Alarm():
            msg.alarm.CopyFrom(pb.Alarm(code=p.code, detail=p.detail))
        case PrintJobChanged():
            msg.print_job_changed.CopyFrom(pb.PrintJobChanged(**dataclasses.asdict(p)))
        case PortChanged():
            msg.port_changed.CopyFrom(pb.PortChanged(**dataclasses.asdict(p)))
        case EvidenceCaptured():
            msg.evidence_captured.CopyFrom(pb.EvidenceCaptured(**dataclasses.asdict(p)))
    return msg


# Payloads whose protobuf message has exactly the dataclass's fields, with the same names and types.
_PLAIN: dict[str, type[Any]] = {
    "note_added": NoteAdded,
    "lock_sensors": LockSensors,
    "lock_commanded": LockCommanded,
    "alarm": Alarm,
    "print_job_changed": PrintJobChanged,
    "port_changed": PortChanged,
    "evidence_captured": EvidenceCaptured,
}


def event_from_pb(msg: pb.Event) -> Event:
    """Protobuf to Event. :raises ValueError: when the payload is missing."""
    which = msg.WhichOneof("payload")
    payload: EventPayload
    if which in _PLAIN:
        cls = _PLAIN[which]
        sub = getattr(msg, which)
        payload = cls(**{f.name: getattr(sub, f.name) for f in dataclasses.fields(cls)})
    elif which == "device_status_changed":
        payload = DeviceStatusChanged(status_from_pb(msg.device_status_changed.status))
    elif which == "daemon_lifecycle":
        d = msg.daemon_lifecycle
        phase = LifecyclePhase(pb.LifecyclePhase.Name(d.phase).removeprefix("LIFECYCLE_PHASE_"))
        payload = DaemonLifecycle(phase, d.version, d.simulated)
    elif which == "lease_changed":
        lc = msg.lease_changed
        payload = LeaseChanged(
            LeaseChange(pb.LeaseChange.Name(lc.change).removeprefix("LEASE_CHANGE_")), lc.device, lc.holder
        )
    elif which == "command_outcome_unknown":
        c = msg.command_outcome_unknown
        payload = CommandOutcomeUnknown(c.request_id, c.method, c.started.ToNanoseconds())
    elif which == "carousel_motion":
        m = msg.carousel_motion
        payload = CarouselMotion(
            MotionPhase(pb.MotionPhase.Name(m.phase).removeprefix("MOTION_PHASE_")),
            m.target_slot if m.HasField("target_slot") else None,
            m.current_slot if m.HasField("current_slot") else None,
        )
    else:
        raise ValueError("event without payload")
    return Event(msg.sequence, msg.time.ToNanoseconds(), msg.source, payload)
