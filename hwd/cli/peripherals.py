"""`hwd carousel ...` and `hwd lock ...`: the Carousel and BinLock services on tech.sock."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeAlias

import grpc
from google.protobuf import duration_pb2

from hwd.cli.client import CliError, daemon_peer, open_channel, resolve_socket_dir
from hwd.cli.exitcodes import ExitCode
from hwd.cli.render import EMPTY_CELL, enum_name, fields, table, to_json, yes_no
from hwd.rpc.pb.hwd.v1 import binlock_pb2, binlock_pb2_grpc, carousel_pb2, carousel_pb2_grpc, common_pb2

Handler = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Metadata: TypeAlias = tuple[tuple[str, str], ...]

LEASE_METADATA = "hwd-lease-id"
# Moving the carousel takes seconds; its commands get at least this deadline.
MOVE_TIMEOUT_S = 60.0
# The names `hwd carousel select` accepts, and how slots show them.
CONNECTORS: dict[str, carousel_pb2.Connector.ValueType] = {
    "usb-c": carousel_pb2.CONNECTOR_USB_C,
    "lightning": carousel_pb2.CONNECTOR_LIGHTNING,
    "micro-usb": carousel_pb2.CONNECTOR_MICRO_USB,
    "usb-a": carousel_pb2.CONNECTOR_USB_A,
}
SLOT_HEADERS = ("SLOT", "CONNECTOR", "REPORTED", "CABLE TEST")


@contextmanager
def tech_channel(args: argparse.Namespace) -> Iterator[grpc.Channel]:
    """A connected channel to the daemon's tech.sock, from the global options; closed on exit."""
    peer = daemon_peer(resolve_socket_dir(args.socket_dir, args.config))
    with open_channel(peer, args.timeout) as channel:
        yield channel


def lease_metadata(args: argparse.Namespace) -> Metadata:
    """The call metadata carrying --lease, when given."""
    return ((LEASE_METADATA, args.lease),) if args.lease else ()


def move_timeout(args: argparse.Namespace) -> float:
    """The deadline of a carousel command: --timeout, but at least :data:`MOVE_TIMEOUT_S`."""
    return max(float(args.timeout), MOVE_TIMEOUT_S)


def connector_type(text: str) -> carousel_pb2.Connector.ValueType:
    """argparse type of CONNECTOR: a name of :data:`CONNECTORS`, in any case."""
    value = CONNECTORS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"unknown connector {text!r} (valid: {', '.join(CONNECTORS)})")
    return value


def slot_type(text: str) -> int:
    """argparse type of a slot number (0 or more)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a slot number (0 or more): {text}")
    return value


def seconds_type(text: str) -> int:
    """argparse type of a whole number of seconds (0 or more)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds (0 or more): {text}")
    return value


def connector_name(value: carousel_pb2.Connector.ValueType) -> str:
    """How a connector shows: its CONNECTOR name, ``none`` for an empty slot."""
    if value == carousel_pb2.CONNECTOR_UNSPECIFIED:
        return "none"
    names = {number: name for name, number in CONNECTORS.items()}
    return names.get(value) or enum_name(carousel_pb2.Connector.DESCRIPTOR, value)


def _device_fields(status: common_pb2.DeviceStatus) -> list[tuple[str, str]]:
    return [
        ("state", enum_name(common_pb2.DeviceState.DESCRIPTOR, status.state)),
        ("reason", status.reason or EMPTY_CELL),
        ("detail", status.detail or EMPTY_CELL),
        ("hint", status.recovery_hint or EMPTY_CELL),
    ]


def render_carousel(status: carousel_pb2.GetCarouselStatusResponse) -> str:
    """The carousel's status header, then one row per slot."""
    current = str(status.current_slot) if status.HasField("current_slot") else EMPTY_CELL
    target = str(status.target_slot) if status.HasField("target_slot") else EMPTY_CELL
    header = fields(
        [
            *_device_fields(status.status),
            ("homed", yes_no(status.homed)),
            ("moving", yes_no(status.moving)),
            ("current slot", current),
            ("target slot", target),
            ("controller", status.controller or EMPTY_CELL),
        ]
    )
    return "\n".join([header, "", table(SLOT_HEADERS, [_slot_row(slot) for slot in status.slots])])


