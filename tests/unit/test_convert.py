"""Converters round-trip: model -> protobuf -> model, and payload -> journal JSON -> payload."""

from __future__ import annotations

import contextlib
import json
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    payload_from_json,
    payload_to_json,
)
from hwd.rpc.convert import event_from_pb, event_to_pb, lease_to_pb, status_from_pb, status_to_pb
from hwd.rpc.pb.hwd.v1 import common_pb2 as pb

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
TIME_NS = st.integers(min_value=0, max_value=253402300799 * 10**9)
KINDS = tuple(cls.__name__ for cls in typing.get_args(EventPayload))

STATUS = st.builds(
    DeviceStatus,
    device=TEXT,
    state=st.sampled_from(DeviceState),
    reason=TEXT,
    detail=TEXT,
    recovery_hint=TEXT,
    since_ns=TIME_NS,
)
PAYLOAD: st.SearchStrategy[EventPayload] = st.one_of(
    st.builds(DeviceStatusChanged, status=STATUS),
    st.builds(NoteAdded, text=TEXT, author=TEXT),
    st.builds(DaemonLifecycle, phase=st.sampled_from(LifecyclePhase), version=TEXT, simulated=st.booleans()),
    st.builds(LeaseChanged, change=st.sampled_from(LeaseChange), device=TEXT, holder=TEXT),
    st.builds(CommandOutcomeUnknown, request_id=TEXT, method=TEXT, started_ns=TIME_NS),
    st.builds(
        CarouselMotion,
        phase=st.sampled_from(MotionPhase),
        target_slot=st.none() | st.integers(0, 2**32 - 1),
        current_slot=st.none() | st.integers(0, 2**32 - 1),
    ),
    st.builds(LockSensors, *(st.booleans() for _ in range(5))),
    st.builds(LockCommanded, TEXT, TEXT, TEXT, TEXT, st.integers(0, 2**32 - 1)),
    st.builds(Alarm, code=TEXT, detail=TEXT),
    st.builds(PrintJobChanged, TEXT, TEXT, TEXT, st.integers(0, 2**64 - 1)),
    st.builds(PortChanged, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT),
    st.builds(EvidenceCaptured, TEXT, TEXT, TEXT, TEXT, TEXT, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
EVENT = st.builds(Event, sequence=st.integers(1, 2**64 - 1), time_ns=TIME_NS, source=TEXT, payload=PAYLOAD)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("state", list(DeviceState))
def test_every_device_state_has_a_protobuf_value(state: DeviceState) -> None:
    msg = status_to_pb(DeviceStatus("printer", state))
    assert pb.DeviceState.Name(msg.state) == f"DEVICE_STATE_{state.value}"
    assert status_from_pb(msg).state is state


@given(STATUS)
def test_device_status_round_trips_through_protobuf(status: DeviceStatus) -> None:
    wire = status_to_pb(status).SerializeToString()
    assert status_from_pb(pb.DeviceStatus.FromString(wire)) == status


@given(EVENT)
def test_every_event_round_trips_through_protobuf(event: Event) -> None:
    wire = event_to_pb(event).SerializeToString()
    assert event_from_pb(pb.Event.FromString(wire)) == event


def test_every_payload_kind_has_its_own_oneof_field() -> None:
    status = DeviceStatus("printer", DeviceState.ONLINE)
    payloads: list[EventPayload] = [
        DeviceStatusChanged(status),
        NoteAdded("t", "a"),
        DaemonLifecycle(LifecyclePhase.STARTED, "1", False),
        LeaseChanged(LeaseChange.ACQUIRED, "printer", "ui"),
        CommandOutcomeUnknown("r", "m", 1),
        CarouselMotion(MotionPhase.ARRIVED, 3, 3),
        LockSensors(True, True, False, False, False),
        LockCommanded("unlock", "emptying", "tech", "r1", 30),
        Alarm("DOOR_FORCED", "opened while locked"),
        PrintJobChanged("j1", "DONE", "", 512),
        PortChanged("1-4.2", "READY", "OK", "", "s1", "ANDROID"),
        EvidenceCaptured("e1", "1-4.2", "s1", "ab" * 32, "JPEG", 1920, 1080),
    ]
    fields = {event_to_pb(Event(1, 0, "s", p)).WhichOneof("payload") for p in payloads}
    assert None not in fields
    assert len(fields) == len(payloads) == len(KINDS)
    assert fields == {f.name for f in pb.Event.DESCRIPTOR.oneofs_by_name["payload"].fields}


def test_an_event_without_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="payload"):
        event_from_pb(pb.Event(sequence=1, source="s"))


@pytest.mark.parametrize("reveal", [True, False])
def test_a_lease_id_is_sent_only_to_its_holder(reveal: bool) -> None:
    msg = lease_to_pb(Lease("secret", "printer", "ui", 5 * 10**9), reveal_id=reveal)
    assert (msg.lease_id, msg.device, msg.holder, msg.expires.seconds) == (
        "secret" if reveal else "",
        "printer",
        "ui",
        5,
    )


@given(PAYLOAD)
def test_every_payload_round_trips_through_journal_json(payload: EventPayload) -> None:
    kind, text = payload_to_json(payload)
    assert kind == type(payload).__name__
    assert payload_from_json(kind, text) == payload


@given(st.text().filter(lambda k: k not in KINDS), TEXT)
def test_an_unknown_kind_is_a_value_error(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        payload_from_json(kind, text)


@given(st.sampled_from(KINDS), TEXT)
def test_garbage_text_is_a_value_error(kind: str, text: str) -> None:
    with contextlib.suppress(ValueError):  # anything but a ValueError fails the test
        payload_from_json(kind, text)


@given(st.sampled_from(KINDS), JSON)
def test_any_json_document_either_decodes_or_is_a_value_error(kind: str, doc: object) -> None:
    with contextlib.suppress(ValueError):  # anything but a ValueError fails the test
        payload_from_json(kind, json.dumps(doc))


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("NoteAdded", "{"),
        ("NoteAdded", "[]"),
        ("NoteAdded", "null"),
        ("NoteAdded", '{"text":"t"}'),
        ("NoteAdded", '{"text":"t","author":"a","extra":1}'),
        ("LeaseChanged", '{"change":"STOLEN","device":"d","holder":"h"}'),
        ("DaemonLifecycle", '{"phase":null,"version":"1","simulated":false}'),
        ("DeviceStatusChanged", '{"status":5}'),
        ("DeviceStatusChanged", '{"status":{"device":"d","state":"ON","reason":"","detail":"","recovery_hint":""}}'),
        ("NoteAdded", "[" * 100_000),
    ],
)
def test_malformed_documents_are_value_errors(kind: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"malformed {kind} event"):
        payload_from_json(kind, text)
