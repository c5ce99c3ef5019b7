"""`hwd camera ...` (the Camera service on tech.sock), the camera part of `hwd probe camera`, and
`hwd sim camera ...` (the simulated camera's scene, through the simulator's Fault rpc)."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from hwd.cli.client import CliError, daemon_peer, open_channel, resolve_socket_dir, unless_unimplemented
from hwd.cli.exitcodes import ExitCode
from hwd.cli.render import EMPTY_CELL, enum_name, fields, table, timestamp, yes_no
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import camera_pb2, camera_pb2_grpc

Handler = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# A still can be larger than grpc's default 4 MiB limit (a 1920x1080 PNG of a noisy scene is about 5 MB).
MAX_IMAGE_BYTES = 64 * 1024 * 1024
# Opening the camera and computing the signals may take seconds: camera commands get at least this deadline.
CAPTURE_TIMEOUT_S = 30.0
FORMATS = {"jpeg": camera_pb2.IMAGE_FORMAT_JPEG, "png": camera_pb2.IMAGE_FORMAT_PNG}
SETTING_HEADERS = ("SETTING", "REQUESTED", "ACTUAL", "APPLIED", "DETAIL")
SIGNAL_HEADERS = ("SIGNAL", "VALUE", "CONFIDENCE")
# InspectionSignals' signals in display order, with their unit.
SIGNALS = (
    ("phone_present", ""), ("orientation_deg", "deg"), ("length_px", "px"), ("width_px", "px"),
    ("length_mm", "mm"), ("width_mm", "mm"), ("screen_on", ""), ("crack_score", ""),
)  # fmt: skip
SIM_CAMERA = "camera"
# CameraSettings' fields, each an option of `hwd camera capture` and `hwd camera inspect`.
SETTINGS = (
    "width", "height", "fps", "exposure", "focus", "white_balance_k", "auto_exposure", "auto_focus",
    "auto_white_balance",
)  # fmt: skip


def camera_timeout(args: argparse.Namespace) -> float:
    """The deadline of a capture or an inspection: --timeout, but at least :data:`CAPTURE_TIMEOUT_S`."""
    return max(float(args.timeout), CAPTURE_TIMEOUT_S)


@contextmanager
def camera_stub(args: argparse.Namespace) -> Iterator[camera_pb2_grpc.CameraStub]:
    """A Camera stub on the daemon's tech.sock that accepts stills up to :data:`MAX_IMAGE_BYTES`."""
    peer = daemon_peer(resolve_socket_dir(args.socket_dir, args.config))
    with open_channel(peer, args.timeout, MAX_IMAGE_BYTES) as channel:
        yield camera_pb2_grpc.CameraStub(channel)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text}")
    return value


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a JPEG quality from 1 to 100: {text}")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text}")
    return value


def _on_off(text: str) -> bool:
    word = text.strip().lower()
    if word not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"must be on or off: {text}")
    return word == "on"


def settings_of(args: argparse.Namespace) -> camera_pb2.CameraSettings:
    """The CameraSettings asked for on the command line; an option not given stays unset."""
    values = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    return camera_pb2.CameraSettings(**values)


def render_settings(settings: Iterable[camera_pb2.AppliedSetting]) -> str:
    """The settings table: what was asked, what the device reads back, whether it took it, why not."""
    rows = [
        (s.name, s.requested, s.actual, yes_no(s.applied) if s.requested else EMPTY_CELL, s.detail) for s in settings
    ]
    return table(SETTING_HEADERS, rows)


def render_image(image: camera_pb2.Image, path: str | None = None) -> str:
    """A still's size, format, hash, time, evidence id and the settings in force."""
    fmt = enum_name(camera_pb2.ImageFormat.DESCRIPTOR, image.format)
    pairs = [("file", path)] if path else []
    pairs += [
        ("image", f"{image.width}x{image.height} {fmt}, {len(image.data):,} bytes"),
        ("sha256", image.sha256),
        ("captured", timestamp(image.captured)),
        ("evidence", image.evidence_id or EMPTY_CELL),
    ]
    return "\n".join([fields(pairs), "", render_settings(image.settings)])


def not_applied(image: camera_pb2.Image) -> list[str]:
    """The names of the settings that were asked for but that the device did not take."""
    return [s.name for s in image.settings if s.requested and not s.applied]


