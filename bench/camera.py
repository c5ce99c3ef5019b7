"""Benchmark 9: the inspection camera (the simulated MJPEG-over-HTTP camera, tech.sock).

Capture latency at 1280x720 and 1920x1080 through the daemon's Camera.Capture, against a bare
``cv2.VideoCapture`` on the same stream (the tool a user would otherwise pick): kept open, one
``read()`` and one JPEG encoding per still, and opened for each still as a one-off script does.
Then the preview's sustained frame rate and the daemon's CPU with 1 and 5 viewers at 720p, and
the time of Inspect (with a phone in the tray).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import grpc

from bench.context import QUICK, Context
from bench.daemon import BenchError, HwdDaemon, cpu_seconds
from bench.report import Goal, Section, as_dict
from bench.stats import Summary
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import camera_pb2, camera_pb2_grpc, common_pb2, kiosk_pb2, kiosk_pb2_grpc

NAME = "camera"
TITLE = "9. Camera (simulated MJPEG camera over HTTP, tech.sock)"
SIZES = ((1280, 720), (1920, 1080))
CALL_TIMEOUT_S = 30.0
MAX_MESSAGE = 64 * 1024 * 1024
JPEG_QUALITY = 90  # Capture's default quality, used by the floor too
PREVIEW_SIZE = (1280, 720)
PREVIEW_FPS = 30.0  # what each viewer asks for; the goal is what it gets
VIEWERS = (1, 5)
WARMUP = 3
IDLE_S = 3.0
FULL_COUNTS = {"captures": 60, "oneshots": 10, "preview_s": 8.0, "inspects": 20}
QUICK_COUNTS = {"captures": 15, "oneshots": 3, "preview_s": 3.0, "inspects": 5}


def _settings(size: tuple[int, int]) -> camera_pb2.CameraSettings:
    return camera_pb2.CameraSettings(width=size[0], height=size[1])


def hwd_captures(stub: camera_pb2_grpc.CameraStub, size: tuple[int, int], n: int, *, repeat: bool) -> list[int]:
    """``n`` Captures at ``size`` after WARMUP untimed ones, the first of which sets the size (the
    camera switches streams).

    :param repeat: every Capture asks for the size again (the camera checks it); else they ask for nothing.
    :returns: their durations in ns.
    :raises BenchError: a still of another size, or a size the camera did not take.
    """
    sized = camera_pb2.CaptureRequest(settings=_settings(size))
    plain = sized if repeat else camera_pb2.CaptureRequest()
    out: list[int] = []
    for i in range(WARMUP + n):
        t0 = time.perf_counter_ns()
        image = stub.Capture(sized if i == 0 else plain, timeout=CALL_TIMEOUT_S).image
        elapsed = time.perf_counter_ns() - t0
        if (image.width, image.height) != size or not image.data:
            raise BenchError(f"Capture at {size} gave {image.width}x{image.height}: {list(image.settings)}")
        if i >= WARMUP:
            out.append(elapsed)
    return out


def _floor_still(cap: Any) -> bytes:
    ok, frame = cap.read()
    if not ok:
        raise BenchError("cv2.VideoCapture read no frame")
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise BenchError("cv2.imencode failed")
    data = bytes(buf)
    hashlib.sha256(data).hexdigest()  # hwd hashes every still; so does the floor
    return data


def floor_kept_open(url: str, n: int) -> list[int]:
    """``n`` stills from one open ``cv2.VideoCapture``: read, encode as JPEG, hash. :returns: ns each."""
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise BenchError(f"cv2.VideoCapture cannot open {url}")
        out: list[int] = []
        for i in range(WARMUP + n):
            t0 = time.perf_counter_ns()
            _floor_still(cap)
            if i >= WARMUP:
                out.append(time.perf_counter_ns() - t0)
        return out
    finally:
        cap.release()


def floor_one_shot(url: str, n: int) -> list[int]:
    """``n`` one-off stills: open ``cv2.VideoCapture``, read, encode, release. :returns: ns each."""
    out: list[int] = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        try:
            _floor_still(cap)
        finally:
            cap.release()
        out.append(time.perf_counter_ns() - t0)
    return out


class Viewer(threading.Thread):
    """One Preview stream on its own channel, counting the frames received after ``start_at``."""

    def __init__(self, target: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.target, self.stop_event = target, stop
        self.frames: list[tuple[float, int]] = []  # (receive time, size)
        self.error: str | None = None

    def run(self) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        with grpc.insecure_channel(self.target, options) as channel:
            call = camera_pb2_grpc.CameraStub(channel).Preview(
                camera_pb2.PreviewRequest(max_fps=PREVIEW_FPS), timeout=600
            )
            try:
                for frame in call:
                    self.frames.append((time.perf_counter(), len(frame.jpeg)))
                    if (frame.width, frame.height) != PREVIEW_SIZE:
                        self.error = f"a {frame.width}x{frame.height} frame"
                    if self.stop_event.is_set():
                        break
            except grpc.RpcError as exc:
                if not self.stop_event.is_set():
                    self.error = f"{exc.code()}: {exc.details()}"
            finally:
                call.cancel()

    def rate(self, t0: float, t1: float) -> float:
        """Frames per second received between ``t0`` and ``t1``."""
        return sum(1 for t, _ in self.frames if t0 <= t < t1) / (t1 - t0)


def preview_run(daemon: HwdDaemon, viewers: int, seconds: float) -> dict[str, Any]:
    """``viewers`` Preview streams for 1 s of warm-up then ``seconds``.

    :returns: each viewer's frame rate, the mean frame size, and the daemon's CPU in % of a core.
    """
    stop = threading.Event()
    threads = [Viewer(daemon.target("tech"), stop) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every stream running, the capture loop at its pace
    cpu0, t0 = cpu_seconds(daemon.pid), time.perf_counter()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(daemon.pid), time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join(10)
    errors = [t.error for t in threads if t.error]
    if errors:
        raise BenchError(f"preview with {viewers} viewers: {errors[0]}")
    sizes = [size for t in threads for _, size in t.frames]
    return {
        "rates": [t.rate(t0, t1) for t in threads],
        "frame_bytes": sum(sizes) / max(1, len(sizes)),
        "cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100,
    }


def inspect_run(stub: camera_pb2_grpc.CameraStub, n: int) -> tuple[list[int], list[float], bool]:
    """``n`` Inspects at 1920x1080. :returns: wall ns each, compute_ms each, and whether every one saw the phone."""
    request = camera_pb2.InspectRequest(settings=_settings((1920, 1080)))
    walls, computes, seen = [], [], True
    for i in range(WARMUP + n):
        t0 = time.perf_counter_ns()
        response = stub.Inspect(request, timeout=CALL_TIMEOUT_S)
        if i >= WARMUP:
            walls.append(time.perf_counter_ns() - t0)
            computes.append(response.compute_ms)
            seen = seen and response.signals.phone_present.flag
    return walls, computes, seen


def wait_camera_online(channel: grpc.Channel) -> None:
    """Returns once the camera is ONLINE: it opens after the daemon serves (STARTING, then ONLINE).

    :raises BenchError: when it is not ONLINE within CALL_TIMEOUT_S.
    """
    stream = kiosk_pb2_grpc.KioskStub(channel).WatchEvents(kiosk_pb2.WatchEventsRequest(), timeout=CALL_TIMEOUT_S)
    try:
        for event in stream:
            status = event.device_status_changed.status
            if status.device == "camera" and status.state == common_pb2.DEVICE_STATE_ONLINE:
                return
    except grpc.RpcError as exc:
        raise BenchError(f"the camera did not come ONLINE: {exc.code()}") from None
    finally:
        stream.cancel()


def idle_cpu_pct(pid: int) -> float:
    """The daemon's CPU, in % of a core, over IDLE_S with nobody watching: the camera grabs on its own."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(IDLE_S)
    return (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0) * 100


