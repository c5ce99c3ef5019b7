"""Journaled events: an envelope with a sequence number and one typed payload."""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any

from hwd.model.leases import LeaseChange, LifecyclePhase
from hwd.model.status import DeviceState, DeviceStatus


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


EventPayload = DeviceStatusChanged | NoteAdded | DaemonLifecycle | LeaseChanged | CommandOutcomeUnknown

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (DeviceStatusChanged, NoteAdded, DaemonLifecycle, LeaseChanged, CommandOutcomeUnknown)
}
# Enum and nested dataclass fields, so that decoding can rebuild them from plain JSON.
_FIELD_TYPES: dict[str, type[Any]] = {
    "status": DeviceStatus,
    "state": DeviceState,
    "phase": LifecyclePhase,
    "change": LeaseChange,
}


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


def _rebuild(cls: type[Any], data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
    kwargs = {}
    for name, raw in data.items():
        kind = _FIELD_TYPES.get(name)
        if kind is not None and dataclasses.is_dataclass(kind):
            kwargs[name] = _rebuild(kind, raw)
        else:
            kwargs[name] = raw if kind is None else kind(raw)
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
