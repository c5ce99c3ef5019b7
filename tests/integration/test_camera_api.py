"""The camera through the daemon, on the simulated kiosk's MJPEG camera: stills, inspection,
errors naming the field, a camera that vanishes and returns, slow preview viewers, evidence."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hwd.daemon import SIMULATED_MM_PER_PX
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import camera_pb2, camera_pb2_grpc, common_pb2, kiosk_pb2, kiosk_pb2_grpc
from simulators.camera.scene import MM_PER_PX
from tests.helpers import DaemonProcess, error_info

ONLINE, OFFLINE = common_pb2.DEVICE_STATE_ONLINE, common_pb2.DEVICE_STATE_OFFLINE
PIXEL_7_MM = (155.6, 73.2)  # simulators/camera/phones.toml
EVENT_DEADLINE_S = 30.0
CALL_TIMEOUT_S = 30.0
INSPECT_ATTEMPTS = 10  # stills, each of a newer frame
# A stalled viewer must not make the daemon keep frames for it: generous, against ~85 KB a frame at 25 fps.
RSS_GROWTH_LIMIT_KIB = 40 * 1024
STALL_S = 4.0
# A viewer that may stall turns BDP probing off, so the HTTP/2 window (what the transport may hold
# for it) stays at 64 KiB instead of growing to megabytes: see docs/api.md.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, "--simulated")
    daemon.start()
    with daemon.channel("ui") as ui:  # the camera opens after the daemon serves: STARTING, then ONLINE
        _next_event(ui, 0, _camera_state(ONLINE))
    yield daemon
    daemon.kill()


def _sim(daemon: DaemonProcess) -> tuple[grpc.Channel, simulator_pb2_grpc.SimulatorStub]:
    control = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())["control"]
    channel = grpc.insecure_channel(control)
    return channel, simulator_pb2_grpc.SimulatorStub(channel)


def _fault(daemon: DaemonProcess, fault: str, **params: str) -> None:
    channel, sim = _sim(daemon)
    with channel:
        sim.Fault(simulator_pb2.FaultRequest(device="camera", fault=fault, params=params), timeout=10)


def _camera(channel: grpc.Channel) -> camera_pb2_grpc.CameraStub:
    return camera_pb2_grpc.CameraStub(channel)


def _capture(channel: grpc.Channel, **request: object) -> camera_pb2.Image:
    response = _camera(channel).Capture(camera_pb2.CaptureRequest(**request), timeout=CALL_TIMEOUT_S)  # type: ignore[arg-type]
    return response.image


def _decode(image: camera_pb2.Image) -> np.ndarray:
    pixels = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None, "the still does not decode"
    return pixels


def _last_sequence(channel: grpc.Channel) -> int:
    return int(kiosk_pb2_grpc.KioskStub(channel).GetStatus(kiosk_pb2.GetStatusRequest(), timeout=10).last_sequence)


def _next_event(channel: grpc.Channel, after: int, wanted: Callable[[common_pb2.Event], bool]) -> common_pb2.Event:
    """The first journaled event after sequence ``after`` that ``wanted`` accepts (the stream replays, then follows)."""
    stream = kiosk_pb2_grpc.KioskStub(channel).WatchEvents(
        kiosk_pb2.WatchEventsRequest(after_sequence=after), timeout=EVENT_DEADLINE_S
    )
    try:
        for event in stream:
            if wanted(event):
                return event
    finally:
        stream.cancel()
    raise AssertionError("the event stream ended without the event")


def _camera_state(state: int) -> Callable[[common_pb2.Event], bool]:
    def wanted(event: common_pb2.Event) -> bool:
        status = event.device_status_changed.status
        return event.HasField("device_status_changed") and status.device == "camera" and status.state == state

    return wanted


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_simulated_scale_is_the_simulators() -> None:
    assert SIMULATED_MM_PER_PX == MM_PER_PX


def test_a_still_without_settings_is_a_1080p_jpeg_whose_sha256_matches(kiosk: DaemonProcess) -> None:
    before = time.time_ns()
    with kiosk.channel("ui") as ui:
        image = _capture(ui)
        status = _camera(ui).GetStatus(camera_pb2.GetCameraStatusRequest(), timeout=10)

    assert image.format == camera_pb2.IMAGE_FORMAT_JPEG
    assert image.data[:2] == b"\xff\xd8"
    assert _decode(image).shape == (1080, 1920, 3)
    assert (image.width, image.height) == (1920, 1080)
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()
    assert image.captured.ToNanoseconds() >= before - 1_000_000_000  # a frame of now, not an old one
    assert image.evidence_id == ""
    assert {s.name: s.actual for s in image.settings}.items() >= {"width": "1920", "height": "1080"}.items()
    assert (status.status.state, status.width, status.height) == (ONLINE, 1920, 1080)
    assert status.source.startswith("http://127.0.0.1:")


def test_a_png_still_is_lossless_and_decodes(kiosk: DaemonProcess) -> None:
    with kiosk.channel("tech") as tech:
        image = _capture(tech, format=camera_pb2.IMAGE_FORMAT_PNG)

    assert image.format == camera_pb2.IMAGE_FORMAT_PNG
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert _decode(image).shape == (1080, 1920, 3)
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()


def _inspect_until(channel: grpc.Channel, present: bool) -> camera_pb2.InspectResponse:
    """Inspects new stills until one says ``phone_present`` is ``present``: the tray changes a few
    frames before the camera's stream shows it (frames already on their way over the network)."""
    for _ in range(INSPECT_ATTEMPTS):
        response = _camera(channel).Inspect(camera_pb2.InspectRequest(), timeout=CALL_TIMEOUT_S)
        if response.signals.phone_present.flag == present:
            return response
    raise AssertionError(f"{INSPECT_ATTEMPTS} stills in a row did not say phone_present={present}")


