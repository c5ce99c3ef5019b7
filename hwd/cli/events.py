"""`hwd events`: the journal's event stream (Kiosk.WatchEvents), once or followed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from hwd.cli.client import error_info
from hwd.cli.kiosk import kiosk
from hwd.cli.render import clean, enum_name, timestamp, to_json
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc

TOO_SLOW = "SUBSCRIBER_TOO_SLOW"
# Reconnections in a row that bring no event before giving up (a daemon that keeps ending the stream).
MAX_EMPTY_RESUMES = 3


@dataclass
class _Cursor:
    after: int  # the last sequence printed, or where the user asked to start
    stop_at: int | None  # stop once this sequence is printed; None follows forever
    as_json: bool


def events(args: argparse.Namespace) -> int:
    """`hwd events [--after N] [--follow]`: prints events after N, up to the newest or forever.

    Without --follow the newest sequence is read first (GetStatus) and printing stops there.
    A stream ended because this client fell behind (SUBSCRIBER_TOO_SLOW) is resumed from the
    sequence the daemon reports; any other error ends the command.
    """
    with kiosk(args) as stub:
        stop_at = None
        if not args.follow:
            status = stub.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=args.timeout)
            if args.after >= status.last_sequence:
                return 0
            stop_at = status.last_sequence
        try:
            _stream(stub, _Cursor(args.after, stop_at, args.json))
        except KeyboardInterrupt:
            if not args.follow:
                raise
    return 0


def _stream(stub: kiosk_pb2_grpc.KioskStub, cursor: _Cursor) -> None:
    empty_resumes = 0
    while True:
        start = cursor.after
        try:
            _watch_once(stub, cursor)
            return
        except grpc.RpcError as error:
            resume = resume_point(error, cursor.after)
            empty_resumes = empty_resumes + 1 if cursor.after == start else 0
            if resume is None or empty_resumes > MAX_EMPTY_RESUMES:
                raise
        print(f"hwd: fell behind the event stream; resuming after event {resume}", file=sys.stderr, flush=True)
        cursor.after = resume
        if cursor.stop_at is not None and resume >= cursor.stop_at:
            return


def _watch_once(stub: kiosk_pb2_grpc.KioskStub, cursor: _Cursor) -> None:
    call = stub.WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=cursor.after))
    try:
        for event in call:
            print(to_json(event, indent=None) if cursor.as_json else event_line(event), flush=True)
            cursor.after = max(cursor.after, event.sequence)
            if cursor.stop_at is not None and event.sequence >= cursor.stop_at:
                return
    finally:
        call.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs


def resume_point(error: grpc.RpcError, printed: int) -> int | None:
    """Where to resume after `error`: None unless it is SUBSCRIBER_TOO_SLOW.

    :param printed: the last sequence printed, used when the daemon did not say its last_sequence.
    """
    if not isinstance(error, grpc.Call) or error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    info = error_info(error)
    if info is None or info.reason != TOO_SLOW:
        return None
    value = info.metadata.get("last_sequence", "")
    return int(value) if value.isdigit() else printed


def event_line(event: common_pb2.Event) -> str:
    """One event for humans: ``SEQ  TIME  SOURCE  KIND  summary``."""
    kind = event.WhichOneof("payload") or "-"
    seq = str(event.sequence).rjust(6)
    parts = [seq, timestamp(event.time), clean(event.source).ljust(12), kind.ljust(23), clean(summary(event))]
    return "  ".join(parts).rstrip()


def summary(event: common_pb2.Event) -> str:
    """A short readable rendering of the event's payload fields."""
    kind = event.WhichOneof("payload")
    if kind is None:
        return ""
    payload: Message = getattr(event, kind)
    render = _SUMMARIES.get(kind, generic_summary)
    return render(payload)


def generic_summary(payload: Message) -> str:
    """``name=value`` for every set field (for payloads newer than this client)."""
    return " ".join(f"{field.name}={_value(field, value)}" for field, value in payload.ListFields())


def _value(field: Any, value: Any) -> str:
    if field.enum_type is not None and isinstance(value, int):
        return enum_name(field.enum_type, value)
    if isinstance(value, Message):
        return f"{{{generic_summary(value)}}}"
    return str(value)


def _status_changed(p: common_pb2.DeviceStatusChanged) -> str:
    s = p.status
    text = f"{s.device} {enum_name(common_pb2.DeviceState.DESCRIPTOR, s.state)} {s.reason}".rstrip()
    text += f": {s.detail}" if s.detail else ""
    return text + (f" (hint: {s.recovery_hint})" if s.recovery_hint else "")


def _note_added(p: common_pb2.NoteAdded) -> str:
    return f"{p.author or 'anonymous'}: {p.text}"


def _lifecycle(p: common_pb2.DaemonLifecycle) -> str:
    phase = enum_name(common_pb2.LifecyclePhase.DESCRIPTOR, p.phase)
    return f"{phase} version {p.version}" + (" (simulated)" if p.simulated else "")


def _lease_changed(p: common_pb2.LeaseChanged) -> str:
    return f"{enum_name(common_pb2.LeaseChange.DESCRIPTOR, p.change)} {p.device} by {p.holder}"


def _outcome_unknown(p: common_pb2.CommandOutcomeUnknown) -> str:
    return f"{p.method} request {p.request_id} started {timestamp(p.started)}: outcome unknown"


def _carousel_motion(p: common_pb2.CarouselMotion) -> str:
    text = f"carousel {enum_name(common_pb2.MotionPhase.DESCRIPTOR, p.phase)}"
    text += f" at slot {p.current_slot}" if p.HasField("current_slot") else ""
    return text + (f" (target {p.target_slot})" if p.HasField("target_slot") else " (homing)")


def _lock_sensors(p: common_pb2.LockSensors) -> str:
    bolt, door = "out" if p.bolt_extended else "in", "closed" if p.door_closed else "open"
    flags = " ".join(f"{name}={'yes' if on else 'no'}" for name, on in _lock_flags(p))
    return f"lock bolt={bolt} door={door} {flags}"


def _lock_flags(p: common_pb2.LockSensors) -> list[tuple[str, bool]]:
    return [("unlocked", p.unlocked), ("tamper", p.tamper), ("forced", p.forced)]


def _lock_commanded(p: common_pb2.LockCommanded) -> str:
    text = f"{p.action or 'command'} by {p.role or 'unknown'}"
    text += f": {p.reason}" if p.reason else ""
    extra = [f"relock {p.relock_after_s} s"] if p.relock_after_s else []
    extra += [f"request {p.request_id}"] if p.request_id else []
    return text + (f" ({', '.join(extra)})" if extra else "")


def _alarm(p: common_pb2.Alarm) -> str:
    return f"ALARM {p.code}" + (f": {p.detail}" if p.detail else "")


def _print_job_changed(p: common_pb2.PrintJobChanged) -> str:
    text = f"job {p.job_id} {p.state or 'changed'}" + (f": {p.reason}" if p.reason else "")
    return f"{text} ({p.bytes} bytes)"


_SUMMARIES: dict[str, Callable[[Any], str]] = {
    "device_status_changed": _status_changed,
    "note_added": _note_added,
    "daemon_lifecycle": _lifecycle,
    "lease_changed": _lease_changed,
    "command_outcome_unknown": _outcome_unknown,
    "carousel_motion": _carousel_motion,
    "lock_sensors": _lock_sensors,
    "lock_commanded": _lock_commanded,
    "alarm": _alarm,
    "print_job_changed": _print_job_changed,
}
