"""The hwd.v1.Phones servicer and the PortStatus / PhoneReport converters (round-trip tested)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from hwd.errors import InvalidArgument
from hwd.model.phones import REPORT_FIELDS, Availability, Field, PhoneReport, Platform, PortState, PortStatus, Value
from hwd.rpc.convert import ts
from hwd.rpc.pb.hwd.v1 import phones_pb2, phones_pb2_grpc
from hwd.services.phones import PhonesService

Ctx = aio.ServicerContext[Any, Any]
INT64 = range(-(2**63), 2**63)


def field_to_pb(field: Field) -> phones_pb2.ReportField:
    """A report field, its value in the oneof member of its Python type.

    bool is tested before int (a bool is an int in Python); an int beyond int64 goes as text.
    """
    msg = phones_pb2.ReportField(
        availability=phones_pb2.Availability.Value(f"AVAILABILITY_{field.availability.value}"),
        source=field.source,
        detail=field.detail,
    )
    value = field.value
    if isinstance(value, bool):
        msg.flag = value
    elif isinstance(value, int) and value in INT64:
        msg.integer = value
    elif isinstance(value, float):
        msg.number = value
    elif value is not None:
        msg.text = str(value)
    return msg


def field_from_pb(msg: phones_pb2.ReportField) -> Field:
    """Protobuf to a report field; an unknown availability reads as UNKNOWN (never as AVAILABLE)."""
    known = msg.availability in phones_pb2.Availability.values()
    name = phones_pb2.Availability.Name(msg.availability).removeprefix("AVAILABILITY_") if known else ""
    availability = Availability.__members__.get(name, Availability.UNKNOWN)
    which = msg.WhichOneof("value")
    value: Value | None = getattr(msg, which) if which is not None else None
    return Field(availability, value, msg.source, msg.detail)


def _platform_to_pb(platform: Platform | None) -> phones_pb2.Platform.ValueType:
    if platform is None:
        return phones_pb2.PLATFORM_UNSPECIFIED
    return phones_pb2.Platform.Value(f"PLATFORM_{platform.value}")


def _platform_from_pb(value: phones_pb2.Platform.ValueType) -> Platform | None:
    if value == phones_pb2.PLATFORM_UNSPECIFIED or value not in phones_pb2.Platform.values():
        return None
    return Platform(phones_pb2.Platform.Name(value).removeprefix("PLATFORM_"))


def report_to_pb(report: PhoneReport) -> phones_pb2.PhoneReport:
    """A phone report, every field with its availability and source."""
    msg = phones_pb2.PhoneReport(platform=_platform_to_pb(report.platform))
    for name, field in report.fields().items():
        getattr(msg, name).CopyFrom(field_to_pb(field))
    return msg


def report_from_pb(msg: phones_pb2.PhoneReport) -> PhoneReport:
    """Protobuf to a phone report. :raises ValueError: when the platform is not set."""
    platform = _platform_from_pb(msg.platform)
    if platform is None:
        raise ValueError("a phone report without a platform")
    present = {f.name for f, _ in msg.ListFields()}
    fields = {name: field_from_pb(getattr(msg, name)) for name in REPORT_FIELDS if name in present}
    return PhoneReport(platform, **fields)


def port_to_pb(status: PortStatus) -> phones_pb2.Port:
    """A port and its session; the trust deadline only while one is set, the report once there is one."""
    msg = phones_pb2.Port(
        port=status.port,
        state=phones_pb2.PortState.Value(f"PORT_STATE_{status.state.value}"),
        reason=status.reason,
        detail=status.detail,
        recovery_hint=status.recovery_hint,
        since=ts(status.since_ns),
        platform=_platform_to_pb(status.platform),
        session_id=status.session_id,
        trust_prompt=status.trust_prompt,
    )
    if status.trust_deadline_ns:
        msg.trust_deadline.CopyFrom(ts(status.trust_deadline_ns))
    if status.report is not None:
        msg.report.CopyFrom(report_to_pb(status.report))
    return msg


def port_from_pb(msg: phones_pb2.Port) -> PortStatus:
    """Protobuf to a port status (an unset state reads as ABSENT)."""
    name = phones_pb2.PortState.Name(msg.state) if msg.state in phones_pb2.PortState.values() else ""
    state = PortState.__members__.get(name.removeprefix("PORT_STATE_"), PortState.ABSENT)
    return PortStatus(
        port=msg.port,
        state=state,
        reason=msg.reason,
        detail=msg.detail,
        recovery_hint=msg.recovery_hint,
        since_ns=msg.since.ToNanoseconds(),
        platform=_platform_from_pb(msg.platform),
        session_id=msg.session_id,
        trust_deadline_ns=msg.trust_deadline.ToNanoseconds() if msg.HasField("trust_deadline") else 0,
        trust_prompt=msg.trust_prompt,
        report=report_from_pb(msg.report) if msg.HasField("report") else None,
    )


def _port_path(port: str) -> str:
    if not port:
        raise InvalidArgument("port: a port path is required, e.g. 1-4.2", metadata={"field": "port"})
    return port


class PhonesServicer(phones_pb2_grpc.PhonesServicer):
    """Serves the Phones service from a :class:`PhonesService`."""

    def __init__(self, phones: PhonesService) -> None:
        self._phones = phones

    async def ListPorts(self, request: phones_pb2.ListPortsRequest, context: Ctx) -> phones_pb2.ListPortsResponse:
        return phones_pb2.ListPortsResponse(ports=[port_to_pb(status) for status in self._phones.ports()])

    async def GetPort(self, request: phones_pb2.GetPortRequest, context: Ctx) -> phones_pb2.GetPortResponse:
        return phones_pb2.GetPortResponse(port=port_to_pb(self._phones.get(_port_path(request.port))))

    async def WatchPorts(self, request: phones_pb2.WatchPortsRequest, context: Ctx) -> AsyncIterator[phones_pb2.Port]:
        async for status in self._phones.watch():
            yield port_to_pb(status)

    async def Refresh(self, request: phones_pb2.RefreshRequest, context: Ctx) -> phones_pb2.RefreshResponse:
        status = await self._phones.refresh(_port_path(request.port))
        return phones_pb2.RefreshResponse(port=port_to_pb(status))