def test_a_placed_phone_is_seen_and_measured_and_a_removed_one_is_not(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        empty = _camera(ui).Inspect(camera_pb2.InspectRequest(), timeout=CALL_TIMEOUT_S).signals
        _fault(kiosk, "place", profile="pixel-7", angle="20", seed="3", screen="on")
        placed = _inspect_until(ui, True)
        _fault(kiosk, "remove")
        removed = _inspect_until(ui, False).signals

    assert not empty.phone_present.flag
    assert removed.phone_present.confidence > 0.5
    signals = placed.signals
    assert signals.phone_present.flag
    assert signals.phone_present.confidence > 0.5
    assert len(signals.outline) == 4
    assert signals.length_mm.number == pytest.approx(PIXEL_7_MM[0], rel=0.03)
    assert signals.width_mm.number == pytest.approx(PIXEL_7_MM[1], rel=0.03)
    assert signals.orientation_deg.number == pytest.approx(20, abs=3)
    assert signals.screen_on.flag
    assert placed.image.data[:2] == b"\xff\xd8"
    assert placed.compute_ms > 0


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"quality": 101}, "quality"),
        ({"settings": camera_pb2.CameraSettings(exposure=50, auto_exposure=True)}, "exposure"),
        ({"settings": camera_pb2.CameraSettings(width=1280)}, "height"),
        ({"settings": camera_pb2.CameraSettings(fps=0.5)}, "fps"),
        ({"format": 9}, "format"),
    ],
)
def test_a_bad_quality_or_setting_is_invalid_argument_naming_the_field(
    kiosk: DaemonProcess, request_fields: dict[str, object], field: str
) -> None:
    with kiosk.channel("ui") as ui, pytest.raises(grpc.RpcError) as bad:
        _capture(ui, **request_fields)

    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.value.details().startswith(f"{field}:")
    assert error_info(bad.value).metadata["field"] == field