def _slot_row(slot: carousel_pb2.Slot) -> tuple[str, ...]:
    reported = EMPTY_CELL
    if slot.reported_connector != slot.connector:
        reported = connector_name(slot.reported_connector)
    if slot.cable_test == carousel_pb2.CABLE_TEST_RESULT_UNSPECIFIED:
        tested = "untested"
    else:
        tested = enum_name(carousel_pb2.CableTestResult.DESCRIPTOR, slot.cable_test)
    return (str(slot.index), connector_name(slot.connector), reported, tested)


def render_lock(status: binlock_pb2.GetLockStatusResponse) -> str:
    """The bin lock's status: device state, sensors, pending relock."""
    relock = f"{status.relock_remaining_s} s" if status.relock_remaining_s else EMPTY_CELL
    door_open = f"{status.door_open_s} s" if status.door_open_s else EMPTY_CELL
    return fields(
        [
            *_device_fields(status.status),
            ("bolt", "out" if status.bolt_extended else "in"),
            ("door", "closed" if status.door_closed else "open"),
            ("unlocked", yes_no(status.unlocked)),
            ("tamper", yes_no(status.tamper)),
            ("forced", yes_no(status.forced)),
            ("relock in", relock),
            ("door open for", door_open),
            ("controller", status.controller or EMPTY_CELL),
        ]
    )


def carousel_status(args: argparse.Namespace) -> int:
    """`hwd carousel status`: prints the carousel's position and slots."""
    with tech_channel(args) as channel:
        stub = carousel_pb2_grpc.CarouselStub(channel)
        response = stub.GetStatus(carousel_pb2.GetCarouselStatusRequest(), timeout=args.timeout)
    print(to_json(response) if args.json else render_carousel(response))
    return 0


def carousel_home(args: argparse.Namespace) -> int:
    """`hwd carousel home`: finds the index position."""
    request = carousel_pb2.HomeRequest(request_id=args.request_id or uuid.uuid4().hex)
    with tech_channel(args) as channel:
        stub = carousel_pb2_grpc.CarouselStub(channel)
        response = stub.Home(request, timeout=move_timeout(args), metadata=lease_metadata(args))
    if args.json:
        print(to_json(response))
    else:
        print(f"carousel homed (request id {request.request_id})\n\n{render_carousel(response.carousel)}")
    return 0


def carousel_select(args: argparse.Namespace) -> int:
    """`hwd carousel select CONNECTOR|--slot N`: presents a slot."""
    request = carousel_pb2.SelectRequest(request_id=args.request_id or uuid.uuid4().hex)
    if args.connector is not None and args.slot is not None:
        raise CliError("give a CONNECTOR or --slot N, not both", ExitCode.USAGE)
    if args.connector is not None:
        request.connector = args.connector
    elif args.slot is not None:
        request.slot = args.slot
    else:
        raise CliError(f"give a CONNECTOR ({', '.join(CONNECTORS)}) or --slot N", ExitCode.USAGE)
    with tech_channel(args) as channel:
        stub = carousel_pb2_grpc.CarouselStub(channel)
        response = stub.Select(request, timeout=move_timeout(args), metadata=lease_metadata(args))
    if args.json:
        print(to_json(response))
    else:
        shown = connector_name(response.connector)
        print(f"slot {response.slot} ({shown}) in position (request id {request.request_id})")
    return 0


def carousel_test(args: argparse.Namespace) -> int:
    """`hwd carousel test SLOT`: tests the cable of a slot."""
    request = carousel_pb2.TestCableRequest(request_id=args.request_id or uuid.uuid4().hex, slot=args.slot)
    with tech_channel(args) as channel:
        stub = carousel_pb2_grpc.CarouselStub(channel)
        response = stub.TestCable(request, timeout=move_timeout(args), metadata=lease_metadata(args))
    if args.json:
        print(to_json(response))
    else:
        result = enum_name(carousel_pb2.CableTestResult.DESCRIPTOR, response.result)
        print(f"slot {request.slot} cable test: {result} (request id {request.request_id})")
    return 0


