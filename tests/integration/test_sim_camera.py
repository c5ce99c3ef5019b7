"""The simulated camera's HTTP server over real sockets, its faults, its clip, and the control service."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import numpy.typing as npt
import pytest

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators.camera import actions
from simulators.camera.__main__ import main as camera_main
from simulators.camera.http import Refusal, Request, parse_request
from simulators.camera.scene import Scene, load_looks
from simulators.camera.sim import CLIPS, CameraSim
from simulators.device import SimDevice
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

DEADLINE_S = 10.0
Frame = npt.NDArray[np.uint8]


@pytest.fixture
async def camera(tmp_path: Path) -> AsyncIterator[CameraSim]:
    sim = CameraSim(tmp_path)
    assert isinstance(sim, SimDevice)
    await sim.start()
    yield sim
    await sim.stop()


def port_of(camera: CameraSim) -> int:
    return int(camera.endpoint.split(":")[2].split("/")[0])


async def get(port: int, target: str, request: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; the status, the headers (lower-case names) and the whole body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request or f"GET {target} HTTP/1.1\r\nHost: camera\r\n\r\n".encode())
        async with asyncio.timeout(DEADLINE_S):
            status, headers = await read_head(reader)
            body = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return status, headers, body


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    return int(status_line.split(b" ")[1]), await read_headers(reader)


async def read_part(reader: asyncio.StreamReader) -> Frame:
    """The next JPEG part of a stream, decoded."""
    async with asyncio.timeout(DEADLINE_S):
        assert await reader.readline() == b"--hwdframe\r\n"
        headers = await read_headers(reader)
        jpeg = await reader.readexactly(int(headers["content-length"]))
        assert await reader.readexactly(2) == b"\r\n"
    return decode(jpeg)


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """Header lines up to the blank line, by lower-case name."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    return {name.lower(): value for name, value in (line.split(": ", 1) for line in lines if line)}


def decode(jpeg: bytes) -> Frame:
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None
    return np.asarray(frame, np.uint8)


@pytest.mark.parametrize(
    ("query", "shape"), [("", (1080, 1920)), ("?size=1280x720", (720, 1280)), ("?size=640x480", (480, 640))]
)
async def test_snapshot_sizes(camera: CameraSim, query: str, shape: tuple[int, int]) -> None:
    status, headers, body = await get(port_of(camera), f"/snapshot.jpg{query}")
    assert (status, headers["content-type"]) == (200, "image/jpeg")
    assert int(headers["content-length"]) == len(body)
    assert decode(body).shape == (*shape, 3)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /stream.mjpg?size=800x600 HTTP/1.1\r\n\r\n", 400),
        (b"GET /snapshot.jpg?size=1280x720&size=640x480 HTTP/1.1\r\n\r\n", 400),
        (b"GET /index.html HTTP/1.1\r\n\r\n", 404),
        (b"POST /snapshot.jpg HTTP/1.1\r\n\r\n", 405),
        (b"\x00\xff garbage\r\n\r\n", 400),
        (b"GET /snapshot.jpg HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(camera: CameraSim, request_bytes: bytes, status: int) -> None:
    got, headers, body = await get(port_of(camera), "", request_bytes)
    assert got == status
    assert headers["content-type"].startswith("text/plain")
    assert body.strip()


def test_request_parser_is_total() -> None:
    assert parse_request(b"GET /stream.mjpg?size=640x480 HTTP/1.0\r\n\r\n") == Request("/stream.mjpg", (640, 480))
    assert parse_request(b"GET /snapshot.jpg?x=1 HTTP/1.1\r\n\r\n") == Request("/snapshot.jpg", (1920, 1080))
    for garbage in (b"", b"\r\n\r\n", b"GET", b"GET / HTTP/2\r\n", bytes(range(256))):
        assert isinstance(parse_request(garbage), Refusal)


async def test_stream_parts_and_scene_changes(camera: CameraSim) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(camera))
    writer.write(b"GET /stream.mjpg?size=640x480 HTTP/1.1\r\n\r\n")
    try:
        status, headers = await read_head(reader)
        assert status == 200
        assert headers["content-type"] == "multipart/x-mixed-replace; boundary=hwdframe"
        empty = await read_part(reader)
        assert empty.shape == (480, 640, 3)
        await camera.fault("place", {"profile": "pixel-7", "x": "0", "y": "0", "angle": "0", "glare": "0"})
        placed = await read_part(reader)
        while np.abs(placed.astype(np.int16) - empty).max() < 40:  # a frame already on its way is the old scene
            placed = await read_part(reader)
        assert np.abs(placed[240, 320].astype(np.int16) - empty[240, 320]).max() > 40  # the phone at the centre
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_client_is_never_sent_frames_faster_than_the_frame_rate(tmp_path: Path) -> None:
    sim = CameraSim(tmp_path, fps=10)
    await sim.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(sim))
        writer.write(b"GET /stream.mjpg?size=640x480 HTTP/1.1\r\n\r\n")
        await read_head(reader)
        await read_part(reader)
        started = asyncio.get_running_loop().time()
        for _ in range(5):
            await read_part(reader)
        # A lower bound only: a slow machine can be later, never earlier.
        assert asyncio.get_running_loop().time() - started >= 5 * 0.1 - 0.02
        writer.close()
        await writer.wait_closed()
    finally:
        await sim.stop()


