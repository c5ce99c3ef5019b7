"""Journaled events: an envelope with a sequence number and one typed payload."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from dataclasses import dataclass
from typing import Any

from hwd.model.leases import LeaseChange, LifecyclePhase
from hwd.model.status import DeviceStatus


@dataclass(frozen=True)
class DeviceStatusChanged:
    """A device changed state."""

    status: DeviceStatus


@dataclass(frozen=True)
class NoteAdded:
    """A technician wrote a note."""

    text: str
    author: str


@dataclass(frozen=True)
class DaemonLifecycle:
    """The daemon started or is stopping."""

    phase: LifecyclePhase
    version: str
    simulated: bool


@dataclass(frozen=True)
class LeaseChanged:
    """A lease changed hands (the lease id is never published)."""

    change: LeaseChange
    device: str
    holder: str


@dataclass(frozen=True)
class CommandOutcomeUnknown:
    """A command was cut by a crash; whether it acted is unknown."""

    request_id: str
    method: str
    started_ns: int


class MotionPhase(enum.Enum):
    """Where a carousel move stands (mirrors hwd.v1.MotionPhase)."""

    STARTED = "STARTED"
    ARRIVED = "ARRIVED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CarouselMotion:
    """The carousel started, finished or failed a move; slots are None when unknown."""

    phase: MotionPhase
    target_slot: int | None
    current_slot: int | None


@dataclass(frozen=True)
class LockSensors:
    """The bin lock's sensors changed."""

    bolt_extended: bool
    door_closed: bool
    unlocked: bool
    tamper: bool
    forced: bool


@dataclass(frozen=True)
class LockCommanded:
    """An unlock or lock was commanded (journaled before the output is written)."""

    action: str
    reason: str
    role: str
    request_id: str
    relock_after_s: int


@dataclass(frozen=True)
class Alarm:
    """A condition that needs attention: DOOR_LEFT_OPEN, DOOR_FORCED, TAMPER."""

    code: str
    detail: str


@dataclass(frozen=True)
class PrintJobChanged:
    """A print job changed state (QUEUED, PRINTING, DONE, FAILED, OUTCOME_UNKNOWN)."""

    job_id: str
    state: str
    reason: str
    bytes: int


@dataclass(frozen=True)
class PortChanged:
    """A phone port changed state; ``state`` is a PortState name, ``platform`` "ANDROID", "IOS" or ""."""

    port: str
    state: str
    reason: str
    detail: str
    session_id: str
    platform: str


@dataclass(frozen=True)
class EvidenceCaptured:
    """A camera still was kept as evidence of a phone's session."""

    evidence_id: str
    port: str
    session_id: str
    sha256: str
    format: str
    width: int
    height: int


EventPayload = (
    DeviceStatusChanged
    | NoteAdded
    | DaemonLifecycle
    | LeaseChanged
    | CommandOutcomeUnknown
    | CarouselMotion
    | LockSensors
    | LockCommanded
    | Alarm
    | PrintJobChanged
    | PortChanged
    | EvidenceCaptured
)

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        DeviceStatusChanged, NoteAdded, DaemonLifecycle, LeaseChanged, CommandOutcomeUnknown,
        CarouselMotion, LockSensors, LockCommanded, Alarm, PrintJobChanged, PortChanged, EvidenceCaptured,
    )
}  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One journaled event; ``time_ns`` is wall-clock nanoseconds since the epoch."""

    sequence: int
    time_ns: int
    source: str
    payload: EventPayload


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


_TYPES: dict[type[Any], dict[str, Any]] = {}


def _field_types(cls: type[Any]) -> dict[str, Any]:
    """Each field's type, so that enums and nested dataclasses can be rebuilt from plain JSON."""
    if cls not in _TYPES:
        _TYPES[cls] = typing.get_type_hints(cls)
    return _TYPES[cls]


def _rebuild(cls: type[Any], data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
    hints = _field_types(cls)
    kwargs = {}
    for name, raw in data.items():
        kind = hints.get(name)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            kwargs[name] = kind(raw)
        elif isinstance(kind, type) and dataclasses.is_dataclass(kind):
            kwargs[name] = _rebuild(kind, raw)
        else:
            kwargs[name] = raw
    return cls(**kwargs)


def payload_to_json(payload: EventPayload) -> tuple[str, str]:
    """Encodes a payload for the journal.

    :returns: (kind, JSON text); ``payload_from_json(kind, text)`` gives the payload back.
    """
    return type(payload).__name__, json.dumps(_plain(payload), separators=(",", ":"), sort_keys=True)


def payload_from_json(kind: str, text: str) -> EventPayload:
    """Decodes what :func:`payload_to_json` wrote.

    :raises ValueError: on an unknown kind or a malformed document.
    """
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    try:
        payload: EventPayload = _rebuild(cls, json.loads(text))
    except (TypeError, KeyError, ValueError, RecursionError) as exc:
        raise ValueError(f"malformed {kind} event: {exc}") from exc
    return payload
