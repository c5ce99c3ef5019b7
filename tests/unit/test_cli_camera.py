"""`hwd camera ...`, `hwd probe camera` and `hwd sim camera ...` against in-process fake services."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from hwd.cli.main import run
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import camera_pb2, camera_pb2_grpc, common_pb2, kiosk_pb2, kiosk_pb2_grpc
from tests.unit.test_cli import Failure
from tests.unit.test_cli_peripherals import Calls, cells, header_fields, hwd

T0 = timestamp_pb2.Timestamp(seconds=1_767_000_000, nanos=123_000_000)
# More than grpc's default 4 MiB message limit: a large PNG still.
BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)
NO_FOCUS = "the device has no focus control"


def image(data: bytes = b"\xff\xd8jpeg\xff\xd9", **extra: Any) -> camera_pb2.Image:
    settings = [
        camera_pb2.AppliedSetting(name="width", requested="1280", actual="1280", applied=True),
        camera_pb2.AppliedSetting(name="focus", requested="", actual="", applied=False, detail=NO_FOCUS),
    ]
    values: dict[str, Any] = {"width": 1280, "height": 720, "format": camera_pb2.IMAGE_FORMAT_JPEG}
    values.update(extra)
    return camera_pb2.Image(
        data=data, sha256=hashlib.sha256(data).hexdigest(), captured=T0, settings=settings, **values
    )


def signals() -> camera_pb2.InspectionSignals:
    return camera_pb2.InspectionSignals(
        phone_present=camera_pb2.Signal(flag=True, confidence=0.98),
        outline=[camera_pb2.Point(x=800, y=200), camera_pb2.Point(x=1100, y=210)],
        orientation_deg=camera_pb2.Signal(number=-2.5, confidence=0.9),
        length_px=camera_pb2.Signal(number=778.0, confidence=0.9),
        screen_on=camera_pb2.Signal(flag=False, confidence=0.7),
        crack_score=camera_pb2.Signal(number=0.0, confidence=0.6),
    )


class FakeCamera(camera_pb2_grpc.CameraServicer):
    """Canned answers; `still` is what Capture and Inspect return."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.still = image()

    def GetStatus(self, request: Any, context: Any) -> camera_pb2.GetCameraStatusResponse:
        status = common_pb2.DeviceStatus(device="camera", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK")
        response = camera_pb2.GetCameraStatusResponse(
            status=status, source="http://127.0.0.1:8554/stream.mjpg", width=1920, height=1080,
            settings=self.still.settings, evidence_count=3,
        )  # fmt: skip
        return self.calls.answer("GetStatus", request, context, response)

    def Capture(self, request: camera_pb2.CaptureRequest, context: Any) -> camera_pb2.CaptureResponse:
        return self.calls.answer("Capture", request, context, camera_pb2.CaptureResponse(image=self.still))

    def Inspect(self, request: camera_pb2.InspectRequest, context: Any) -> camera_pb2.InspectResponse:
        response = camera_pb2.InspectResponse(image=self.still, signals=signals(), compute_ms=12.5)
        return self.calls.answer("Inspect", request, context, response)


class Kiosk(kiosk_pb2_grpc.KioskServicer):
    def GetStatus(self, request: Any, context: Any) -> kiosk_pb2.GetStatusResponse:
        devices = [
            common_pb2.DeviceStatus(device="camera", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK", since=T0),
            common_pb2.DeviceStatus(device="printer", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK", since=T0),
        ]
        daemon = common_pb2.DeviceStatus(device="daemon", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK")
        return kiosk_pb2.GetStatusResponse(version="1.0", daemon=daemon, devices=devices)


@contextmanager
def _serve(tmp_path: Path, socket: str, *adders: Any) -> Iterator[grpc.Server]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        for add in adders:
            add(server)
        server.add_insecure_port(f"unix:{tmp_path / socket}")
        server.start()
        try:
            yield server
        finally:
            server.stop(None).wait()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCamera]:
    camera = FakeCamera(Calls())
    adders = (
        lambda s: camera_pb2_grpc.add_CameraServicer_to_server(camera, s),
        lambda s: kiosk_pb2_grpc.add_KioskServicer_to_server(Kiosk(), s),
    )
    with _serve(tmp_path, "tech.sock", *adders):
        yield camera


def last(fake: FakeCamera, method: str) -> Any:
    seen, request, _, remaining = fake.calls.seen[-1]
    assert seen == method
    assert remaining > 20  # camera commands get a long deadline
    return request


# --- capture ---------------------------------------------------------------------------------------


def test_capture_writes_the_image_and_prints_its_provenance(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "still.jpg"

    assert hwd(tmp_path, "camera", "capture", str(out_file)) == 0

    assert out_file.read_bytes() == fake.still.data
    request = last(fake, "Capture")
    assert request == camera_pb2.CaptureRequest(format=camera_pb2.IMAGE_FORMAT_JPEG, settings={})
    head, settings = capsys.readouterr().out.split("\n\n")
    shown = header_fields(head)
    assert shown["file"] == str(out_file)
    assert shown["image"] == f"1280x720 JPEG, {len(fake.still.data)} bytes"
    assert shown["sha256"] == fake.still.sha256
    assert shown["evidence"] == "-"
    rows = cells(settings)
    assert rows[0] == {"SETTING": "width", "REQUESTED": "1280", "ACTUAL": "1280", "APPLIED": "yes", "DETAIL": "-"}
    assert rows[1]["DETAIL"] == NO_FOCUS


def test_capture_sends_format_quality_size_port_and_manual_settings(fake: FakeCamera, tmp_path: Path) -> None:
    args = ["--format", "png", "--quality", "80", "--width", "1280", "--height", "720", "--port", "1-4.2"]
    more = ["--exposure", "120", "--auto-focus", "off", "--auto-white-balance", "ON"]

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.png"), *args, *more) == 0

    request = last(fake, "Capture")
    assert (request.format, request.quality, request.port) == (camera_pb2.IMAGE_FORMAT_PNG, 80, "1-4.2")
    settings = request.settings
    assert (settings.width, settings.height, settings.exposure) == (1280, 720, 120.0)
    assert settings.HasField("auto_focus")
    assert not settings.auto_focus
    assert settings.auto_white_balance
    assert not settings.HasField("fps")
    assert not settings.HasField("auto_exposure")


def test_a_setting_not_applied_is_listed_after_the_table(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.still = image()
    fake.still.settings.append(
        camera_pb2.AppliedSetting(name="height", requested="333", actual="720", applied=False, detail="unsupported")
    )

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.jpg"), "--width", "500", "--height", "333") == 0

    out = capsys.readouterr().out
    assert out.endswith("\nnot applied: height\n")


def test_capture_accepts_a_still_larger_than_grpcs_default_limit(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.still = image(BIG, format=camera_pb2.IMAGE_FORMAT_PNG, width=1920, height=1080)

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "big.png"), "--format", "png", "--json") == 0

    assert (tmp_path / "big.png").read_bytes() == BIG
    data = json.loads(capsys.readouterr().out)["image"]
    assert "data" not in data
    assert (data["bytes"], data["format"], data["file"]) == (len(BIG), "IMAGE_FORMAT_PNG", str(tmp_path / "big.png"))
    assert data["sha256"] == hashlib.sha256(BIG).hexdigest()


def test_an_image_that_does_not_match_its_sha256_is_not_written(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.still = image()
    fake.still.sha256 = "0" * 64

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.jpg")) == 1

    assert not (tmp_path / "x.jpg").exists()
    assert "sha256" in capsys.readouterr().err


def test_a_bad_setting_refused_by_the_daemon_exits_5_with_the_field(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.calls.failure = Failure(
        grpc.StatusCode.INVALID_ARGUMENT, "exposure: a manual value needs auto_exposure off", "INVALID_ARGUMENT",
        {"field": "exposure"},
    )  # fmt: skip

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.jpg"), "--exposure", "5", "--auto-exposure", "on") == 5

    err = capsys.readouterr().err
    assert err.startswith("hwd: INVALID_ARGUMENT INVALID_ARGUMENT: exposure:")
    assert "  field: exposure" in err
    assert not (tmp_path / "x.jpg").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--quality", "0"],
        ["--quality", "101"],
        ["--format", "gif"],
        ["--width", "0", "--height", "10"],
        ["--auto-focus", "maybe"],
        ["--fps", "nan"],
    ],
)
def test_bad_options_are_usage_errors_without_a_call(fake: FakeCamera, tmp_path: Path, argv: list[str]) -> None:
    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.jpg"), *argv) == 2

    assert fake.calls.seen == []


def test_camera_offline_exits_3(fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.calls.failure = Failure(grpc.StatusCode.UNAVAILABLE, "the camera is offline", "DEVICE_UNAVAILABLE")

    assert hwd(tmp_path, "camera", "capture", str(tmp_path / "x.jpg")) == 3

    assert capsys.readouterr().err.startswith("hwd: UNAVAILABLE DEVICE_UNAVAILABLE: the camera is offline")


# --- inspect ---------------------------------------------------------------------------------------


def test_inspect_prints_every_signal_with_its_confidence(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "camera", "inspect", "--port", "1-4.2") == 0

    assert last(fake, "Inspect").port == "1-4.2"
    head, table_text = capsys.readouterr().out.split("\n\n")
    shown = header_fields(head)
    assert shown["compute"] == "12.5 ms"
    assert shown["outline"] == "(800,200) (1100,210)"
    rows = {row["SIGNAL"]: (row["VALUE"], row["CONFIDENCE"]) for row in cells(table_text)}
    assert rows == {
        "phone_present": ("yes", "0.98"), "orientation_deg": ("-2.5 deg", "0.90"), "length_px": ("778 px", "0.90"),
        "width_px": ("-", "-"), "length_mm": ("-", "-"), "width_mm": ("-", "-"), "screen_on": ("no", "0.70"),
        "crack_score": ("0", "0.60"),
    }  # fmt: skip


def test_inspect_save_and_json(fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "inspected.jpg"

    assert hwd(tmp_path, "camera", "inspect", "--save", str(saved), "--json") == 0

    assert saved.read_bytes() == fake.still.data
    data = json.loads(capsys.readouterr().out)
    assert data["signals"]["phone_present"] == {"flag": True, "confidence": 0.98}
    assert data["signals"]["crack_score"] == {"number": 0.0, "confidence": 0.6}
    assert data["image"]["file"] == str(saved)
    assert "data" not in data["image"]


# --- probe camera ----------------------------------------------------------------------------------


def test_probe_camera_adds_source_size_and_settings(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "probe", "camera") == 0

    parts = capsys.readouterr().out.split("\n\n")
    assert [row["DEVICE"] for row in cells(parts[1])] == ["daemon", "camera"]
    assert header_fields(parts[2]) == {
        "source": "http://127.0.0.1:8554/stream.mjpg", "size": "1920x1080", "evidence kept": "3",
    }  # fmt: skip
    assert cells(parts[3])[0]["SETTING"] == "width"


def test_probe_camera_json_has_the_camera_under_its_own_key(
    fake: FakeCamera, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "probe", "camera", "--json") == 0

    data = json.loads(capsys.readouterr().out)
    assert [d["device"] for d in data["devices"]] == ["camera"]
    assert (data["camera"]["width"], data["camera"]["evidence_count"]) == (1920, 3)


def test_probe_camera_without_a_camera_service_shows_the_table_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _serve(tmp_path, "tech.sock", lambda s: kiosk_pb2_grpc.add_KioskServicer_to_server(Kiosk(), s)):
        assert hwd(tmp_path, "probe", "camera") == 0

    out = capsys.readouterr().out
    assert "source:" not in out
    assert [row["DEVICE"] for row in cells(out.split("\n\n")[1])] == ["daemon", "camera"]


# --- sim camera ------------------------------------------------------------------------------------


class FakeSim(simulator_pb2_grpc.SimulatorServicer):
    def __init__(self) -> None:
        self.faults: list[tuple[str, str, dict[str, str]]] = []

    def Fault(self, request: simulator_pb2.FaultRequest, context: Any) -> simulator_pb2.FaultResponse:
        self.faults.append((request.device, request.fault, dict(request.params)))
        device = simulator_pb2.SimDevice(name=request.device, kind="camera", state=f"after {request.fault}")
        return simulator_pb2.FaultResponse(device=device)


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSim]:
    monkeypatch.delenv("HWD_SIM_ENDPOINTS", raising=False)
    (tmp_path / "sim").mkdir()
    control = tmp_path / "sim" / "control.sock"
    (tmp_path / "sim" / "endpoints.json").write_text(json.dumps({"version": 1, "control": f"unix:{control}"}))
    fake_sim = FakeSim()
    with _serve(
        tmp_path, "sim/control.sock", lambda s: simulator_pb2_grpc.add_SimulatorServicer_to_server(fake_sim, s)
    ):
        yield fake_sim


@pytest.mark.parametrize(
    ("argv", "fault", "params"),
    [
        (["place", "pixel-7"], "place", {"profile": "pixel-7", "cracked": "0"}),
        (["place", "galaxy-s21", "--cracked", "--screen", "on"], "place",
         {"profile": "galaxy-s21", "cracked": "1", "screen": "on"}),
        (["place", "pixel-7", "--angle", "30", "--x", "-12.5", "--seed", "7", "--screen", "off"], "place",
         {"profile": "pixel-7", "cracked": "0", "screen": "off", "angle": "30", "x": "-12.5", "seed": "7"}),
        (["remove"], "remove", {}),
        (["lights", "off"], "lights-off", {}),
        (["lights", "on"], "lights-on", {}),
        (["screen", "on"], "screen-on", {}),
        (["crack"], "crack", {}),
        (["vanish"], "vanish", {}),
        (["return"], "return", {}),
        (["freeze"], "freeze", {}),
        (["thaw"], "thaw", {}),
    ],
)  # fmt: skip
def test_sim_camera_actions_become_faults_of_the_camera(
    sim: FakeSim,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    fault: str,
    params: dict[str, str],
) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "camera", *argv]) == 0

    assert sim.faults == [("camera", fault, params)]
    assert capsys.readouterr().out == f"camera: after {fault}\n"


def test_sim_camera_takes_the_common_options_after_the_action(
    sim: FakeSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints = tmp_path / "sim" / "endpoints.json"

    assert run(["sim", "camera", "place", "pixel-7", "--json", "--endpoints", str(endpoints)]) == 0

    assert json.loads(capsys.readouterr().out)["device"]["name"] == "camera"


@pytest.mark.parametrize("argv", [["place"], ["lights"], ["lights", "dim"], ["dance"], []])
def test_sim_camera_usage_errors(sim: FakeSim, tmp_path: Path, argv: list[str]) -> None:
    assert run(["--socket-dir", str(tmp_path), "sim", "camera", *argv]) == 2

    assert sim.faults == []