def test_a_resolution_the_camera_lacks_is_reported_not_applied(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        odd = _capture(ui, settings=camera_pb2.CameraSettings(width=1000, height=700))
        hd = _capture(ui, settings=camera_pb2.CameraSettings(width=1280, height=720))

    odd_settings = {s.name: s for s in odd.settings}
    assert odd_settings["width"].requested == "1000"
    assert not odd_settings["width"].applied
    assert not odd_settings["height"].applied
    assert odd_settings["width"].detail
    assert _decode(odd).shape[:2] == (odd.height, odd.width) != (700, 1000)
    hd_settings = {s.name: s for s in hd.settings}
    assert (hd_settings["width"].applied, hd_settings["height"].applied) == (True, True)
    assert _decode(hd).shape == (720, 1280, 3)


def test_the_camera_vanishing_mid_preview_goes_offline_and_returns_without_a_restart(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        start = _last_sequence(ui)
        preview = _camera(ui).Preview(camera_pb2.PreviewRequest(), timeout=CALL_TIMEOUT_S)
        first = next(preview)
        assert first.jpeg[:2] == b"\xff\xd8"
        _fault(kiosk, "vanish")
        with pytest.raises(grpc.RpcError) as ended:
            for _ in preview:  # frames already on their way may still come; then the stream ends
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        offline = _next_event(ui, start, _camera_state(OFFLINE))
        devices = kiosk_pb2_grpc.KioskStub(ui).GetStatus(kiosk_pb2.GetStatusRequest(), timeout=10).devices
        assert next(d for d in devices if d.device == "camera").state == OFFLINE
        with pytest.raises(grpc.RpcError) as refused:
            _capture(ui)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        _fault(kiosk, "return")
        _next_event(ui, offline.sequence, _camera_state(ONLINE))
        image = _capture(ui)

    assert offline.device_status_changed.status.recovery_hint
    assert _decode(image).shape[:2] == (image.height, image.width)


class _Viewer:
    """A Preview stream read by the test: one frame, a stall, then on."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.stream = _camera(channel).Preview(camera_pb2.PreviewRequest(max_fps=30), timeout=120)

    def frames_until_fresh(self, fresh_after_ns: int, limit: int = 400) -> tuple[int, int]:
        """Reads until a frame captured after ``fresh_after_ns``.

        :returns: how many frames that took, and how far the sequence moved meanwhile.
        """
        start = None
        for count in range(1, limit + 1):
            frame = next(self.stream)
            start = frame.sequence if start is None else start
            if frame.captured.ToNanoseconds() > fresh_after_ns:
                return count, frame.sequence - start
        raise AssertionError(f"no fresh frame in {limit} frames")


def test_a_stalled_preview_viewer_costs_no_memory_and_resumes_on_recent_frames(
    kiosk: DaemonProcess, tmp_path: Path
) -> None:
    assert kiosk.proc is not None
    with (
        kiosk.channel("ui") as ui,
        grpc.insecure_channel(f"unix:{kiosk.socket_dir / 'ui.sock'}", SMALL_WINDOW) as small,
    ):
        steady, default = _Viewer(small), _Viewer(ui)
        next(steady.stream), next(default.stream)
        before = _rss_kib(kiosk.proc.pid)
        time.sleep(STALL_S)  # both viewers read nothing while the camera runs on
        after = _rss_kib(kiosk.proc.pid)
        resumed_ns = time.time_ns()
        small_count, _ = steady.frames_until_fresh(resumed_ns - 500_000_000)
        default_count, default_moved = default.frames_until_fresh(resumed_ns - 500_000_000)
        steady.stream.cancel()
        default.stream.cancel()

    assert after - before < RSS_GROWTH_LIMIT_KIB
    assert small_count <= 3  # at most what the 64 KiB window held
    # A default client's grown window holds some frames, but the ones captured during the stall
    # beyond it were skipped, never queued.
    assert default_moved > default_count


def test_a_preview_in_flight_ends_unavailable_when_the_daemon_stops_cleanly(kiosk: DaemonProcess) -> None:
    ended: list[grpc.StatusCode] = []
    with kiosk.channel("ui") as ui:
        preview = _camera(ui).Preview(camera_pb2.PreviewRequest(), timeout=CALL_TIMEOUT_S)
        next(preview)

        def drain() -> None:
            try:
                for _ in preview:
                    pass
            except grpc.RpcError as exc:
                ended.append(exc.code())

        reader = threading.Thread(target=drain)
        reader.start()
        assert kiosk.stop() == 0
        reader.join(CALL_TIMEOUT_S)

    assert ended == [grpc.StatusCode.UNAVAILABLE]


def _phones_served(daemon: DaemonProcess) -> bool:
    with daemon.channel("tech") as tech:
        try:
            health_pb2_grpc.HealthStub(tech).Check(health_pb2.HealthCheckRequest(service="hwd.v1.Phones"), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
    return True


def test_a_still_of_an_empty_port_is_refused(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui, pytest.raises(grpc.RpcError) as refused:
        _capture(ui, port="1-1.7")

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused.value).metadata["port"] == "1-1.7"


def test_a_still_of_a_plugged_phone_is_kept_as_evidence(kiosk: DaemonProcess) -> None:
    if not _phones_served(kiosk):
        pytest.skip("the daemon serves no Phones service: evidence needs the session of a plugged phone")
    channel, sim = _sim(kiosk)
    with kiosk.channel("ui") as ui, channel:
        start = _last_sequence(ui)
        port = sim.PlugPhone(simulator_pb2.PlugPhoneRequest(profile="pixel-7"), timeout=10).phone.port
        _next_event(ui, start, lambda e: e.HasField("port_changed") and e.port_changed.port == port)
        image = _capture(ui, port=port)
        captured = _next_event(ui, start, lambda e: e.HasField("evidence_captured"))
        count = _camera(ui).GetStatus(camera_pb2.GetCameraStatusRequest(), timeout=10).evidence_count

    assert image.evidence_id
    kept = kiosk.state_dir / "evidence" / f"{image.evidence_id}.jpg"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == image.sha256
    event = captured.evidence_captured
    assert (event.evidence_id, event.port, event.sha256) == (image.evidence_id, port, image.sha256)
    assert event.session_id
    assert count == 1