def save_image(image: camera_pb2.Image, path: str) -> None:
    """Writes the still to ``path`` once its bytes match its sha256.

    :raises CliError: UNEXPECTED when the hash does not match, UNEXPECTED when the file cannot be written.
    """
    if hashlib.sha256(image.data).hexdigest() != image.sha256:
        raise CliError("the still's data does not match its sha256; nothing written", ExitCode.UNEXPECTED)
    try:
        Path(path).write_bytes(image.data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", ExitCode.UNEXPECTED) from None


def _image_json(image: camera_pb2.Image, path: str | None) -> dict[str, Any]:
    """The --json form of a still: its fields with ``data`` left out, plus the file it went to."""
    shown = camera_pb2.Image()
    shown.CopyFrom(image)
    shown.ClearField("data")
    out: dict[str, Any] = json_format.MessageToDict(shown, preserving_proto_field_name=True)
    out["bytes"] = len(image.data)
    if path:
        out["file"] = path
    return out


def camera_capture(args: argparse.Namespace) -> int:
    """`hwd camera capture FILE`: takes a still, writes it to FILE and prints its provenance."""
    request = camera_pb2.CaptureRequest(
        settings=settings_of(args), format=FORMATS[args.format], quality=args.quality or 0, port=args.port or ""
    )
    with camera_stub(args) as stub:
        image = stub.Capture(request, timeout=camera_timeout(args)).image
    save_image(image, args.file)
    if args.json:
        print(json.dumps({"image": _image_json(image, args.file)}, indent=2))
    else:
        print(render_image(image, args.file))
        skipped = not_applied(image)
        if skipped:
            print(f"\nnot applied: {', '.join(skipped)}")
    return 0


def signal_text(signal: camera_pb2.Signal, unit: str) -> str:
    """A signal's value: yes/no for a flag, the number with its unit otherwise."""
    if signal.WhichOneof("value") == "flag":
        return yes_no(signal.flag)
    return f"{signal.number:.4g} {unit}".rstrip()


def render_signals(response: camera_pb2.InspectResponse) -> str:
    """The signals table (a signal the daemon could not compute shows as ``-``), the outline and timing."""
    signals = response.signals
    rows = []
    present = {field.name for field, _ in signals.ListFields()}
    for name, unit in SIGNALS:
        if name in present:
            signal = getattr(signals, name)
            rows.append((name, signal_text(signal, unit), f"{signal.confidence:.2f}"))
        else:
            rows.append((name, EMPTY_CELL, EMPTY_CELL))
    outline = " ".join(f"({p.x:.0f},{p.y:.0f})" for p in signals.outline) or EMPTY_CELL
    image = response.image
    head = fields(
        [
            ("image", f"{image.width}x{image.height}, sha256 {image.sha256}"),
            ("evidence", image.evidence_id or EMPTY_CELL),
            ("compute", f"{response.compute_ms:.1f} ms"),
            ("outline", outline),
        ]
    )
    return "\n".join([head, "", table(SIGNAL_HEADERS, rows)])


def camera_inspect(args: argparse.Namespace) -> int:
    """`hwd camera inspect`: takes a still, prints the inspection signals, and writes the still with --save."""
    request = camera_pb2.InspectRequest(settings=settings_of(args), port=args.port or "")
    with camera_stub(args) as stub:
        response = stub.Inspect(request, timeout=camera_timeout(args))
    if args.save:
        save_image(response.image, args.save)
    if args.json:
        data = json_format.MessageToDict(response, preserving_proto_field_name=True)
        data["image"] = _image_json(response.image, args.save)
        print(json.dumps(data, indent=2))
    else:
        print(render_signals(response))
    return 0


def render_camera_status(status: camera_pb2.GetCameraStatusResponse) -> str:
    """The camera part of `hwd probe camera`: source, size, evidence kept and settings in force."""
    head = fields(
        [
            ("source", status.source or EMPTY_CELL),
            ("size", f"{status.width}x{status.height}" if status.width else EMPTY_CELL),
            ("evidence kept", str(status.evidence_count)),
        ]
    )
    return "\n".join([head, "", render_settings(status.settings)])


def probe_camera_json(status: Message, camera: camera_pb2.GetCameraStatusResponse) -> str:
    """The --json form of `hwd probe camera`: the Kiosk status's JSON with the camera's under "camera"."""
    data = json_format.MessageToDict(status, preserving_proto_field_name=True)
    data["camera"] = json_format.MessageToDict(camera, preserving_proto_field_name=True)
    return json.dumps(data, indent=2)


def camera_status(channel: grpc.Channel, timeout: float) -> camera_pb2.GetCameraStatusResponse | None:
    """Camera.GetStatus on ``channel``, or None when the daemon serves no camera (UNIMPLEMENTED)."""
    stub = camera_pb2_grpc.CameraStub(channel)
    return unless_unimplemented(lambda: stub.GetStatus(camera_pb2.GetCameraStatusRequest(), timeout=timeout))


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=_positive_int, metavar="W", help="frame width in pixels (with --height)")
    parser.add_argument("--height", type=_positive_int, metavar="H", help="frame height in pixels (with --width)")
    parser.add_argument("--fps", type=_finite, metavar="FPS", help="frame rate")
    parser.add_argument("--exposure", type=_finite, metavar="E", help="manual exposure, device units (V4L2: 100 us)")
    parser.add_argument("--focus", type=_finite, metavar="F", help="manual focus position, device units")
    parser.add_argument("--white-balance-k", type=_finite, metavar="K", help="manual white balance in kelvin")
    for name in ("exposure", "focus", "white-balance"):
        parser.add_argument(
            f"--auto-{name}", type=_on_off, metavar="on|off", help=f"automatic {name.replace('-', ' ')}"
        )
    parser.add_argument("--port", metavar="PORT", help="port of the phone inspected (keeps the still as evidence)")