def _place_phone(socket_dir: Path) -> None:
    control = json.loads((socket_dir / "sim" / "endpoints.json").read_text())["control"]
    with grpc.insecure_channel(control) as channel:
        request = simulator_pb2.FaultRequest(device="camera", fault="place", params={"profile": "pixel-7", "seed": "1"})
        simulator_pb2_grpc.SimulatorStub(channel).Fault(request, timeout=CALL_TIMEOUT_S)


def run_daemon(root: Path, counts: dict[str, Any]) -> dict[str, Any]:
    """One ``hwd serve --simulated``: captures and floors at each size, previews, inspects."""
    out: dict[str, Any] = {"capture": {}, "repeat": {}, "floor": {}, "oneshot": {}, "preview": {}}
    with HwdDaemon(root, simulated=True) as daemon:
        daemon.start()
        doc = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())
        url = doc["devices"]["camera"]["endpoint"]
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        with grpc.insecure_channel(daemon.target("tech"), options) as channel:
            stub = camera_pb2_grpc.CameraStub(channel)
            wait_camera_online(channel)
            out["idle_cpu_pct"] = idle_cpu_pct(daemon.pid)
            for size in SIZES:
                key = f"{size[0]}x{size[1]}"
                sized = f"{url}?size={key}"
                out["capture"][key] = hwd_captures(stub, size, counts["captures"], repeat=False)
                out["repeat"][key] = hwd_captures(stub, size, counts["captures"], repeat=True)
                out["floor"][key] = floor_kept_open(sized, counts["captures"])
                out["oneshot"][key] = floor_one_shot(sized, counts["oneshots"])
            hwd_captures(stub, PREVIEW_SIZE, 0, repeat=False)  # the preview shows the camera at 720p
            for viewers in VIEWERS:
                out["preview"][viewers] = preview_run(daemon, viewers, counts["preview_s"])
            _place_phone(daemon.socket_dir)
            out["inspect"] = inspect_run(stub, counts["inspects"])
    return out