def lock_status(args: argparse.Namespace) -> int:
    """`hwd lock status`: prints the bin lock's sensors."""
    with tech_channel(args) as channel:
        stub = binlock_pb2_grpc.BinLockStub(channel)
        response = stub.GetStatus(binlock_pb2.GetLockStatusRequest(), timeout=args.timeout)
    print(to_json(response) if args.json else render_lock(response))
    return 0


def lock_unlock(args: argparse.Namespace) -> int:
    """`hwd lock unlock --reason TEXT`: retracts the bolt until the controller relocks."""
    request = binlock_pb2.UnlockRequest(request_id=args.request_id or uuid.uuid4().hex, reason=args.reason)
    if args.relock_after is not None:
        request.relock_after.CopyFrom(duration_pb2.Duration(seconds=args.relock_after))
    with tech_channel(args) as channel:
        stub = binlock_pb2_grpc.BinLockStub(channel)
        response = stub.Unlock(request, timeout=args.timeout, metadata=lease_metadata(args))
    if args.json:
        print(to_json(response))
    else:
        print(f"unlocked (request id {request.request_id})\n\n{render_lock(response.lock)}")
    return 0


def lock_lock(args: argparse.Namespace) -> int:
    """`hwd lock lock`: extends the bolt (as soon as the door is closed)."""
    request = binlock_pb2.LockRequest(request_id=args.request_id or uuid.uuid4().hex)
    with tech_channel(args) as channel:
        stub = binlock_pb2_grpc.BinLockStub(channel)
        response = stub.Lock(request, timeout=args.timeout, metadata=lease_metadata(args))
    if args.json:
        print(to_json(response))
    else:
        print(f"lock commanded (request id {request.request_id})\n\n{render_lock(response.lock)}")
    return 0


def add_peripheral_parsers(sub: SubParsers, common: list[argparse.ArgumentParser]) -> None:
    """Adds `hwd carousel ...` and `hwd lock ...` to the top-level subparsers `sub`."""
    carousel = sub.add_parser("carousel", help="show and move the cable carousel", parents=common)
    csub = carousel.add_subparsers(dest="carousel_command", metavar="COMMAND", required=True)
    _sub(csub, "status", carousel_status, "show the carousel's position and slots", common)
    _changer(csub, "home", carousel_home, "find the index position", common)
    p = _changer(csub, "select", carousel_select, "present a slot, by connector or by number", common)
    p.add_argument("connector", nargs="?", type=connector_type, metavar="CONNECTOR", help=", ".join(CONNECTORS))
    p.add_argument("--slot", type=slot_type, metavar="N", help="present slot N instead")
    p = _changer(csub, "test", carousel_test, "test the cable of a slot", common)
    p.add_argument("slot", type=slot_type, metavar="SLOT")

    lock = sub.add_parser("lock", help="show and command the bin lock", parents=common)
    lsub = lock.add_subparsers(dest="lock_command", metavar="COMMAND", required=True)
    _sub(lsub, "status", lock_status, "show the bolt, door and tamper sensors", common)
    p = _changer(lsub, "unlock", lock_unlock, "retract the bolt (journaled with the reason)", common)
    p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail")
    help_relock = "relock on its own after SECONDS (default: the controller's)"
    p.add_argument("--relock-after", type=seconds_type, metavar="SECONDS", help=help_relock)
    _changer(lsub, "lock", lock_lock, "extend the bolt (as soon as the door is closed)", common)


def _sub(
    sub: SubParsers, name: str, handler: Handler, help_text: str, common: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=common)
    parser.set_defaults(handler=handler)
    return parser


def _changer(
    sub: SubParsers, name: str, handler: Handler, help_text: str, common: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """A subcommand that changes the world: it takes --request-id and --lease."""
    parser = _sub(sub, name, handler, help_text, common)
    parser.add_argument("--request-id", metavar="ID", help="id making a retry safe (default: a new uuid)")
    parser.add_argument("--lease", metavar="ID", help=f"the device's lease id, sent as {LEASE_METADATA} metadata")
    return parser