def add_camera_parsers(sub: SubParsers, common: list[argparse.ArgumentParser]) -> None:
    """Adds `hwd camera capture` and `hwd camera inspect` to the top-level subparsers ``sub``."""
    camera = sub.add_parser("camera", help="take stills and inspect phones with the camera", parents=common)
    csub = camera.add_subparsers(dest="camera_command", metavar="COMMAND", required=True)
    text = "take a still, write it to FILE and show its size, sha256 and settings"
    p = csub.add_parser("capture", help=text, description=text, parents=common)
    p.set_defaults(handler=camera_capture)
    p.add_argument("file", metavar="FILE", help="where to write the image")
    p.add_argument("--format", choices=tuple(FORMATS), default="jpeg", help="image encoding (default: jpeg)")
    p.add_argument("--quality", type=_quality, metavar="Q", help="JPEG quality 1-100 (default: the daemon's, 90)")
    _settings_arguments(p)
    text = "take a still and show the inspection signals (phone present, outline, size, screen, cracks)"
    p = csub.add_parser("inspect", help=text, description=text, parents=common)
    p.set_defaults(handler=camera_inspect)
    p.add_argument("--save", metavar="FILE", help="also write the still inspected (JPEG) to FILE")
    _settings_arguments(p)


# --- hwd sim camera --------------------------------------------------------------------------------


def sim_camera_fault(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """The Fault (name and parameters) that `hwd sim camera ACTION ...` sends to the simulated camera."""
    action = args.camera_action
    if action == "place":
        params = {"profile": args.profile, "cracked": "1" if args.cracked else "0"}
        if args.screen is not None:
            params["screen"] = "on" if args.screen else "off"
        for name in ("angle", "x", "y", "glare", "noise", "seed"):
            value = getattr(args, name)
            if value is not None:
                params[name] = f"{value:g}" if isinstance(value, float) else str(value)
        return "place", params
    if action in ("lights", "screen"):
        return f"{action}-{'on' if args.state else 'off'}", {}
    return action, {}


def call_sim_camera(
    stub: simulator_pb2_grpc.SimulatorStub, args: argparse.Namespace, timeout: float
) -> simulator_pb2.FaultResponse:
    """Sends the Fault of :func:`sim_camera_fault` to the simulator's device "camera"."""
    fault, params = sim_camera_fault(args)
    request = simulator_pb2.FaultRequest(device=SIM_CAMERA, fault=fault, params=params)
    response: simulator_pb2.FaultResponse = stub.Fault(request, timeout=timeout)
    return response


def add_sim_camera_parsers(parser: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    """Adds the actions of `hwd sim camera` to its parser."""
    sub = parser.add_subparsers(dest="camera_action", metavar="ACTION", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=text, description=text, parents=parents)
        parser.add_argument(
            "--endpoints", metavar="FILE", default=argparse.SUPPRESS, help="the simulator's endpoints file"
        )
        return parser

    p = action("place", "put a phone of PROFILE in the tray, face up")
    p.add_argument("profile", metavar="PROFILE", help="a phone profile, e.g. pixel-7 (see `hwd sim profiles`)")
    p.add_argument("--cracked", action="store_true", help="with a cracked screen")
    p.add_argument("--screen", type=_on_off, metavar="on|off", help="screen lit or dark (default: the simulator's)")
    p.add_argument(
        "--angle", type=_finite, metavar="DEG", help="clockwise turn of the phone's long axis from vertical, degrees"
    )
    p.add_argument("--x", type=_finite, metavar="X", help="phone centre, mm right of the tray centre")
    p.add_argument("--y", type=_finite, metavar="Y", help="phone centre, mm below the tray centre")
    p.add_argument("--glare", type=_finite, metavar="G", help="strength of a glare spot, 0 to 1")
    p.add_argument("--noise", type=_finite, metavar="N", help="sensor noise, grey levels")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the scene's randomness")
    action("remove", "take the phone out of the tray")
    action("crack", "crack the placed phone's screen")
    for name, what in (("lights", "the tray's lights"), ("screen", "the placed phone's screen")):
        action(name, f"switch {what} on or off").add_argument("state", type=_on_off, metavar="on|off")
    action("vanish", "make the camera disappear (the stream stops answering)")
    action("return", "bring the camera back after vanish")
    action("freeze", "keep connections open but send nothing (a stuck camera)")
    action("thaw", "end freeze: frames flow again")