def _add_capture(section: Section, out: dict[str, Any]) -> None:
    for width, height in SIZES:
        key = f"{width}x{height}"
        hwd, floor = Summary.of_ns(out["capture"][key]), Summary.of_ns(out["floor"][key])
        one = Summary.of_ns(out["oneshot"][key])
        goal = Goal(80.0) if height == 1080 else None
        section.add(f"capture_{height}p_p50_ms", f"Capture {key} p50", hwd.p50, "ms", goal)
        section.add(f"capture_{height}p_p99_ms", f"Capture {key} p99", hwd.p99, "ms")
        again = Summary.of_ns(out["repeat"][key])
        section.add(
            f"capture_{height}p_repeat_p50_ms", f"Capture {key}, the size asked each time, p50", again.p50, "ms"
        )
        section.add(f"cv2_{height}p_p50_ms", f"cv2.VideoCapture kept open {key}: read+encode p50", floor.p50, "ms")
        section.add(f"cv2_{height}p_p99_ms", f"cv2.VideoCapture kept open {key}: read+encode p99", floor.p99, "ms")
        section.add(f"cv2_oneshot_{height}p_p50_ms", f"cv2.VideoCapture open+read+encode {key} p50", one.p50, "ms")
        section.add(f"ratio_{height}p_p50", f"ratio hwd / cv2 kept open, {key} p50", hwd.p50 / floor.p50, "x")


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 9 and records its figures in ``section``."""
    counts = QUICK_COUNTS if ctx.counts is QUICK else FULL_COUNTS
    out = run_daemon(ctx.dir(NAME), counts)
    _add_capture(section, out)
    for viewers in VIEWERS:
        p = out["preview"][viewers]
        goal = Goal(15.0, ">=") if viewers == 5 else None
        section.add(
            f"preview_{viewers}_fps", f"preview 720p, slowest of {viewers} viewer(s)", min(p["rates"]), "fps", goal
        )
        section.add(f"preview_{viewers}_cpu_pct", f"daemon CPU, {viewers} viewer(s)", p["cpu_pct"], "% core")
    section.add("idle_cpu_pct", "daemon CPU, camera open at 1080p, nobody watching", out["idle_cpu_pct"], "% core")
    section.add(
        "preview_frame_kb", "preview frame size (720p, quality 70)", out["preview"][1]["frame_bytes"] / 1024, "KiB"
    )
    walls, computes, seen = out["inspect"]
    wall = Summary.of_ns(walls)
    section.add("inspect_p50_ms", "Inspect 1920x1080 p50 (wall)", wall.p50, "ms")
    section.add("inspect_p99_ms", "Inspect 1920x1080 p99 (wall)", wall.p99, "ms")
    section.add("inspect_compute_ms", "Inspect compute_ms median", sorted(computes)[len(computes) // 2], "ms")
    if not seen:
        section.notes.append("an Inspect did not see the phone placed in the tray")
    section.details["preview"] = {str(k): v for k, v in out["preview"].items()}
    section.details["capture"] = {k: as_dict(Summary.of_ns(v)) for k, v in out["capture"].items()}
    section.details["floor"] = {k: as_dict(Summary.of_ns(v)) for k, v in out["floor"].items()}