async def test_a_stalled_client_skips_frames_instead_of_queueing_them(camera: CameraSim) -> None:
    await camera.fault("place", {"noise": "10"})  # big noisy frames fill socket buffers quickly
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    stalled.connect(("127.0.0.1", port_of(camera)))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(camera))
        writer.write(b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
        await read_head(reader)
        for _ in range(60):
            await read_part(reader)
        writer.close()
        await writer.wait_closed()
        # The reader took 60 frames; the stalled one got only what fits in socket buffers (a few MB).
        assert camera.parts_sent - 60 < 30
    finally:
        stalled.close()


async def test_vanish_refuses_connections_and_return_serves_on_the_same_port(camera: CameraSim) -> None:
    port = port_of(camera)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream.mjpg?size=640x480 HTTP/1.1\r\n\r\n")
    await read_head(reader)
    await read_part(reader)
    await camera.fault("vanish", {})
    assert "vanished" in camera.state
    async with asyncio.timeout(DEADLINE_S):  # the stream is cut: the connection ends
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await camera.fault("return", {})
    assert port_of(camera) == port
    status, _, body = await get(port, "/snapshot.jpg?size=640x480")
    assert status == 200
    assert decode(body).shape == (480, 640, 3)


async def test_freeze_keeps_the_connection_and_stops_the_frames(camera: CameraSim) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(camera))
    writer.write(b"GET /stream.mjpg?size=640x480 HTTP/1.1\r\n\r\n")
    await read_head(reader)
    await read_part(reader)
    await camera.fault("freeze", {})
    assert "frozen" in camera.state
    # At most the frame already on its way arrives; then nothing, on a connection still open.
    drained = await _bytes_within(reader, 1.0)
    assert await _bytes_within(reader, 0.5) == b""
    assert not reader.at_eof()
    await camera.fault("thaw", {})
    if drained and not drained.endswith(b"\r\n"):
        await reader.readuntil(b"\r\n--")  # finish the part that was cut by the freeze
        await reader.readline()
        await reader.readuntil(b"\r\n\r\n")
    else:
        assert (await read_part(reader)).shape == (480, 640, 3)
    writer.close()
    await writer.wait_closed()


async def _bytes_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    data = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        pass
    return data


async def test_reset_brings_back_an_empty_lit_listening_camera(camera: CameraSim) -> None:
    port = port_of(camera)
    await camera.fault("place", {"profile": "iphone-13"})
    await camera.fault("lights-off", {})
    await camera.fault("freeze", {})
    await camera.fault("vanish", {})
    await camera.reset()
    assert camera.scene == Scene()
    assert camera.state == "empty tray"
    status, _, _ = await get(port, "/snapshot.jpg?size=640x480")
    assert status == 200


async def test_frames_are_encoded_once_per_scene_and_size(camera: CameraSim) -> None:
    port = port_of(camera)
    for _ in range(3):
        await get(port, "/snapshot.jpg?size=640x480")
    assert camera.encodings == 1
    await camera.fault("lights-off", {})
    await get(port, "/snapshot.jpg?size=640x480")
    assert camera.encodings == 2


async def test_record_writes_an_mjpg_video_of_a_kiosk_session(camera: CameraSim, tmp_path: Path) -> None:
    assert camera.artifacts == []
    await camera.fault("record", {"size": "640x480", "seed": "4"})
    await camera.fault("record", {"size": "1280x720", "fps": "5"})
    assert camera.artifacts == [str(tmp_path / CLIPS / "clip-0001.avi"), str(tmp_path / CLIPS / "clip-0002.avi")]
    video = cv2.VideoCapture(camera.artifacts[0])
    try:
        assert video.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter.fourcc(*"MJPG")
        frames = []
        while (frame := video.read())[0]:
            frames.append(frame[1])
    finally:
        video.release()
    assert len(frames) == 40
    assert frames[0].shape == (480, 640, 3)
    assert np.abs(frames[0].astype(np.int16) - frames[15]).max() > 100  # the phone arrives
    with pytest.raises(ValueError, match="unsupported size"):
        await camera.fault("record", {"size": "4k"})


