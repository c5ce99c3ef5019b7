"""The phone ports in `hwd probe`, and the simulated phones of `hwd sim profiles|plug|unplug`."""

from __future__ import annotations

import argparse
import json

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from hwd.cli.client import unless_unimplemented
from hwd.cli.render import EMPTY_CELL, clean, enum_name, table, timestamp
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import phones_pb2, phones_pb2_grpc

PORT_HEADERS = ("PORT", "STATE", "REASON", "PLATFORM", "MODEL", "OS", "IMEI", "SINCE", "DETAIL", "HINT")
PROFILE_HEADERS = ("PROFILE", "PLATFORM", "MANUFACTURER", "MODEL", "OS", "DESCRIPTION")
# accept-reset (iPhones only): accept, then the USB reset a real iPhone makes after "Trust".
TRUST_ANSWERS = ("accept", "refuse", "ignore", "accept-reset")
SimStub = simulator_pb2_grpc.SimulatorStub


# --- hwd probe ------------------------------------------------------------------------------------


def list_ports(channel: grpc.Channel, timeout: float) -> phones_pb2.ListPortsResponse | None:
    """Phones.ListPorts on ``channel``, or None when the daemon reads no phones (UNIMPLEMENTED)."""
    stub = phones_pb2_grpc.PhonesStub(channel)
    return unless_unimplemented(lambda: stub.ListPorts(phones_pb2.ListPortsRequest(), timeout=timeout))


def _value(field: phones_pb2.ReportField) -> str:
    """A report field's value as text, or ``-`` unless it was read."""
    if field.availability != phones_pb2.AVAILABILITY_AVAILABLE or field.WhichOneof("value") is None:
        return EMPTY_CELL
    return str(getattr(field, str(field.WhichOneof("value"))))


def _availability(port: phones_pb2.Port, name: str) -> str:
    """Whether a report field was read: ``available``, ``unknown``, ``needs trust`` ...; ``-`` before a report."""
    if not port.HasField("report"):
        return EMPTY_CELL
    value = getattr(port.report, name).availability
    return enum_name(phones_pb2.Availability.DESCRIPTOR, value).lower().replace("_", " ")


def _hint(port: phones_pb2.Port) -> str:
    if port.state == phones_pb2.PORT_STATE_AWAITING_TRUST and port.trust_prompt:
        return f"{port.trust_prompt} (until {timestamp(port.trust_deadline)})"
    return port.recovery_hint


def port_row(port: phones_pb2.Port) -> tuple[str, ...]:
    """One port as a row of :data:`PORT_HEADERS` (the IMEI column says whether it was read, not the number)."""
    platform = enum_name(phones_pb2.Platform.DESCRIPTOR, port.platform) if port.platform else ""
    report = port.report if port.HasField("report") else None
    return (
        port.port,
        enum_name(phones_pb2.PortState.DESCRIPTOR, port.state),
        port.reason,
        platform,
        _value(report.model) if report else "",
        _value(report.os_version) if report else "",
        _availability(port, "imei"),
        timestamp(port.since),
        port.detail,
        _hint(port),
    )


def render_ports(ports: phones_pb2.ListPortsResponse) -> str:
    """The phone ports as a table, one row per port."""
    return table(PORT_HEADERS, [port_row(p) for p in ports.ports])


def ports_json(status: Message, ports: phones_pb2.ListPortsResponse) -> str:
    """The --json form of `hwd probe` with phones: the Kiosk status's JSON with the ports under "ports"."""
    data = json_format.MessageToDict(status, preserving_proto_field_name=True)
    data["ports"] = [json_format.MessageToDict(p, preserving_proto_field_name=True) for p in ports.ports]
    return json.dumps(data, indent=2)


# --- hwd sim profiles | plug | unplug ---------------------------------------------------------------


def call_profiles(stub: SimStub, args: argparse.Namespace, timeout: float) -> simulator_pb2.ListProfilesResponse:
    """Simulator.ListProfiles."""
    del args
    request = simulator_pb2.ListProfilesRequest()
    response: simulator_pb2.ListProfilesResponse = stub.ListProfiles(request, timeout=timeout)
    return response


def render_profiles(response: simulator_pb2.ListProfilesResponse) -> str:
    """The phone profiles the simulator can plug in, as a table."""
    rows = [(p.name, p.platform, p.manufacturer, p.model, p.os_version, p.description) for p in response.profiles]
    return table(PROFILE_HEADERS, rows)


def _trust_delay(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


def plug_arguments(parser: argparse.ArgumentParser) -> None:
    """PROFILE, --port, --trust and --trust-delay of `hwd sim plug`."""
    parser.add_argument("profile", metavar="PROFILE", help="profile name, as in `hwd sim profiles`")
    parser.add_argument("--port", metavar="PORT", default="", help="port path, e.g. 1-1.3 (default: the first free)")
    answer = "what the customer answers on the phone (default: accept)"
    parser.add_argument("--trust", choices=TRUST_ANSWERS, default="accept", help=answer)
    parser.add_argument(
        "--trust-delay", metavar="S", type=_trust_delay, default=0.0, help="seconds before the answer (default: 0)"
    )


def call_plug(stub: SimStub, args: argparse.Namespace, timeout: float) -> simulator_pb2.PlugPhoneResponse:
    """Simulator.PlugPhone from the arguments of `hwd sim plug`."""
    request = simulator_pb2.PlugPhoneRequest(
        profile=args.profile, port=args.port, trust=args.trust, trust_delay_s=args.trust_delay
    )
    response: simulator_pb2.PlugPhoneResponse = stub.PlugPhone(request, timeout=timeout)
    return response


def render_plug(response: simulator_pb2.PlugPhoneResponse) -> str:
    """`PROFILE plugged into PORT (serial S, ENDPOINT): STATE`."""
    p = response.phone
    return clean(f"{p.profile} plugged into {p.port} (serial {p.serial}, {p.endpoint}): {p.state}")


def unplug_arguments(parser: argparse.ArgumentParser) -> None:
    """PORT of `hwd sim unplug`."""
    parser.add_argument("port", metavar="PORT", help="port path of the phone, e.g. 1-1.3")


def call_unplug(stub: SimStub, args: argparse.Namespace, timeout: float) -> simulator_pb2.UnplugPhoneResponse:
    """Simulator.UnplugPhone."""
    response: simulator_pb2.UnplugPhoneResponse = stub.UnplugPhone(
        simulator_pb2.UnplugPhoneRequest(port=args.port), timeout=timeout
    )
    return response
