"""PortStatus and PhoneReport survive model -> protobuf -> model; each value lands in the oneof member
of its type (a bool is a flag, never an integer)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hwd.model.phones import REPORT_FIELDS, Availability, Field, PhoneReport, Platform, PortState, PortStatus
from hwd.rpc.pb.hwd.v1 import phones_pb2
from hwd.rpc.phones import field_from_pb, field_to_pb, port_from_pb, port_to_pb, report_from_pb, report_to_pb

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
TIME_NS = st.integers(min_value=0, max_value=253402300799 * 10**9)
VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    TEXT,
)
FIELD = st.builds(Field, availability=st.sampled_from(Availability), value=VALUE, source=TEXT, detail=TEXT)
REPORT = st.builds(PhoneReport, platform=st.sampled_from(Platform), **{name: FIELD for name in REPORT_FIELDS})
PORT = st.builds(
    PortStatus,
    port=TEXT,
    state=st.sampled_from(PortState),
    reason=TEXT,
    detail=TEXT,
    recovery_hint=TEXT,
    since_ns=TIME_NS,
    platform=st.one_of(st.none(), st.sampled_from(Platform)),
    session_id=TEXT,
    trust_deadline_ns=TIME_NS,
    trust_prompt=TEXT,
    report=st.one_of(st.none(), REPORT),
)


@given(FIELD)
def test_a_field_round_trips(field: Field) -> None:
    back = field_from_pb(phones_pb2.ReportField.FromString(field_to_pb(field).SerializeToString()))
    assert back == field
    assert type(back.value) is type(field.value)


@given(REPORT)
def test_a_report_round_trips(report: PhoneReport) -> None:
    assert report_from_pb(report_to_pb(report)) == report


@given(PORT)
def test_a_port_round_trips_through_the_wire(status: PortStatus) -> None:
    assert port_from_pb(phones_pb2.Port.FromString(port_to_pb(status).SerializeToString())) == status


def _member(value: Any) -> str | None:
    return field_to_pb(Field.of(value, "test")).WhichOneof("value")


def test_each_python_type_has_its_oneof_member() -> None:
    assert [_member(v) for v in (True, False, 0, 7, 2.5, "14")] == [
        "flag",
        "flag",
        "integer",
        "integer",
        "number",
        "text",
    ]
    assert field_to_pb(Field.unknown("adb:getprop", "refused")).WhichOneof("value") is None


def test_an_integer_beyond_int64_goes_as_text_instead_of_failing() -> None:
    assert field_to_pb(Field.of(2**64, "test")).text == str(2**64)


def test_unread_fields_stay_unknown_and_an_unset_field_is_not_read() -> None:
    report = PhoneReport(Platform.ANDROID, model=Field.of("Pixel 7", "adb:getprop ro.product.model"))
    msg = report_to_pb(report)
    assert msg.imei.availability == phones_pb2.AVAILABILITY_UNKNOWN
    msg.ClearField("imei")
    assert report_from_pb(msg).imei.availability is Availability.UNKNOWN


def test_an_unknown_availability_never_reads_as_available() -> None:
    msg = phones_pb2.ReportField(availability=phones_pb2.AVAILABILITY_UNSPECIFIED, text="clean")
    assert field_from_pb(msg).availability is Availability.UNKNOWN


def test_a_port_shows_a_trust_deadline_only_while_one_is_set() -> None:
    waiting = PortStatus("1-4.2", PortState.AWAITING_TRUST, trust_deadline_ns=1_767_000_000 * 10**9)
    assert port_to_pb(waiting).HasField("trust_deadline")
    assert not port_to_pb(PortStatus("1-4.2", PortState.READY)).HasField("trust_deadline")
    assert not port_to_pb(PortStatus("1-4.2")).HasField("report")