def test_place_parameters_are_checked() -> None:
    looks = load_looks()
    placed = actions.apply(
        Scene(lights_on=False), "place", {"profile": "moto-g", "cracked": "1", "screen": "on"}, looks, 1
    )
    assert placed.phone == looks["moto-g"]
    assert (placed.cracked, placed.screen_on, placed.lights_on) == (True, True, False)
    assert actions.apply(Scene(), "place", {}, looks, 5) == actions.apply(Scene(), "place", {}, looks, 5)
    assert actions.apply(Scene(), "place", {"seed": "3"}, looks, 5) == actions.apply(Scene(), "place", {}, looks, 3)
    for params, match in [
        ({"profile": "nokia-3310"}, "unknown phone profile"),
        ({"cracked": "yes"}, "cracked"),
        ({"screen": "dim"}, "screen"),
        ({"angle": "nan"}, "angle"),
        ({"x": "1000"}, "x must be"),
        ({"glare": "2"}, "glare"),
        ({"colour": "red"}, "does not take colour"),
    ]:
        with pytest.raises(ValueError, match=match):
            actions.apply(Scene(), "place", params, looks, 1)
    with pytest.raises(ValueError, match="needs a phone"):
        actions.apply(Scene(), "crack", {}, looks, 1)


kiosk, control = simulator_fixtures("camera")


def fault(stub: simulator_pb2_grpc.SimulatorStub, name: str, **params: str) -> simulator_pb2.SimDevice:
    request = simulator_pb2.FaultRequest(device="camera", fault=name, params=params)
    device: simulator_pb2.SimDevice = stub.Fault(request, timeout=RPC_TIMEOUT_S).device
    return device


def snapshot(kiosk: dict[str, Any]) -> Frame:
    url = kiosk["devices"]["camera"]["endpoint"].replace("stream.mjpg", "snapshot.jpg?size=640x480")
    capture = cv2.VideoCapture(url)  # OpenCV reads a single JPEG over HTTP as a one-frame video
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok
    return np.asarray(frame, np.uint8)


@pytest.fixture
def empty(kiosk: dict[str, Any], control: simulator_pb2_grpc.SimulatorStub) -> Frame:
    """The empty tray, after the control fixture has made sure the camera was reset."""
    return snapshot(kiosk)


def test_faults_through_the_control_service(
    kiosk: dict[str, Any], control: simulator_pb2_grpc.SimulatorStub, empty: Frame
) -> None:
    device = kiosk["devices"]["camera"]
    assert device["kind"] == "mjpeg-camera"
    assert device["endpoint"].startswith("http://127.0.0.1:")
    assert device["endpoint"].endswith("/stream.mjpg")
    view = fault(control, "place", profile="galaxy-s21", screen="off", cracked="0", angle="0", x="0", y="0", glare="0")
    assert view.state == "galaxy-s21, screen off"
    assert set(view.faults) >= {"place", "remove", "crack", "vanish", "return", "freeze", "lights-off"}
    assert np.abs(snapshot(kiosk)[240, 320].astype(np.int16) - empty[240, 320]).max() > 40
    assert fault(control, "crack").state == "galaxy-s21, screen off, cracked"
    assert fault(control, "lights-off").state == "galaxy-s21, screen off, cracked, lights off"
    assert snapshot(kiosk).mean() < empty.mean() / 4
    assert fault(control, "remove").state == "empty tray, lights off"


@pytest.mark.parametrize(("name", "params"), [("crack", {}), ("place", {"profile": "brick"}), ("melt", {})])
def test_refused_faults_say_why(control: simulator_pb2_grpc.SimulatorStub, name: str, params: dict[str, str]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        fault(control, name, **params)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details()


def test_the_clip_command_writes_a_video_or_says_why_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "chamber.avi"
    assert camera_main([str(out), "--size", "640x480", "--seed", "2"]) == 0
    assert capsys.readouterr().out == f"wrote 40 frames to {out}\n"
    video = cv2.VideoCapture(str(out))
    try:
        ok, frame = video.read()
    finally:
        video.release()
    assert ok
    assert frame.shape == (480, 640, 3)
    with pytest.raises(SystemExit) as exited:
        camera_main([str(tmp_path / "chamber.mp4")])
    assert exited.value.code == 1
    assert "error: need an .avi path" in capsys.readouterr().err
