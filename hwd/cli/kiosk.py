"""`hwd probe` and `hwd note`: the Kiosk service on tech.sock."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from hwd.cli.camera import camera_status, probe_camera_json, render_camera_status
from hwd.cli.client import daemon_peer, open_channel, resolve_socket_dir
from hwd.cli.phones import list_ports, ports_json, render_ports
from hwd.cli.render import enum_name, fields, table, timestamp, to_json, yes_no
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc

# What `hwd probe TARGET` accepts, and the device name prefix each one selects when it differs.
PROBE_TARGETS = ("phones", "carousel", "lock", "printer", "camera", "daemon")
_TARGET_NAMES = {"phones": "port"}
STATUS_HEADERS = ("DEVICE", "STATE", "REASON", "SINCE", "DETAIL", "HINT")
LEASE_HEADERS = ("LEASED", "HOLDER", "EXPIRES")


@contextmanager
def kiosk(args: argparse.Namespace) -> Iterator[kiosk_pb2_grpc.KioskStub]:
    """A Kiosk stub on the daemon's tech.sock, from the global options; the channel closes on exit."""
    peer = daemon_peer(resolve_socket_dir(args.socket_dir, args.config))
    with open_channel(peer, args.timeout) as channel:
        yield kiosk_pb2_grpc.KioskStub(channel)


def target_matches(device: str, target: str | None) -> bool:
    """Whether `device` is selected by `hwd probe TARGET` (every device when `target` is None)."""
    if target is None:
        return True
    name = _TARGET_NAMES.get(target, target)
    return device == name or device.startswith(name + ":")


def narrow(status: kiosk_pb2.GetStatusResponse, target: str | None) -> kiosk_pb2.GetStatusResponse:
    """A copy of `status` with only the devices and leases that `target` selects (the daemon stays)."""
    shown = kiosk_pb2.GetStatusResponse()
    shown.CopyFrom(status)
    del shown.devices[:]
    shown.devices.extend(d for d in status.devices if target_matches(d.device, target))
    del shown.leases[:]
    shown.leases.extend(lease for lease in status.leases if target_matches(lease.device, target))
    return shown


def render_status(status: kiosk_pb2.GetStatusResponse) -> str:
    """The human form of GetStatus: a header, the device table (daemon first), then held leases."""
    header = fields(
        [
            ("version", status.version),
            ("simulated", yes_no(status.simulated)),
            ("started", timestamp(status.started)),
            ("last event", str(status.last_sequence)),
        ]
    )
    rows = [_status_row(status.daemon, "daemon")] + [_status_row(d) for d in status.devices]
    parts = [header, "", table(STATUS_HEADERS, rows)]
    if status.leases:
        leases = [(lease.device, lease.holder, timestamp(lease.expires)) for lease in status.leases]
        parts += ["", table(LEASE_HEADERS, leases)]
    return "\n".join(parts)


def _status_row(status: common_pb2.DeviceStatus, default_name: str = "") -> tuple[str, ...]:
    state = enum_name(common_pb2.DeviceState.DESCRIPTOR, status.state)
    since = timestamp(status.since)
    return (status.device or default_name, state, status.reason, since, status.detail, status.recovery_hint)


def probe(args: argparse.Namespace) -> int:
    """`hwd probe [TARGET]`: prints the daemon's and the devices' status; `hwd probe camera` adds the
    camera's source, size, settings and evidence count (under "camera" with --json); `hwd probe` and
    `hwd probe phones` add the phone ports (under "ports" with --json) when the daemon reads phones."""
    peer = daemon_peer(resolve_socket_dir(args.socket_dir, args.config))
    with open_channel(peer, args.timeout) as channel:
        status = kiosk_pb2_grpc.KioskStub(channel).GetStatus(kiosk_pb2.GetStatusRequest(), timeout=args.timeout)
        camera = camera_status(channel, args.timeout) if args.target == "camera" else None
        ports = list_ports(channel, args.timeout) if args.target in (None, "phones") else None
    shown = narrow(status, args.target)
    if ports is not None:
        print(ports_json(shown, ports) if args.json else f"{render_status(shown)}\n\n{render_ports(ports)}")
    elif camera is None:
        print(to_json(shown) if args.json else render_status(shown))
    elif args.json:
        print(probe_camera_json(shown, camera))
    else:
        print(f"{render_status(shown)}\n\n{render_camera_status(camera)}")
    return 0


def default_author() -> str:
    """Who writes a note when --author is not given: the user behind sudo, else the user, else ""."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or ""


def note(args: argparse.Namespace) -> int:
    """`hwd note TEXT`: journals a technician's note and prints the sequence of its event."""
    request = kiosk_pb2.AddNoteRequest(
        request_id=args.request_id or uuid.uuid4().hex,
        text=args.text,
        author=default_author() if args.author is None else args.author,
    )
    with kiosk(args) as stub:
        response = stub.AddNote(request, timeout=args.timeout)
    if args.json:
        print(to_json(response))
    else:
        print(f"note added as event {response.sequence} (request id {request.request_id})")
    return 0
