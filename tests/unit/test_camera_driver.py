"""The OpenCV camera driver against a real MJPEG video file, an MJPEG-over-HTTP server, and a stand-in
V4L2 capture (settings read back, a device that hangs)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hwd.drivers.camera import OpenCvCamera, encode_image
from hwd.drivers.camera_owner import sized_url
from hwd.errors import DeviceUnavailable
from hwd.journal import Journal
from hwd.model import CameraSettings, ImageFormat
from hwd.model.camera import CameraLink
from hwd.services.camera import CameraService
from hwd.services.events import EventBus
from hwd.services.registry import DeviceRegistry
from tests.mjpeg_server import MjpegServer, shaded_frame


def _fast(source: str, opener: Any = None) -> OpenCvCamera:
    """A camera with short deadlines and backoff, so that losses and reconnects happen quickly."""
    extra = {} if opener is None else {"opener": opener}
    return OpenCvCamera(source, timeout_s=1.0, backoff_s=0.05, max_backoff_s=0.2, **extra)


def _camera_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("camera")]


async def _until(camera: OpenCvCamera, online: bool) -> CameraLink:
    link = camera.link()
    async with asyncio.timeout(10):
        while link.online is not online:
            link = await camera.link_changed(link.version)
    return link


# ---- a video file ------------------------------------------------------------------------------


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "tray.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (320, 240))
    for shade in range(0, 250, 25):
        writer.write(shaded_frame(320, 240, shade))
    writer.release()
    return path


@pytest.fixture
async def file_camera(video: Path) -> AsyncIterator[OpenCvCamera]:
    camera = _fast(str(video))
    yield camera
    await camera.close()


async def test_a_video_file_gives_frames_and_loops_at_its_end(file_camera: OpenCvCamera) -> None:
    link = await file_camera.open()
    assert link.online
    assert link.reason == "OK"
    frame = await file_camera.next_frame(0)
    assert (frame.width, frame.height) == (320, 240)
    later = await file_camera.next_frame(25)  # the file has 10 frames: it was looped
    assert later.sequence == 26
    settings = {s.name: s.actual for s in file_camera.settings()}
    assert (settings["width"], settings["height"]) == ("320", "240")


async def test_a_size_the_file_lacks_is_reported_not_applied(file_camera: OpenCvCamera) -> None:
    await file_camera.open()
    applied = {s.name: s for s in await file_camera.apply(CameraSettings(width=640, height=480, focus=10))}
    assert not applied["width"].applied
    assert applied["width"].actual == "320"
    assert applied["width"].detail == "the device has no 640x480 mode; frames are 320x240"
    assert not applied["focus"].applied
    assert applied["focus"].detail == "the device has no focus control"


async def test_stills_encode_as_jpeg_and_png(file_camera: OpenCvCamera) -> None:
    await file_camera.open()
    frame = await file_camera.next_frame(0)
    jpeg = await file_camera.encode(frame, ImageFormat.JPEG, 90)
    png = await file_camera.encode(frame, ImageFormat.PNG, 90)
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (240, 320, 3)
    assert len(encode_image(frame.pixels, ImageFormat.JPEG, 10)) < len(jpeg)


async def test_close_leaves_no_thread_and_commands_then_fail(video: Path) -> None:
    camera = _fast(str(video))
    await camera.open()
    assert _camera_threads()
    await camera.close()
    assert _camera_threads() == []
    assert camera.link().reason == "CLOSED"
    with pytest.raises(DeviceUnavailable):
        await camera.apply(CameraSettings(fps=10))


async def test_a_missing_source_is_offline_and_retried(tmp_path: Path) -> None:
    camera = _fast(str(tmp_path / "nothing.avi"))
    try:
        link = await camera.open()
        assert not link.online
        assert link.reason == "CAMERA_NOT_FOUND"
        with pytest.raises(DeviceUnavailable, match="offline"):
            await camera.next_frame(0)
    finally:
        await camera.close()
    assert _camera_threads() == []


# ---- an MJPEG-over-HTTP camera -----------------------------------------------------------------


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    with MjpegServer().running() as server:
        yield server


async def test_a_stream_gives_its_latest_frame_and_counts_frames(mjpeg: MjpegServer) -> None:
    camera = _fast(mjpeg.url)
    try:
        assert (await camera.open()).online
        first = await camera.next_frame(0)
        second = await camera.next_frame(first.sequence)
        assert (second.width, second.height) == (640, 480)
        assert second.sequence > first.sequence
        assert camera.frames >= 2
    finally:
        await camera.close()


async def test_a_stream_size_variant_is_applied_and_a_missing_one_is_not(mjpeg: MjpegServer) -> None:
    camera = _fast(mjpeg.url)
    try:
        await camera.open()
        small = {s.name: s for s in await camera.apply(CameraSettings(width=320, height=240))}
        assert small["width"].applied
        assert small["height"].actual == "240"
        frame = await camera.next_frame(camera.latest().sequence)  # type: ignore[union-attr]
        assert (frame.width, frame.height) == (320, 240)
        odd = {s.name: s for s in await camera.apply(CameraSettings(width=1000, height=1000))}
        assert not odd["width"].applied
        assert (odd["width"].actual, odd["height"].actual) == ("320", "240")
        fps = {s.name: s for s in await camera.apply(CameraSettings(fps=10))}["fps"]
        assert not fps.applied
        assert fps.detail == "the device has no frame rate control"
    finally:
        await camera.close()


async def test_a_frozen_stream_hits_the_deadline_and_the_driver_reconnects(mjpeg: MjpegServer) -> None:
    camera = _fast(mjpeg.url)
    try:
        await camera.open()
        await camera.apply(CameraSettings(width=320, height=240))
        mjpeg.flowing.clear()
        lost = await _until(camera, online=False)
        assert lost.reason == "CAMERA_LOST"
        with pytest.raises(DeviceUnavailable):
            await camera.next_frame(0)
        mjpeg.flowing.set()
        await _until(camera, online=True)
        frame = await camera.next_frame(0)
        assert (frame.width, frame.height) == (320, 240)  # the size asked for survives the reconnect
    finally:
        await camera.close()
    assert _camera_threads() == []


def _resting(source: str, *, close_s: float = 0.2, probe_s: float = 60.0, backoff_s: float = 0.05) -> OpenCvCamera:
    """A camera that releases a stream ``close_s`` after frames were last wanted and checks it every ``probe_s``."""
    return OpenCvCamera(
        source, timeout_s=1.0, backoff_s=backoff_s, max_backoff_s=0.2, idle_close_s=close_s, idle_probe_s=probe_s
    )


async def _until_idle(camera: OpenCvCamera) -> CameraLink:
    link = camera.link()
    async with asyncio.timeout(10):
        while not link.detail.startswith("idle"):
            link = await camera.link_changed(link.version)
    assert (link.online, link.reason) == (True, "OK")
    return link


async def test_an_unwatched_stream_is_released_and_a_read_reopens_it_for_a_fresh_frame(mjpeg: MjpegServer) -> None:
    camera = _resting(mjpeg.url)
    try:
        await camera.open()
        idle = await _until_idle(camera)
        assert idle.detail == f"idle: {mjpeg.url} opens when frames are wanted"
        await mjpeg.until(lambda: mjpeg.clients == 0)
        frames, requests = camera.frames, mjpeg.requests
        await asyncio.sleep(0.5)  # more than twice the idle delay: a resting camera decodes nothing at all
        assert (camera.frames, mjpeg.requests, mjpeg.clients) == (frames, requests, 0)
        assert camera.link() == idle
        stale = camera.latest()
        assert stale is not None, "the last frame stays at hand while idle"
        asked_ns = time.time_ns()
        fresh = await camera.next_frame(stale.sequence)
        assert fresh.captured_ns > asked_ns
        assert camera.link().detail == f"streaming from {mjpeg.url}"
        assert mjpeg.requests == requests + 1
        await _until_idle(camera)
    finally:
        await camera.close()


async def test_a_setting_while_idle_reopens_the_stream_and_holds_on_every_reopening(mjpeg: MjpegServer) -> None:
    camera = _resting(mjpeg.url)
    try:
        await camera.open()
        await _until_idle(camera)
        small = {s.name: s for s in await camera.apply(CameraSettings(width=320, height=240))}
        assert small["width"].applied
        await _until_idle(camera)
        await mjpeg.until(lambda: mjpeg.clients == 0)
        frame = await camera.next_frame(camera.latest().sequence)  # type: ignore[union-attr]
        assert (frame.width, frame.height) == (320, 240)
    finally:
        await camera.close()


async def test_the_idle_check_sees_the_camera_vanish_and_return(mjpeg: MjpegServer) -> None:
    camera = _resting(mjpeg.url, probe_s=0.2, backoff_s=0.5)
    try:
        await camera.open()
        await _until_idle(camera)
        await mjpeg.until(lambda: mjpeg.clients == 0)
        frames, checked = camera.frames, mjpeg.requests + 2
        await mjpeg.until(lambda: mjpeg.requests >= checked and mjpeg.clients == 0)
        assert camera.frames == frames, "a check reads one frame and drops it"
        assert camera.link().detail.startswith("idle")
        mjpeg.vanish()
        lost = await _until(camera, online=False)
        assert lost.reason == "CAMERA_LOST"
        with pytest.raises(DeviceUnavailable, match="offline"):
            await camera.next_frame(0)
        mjpeg.back()
        back = await _until(camera, online=True)
        assert back.detail.startswith("idle")
        frame = await camera.next_frame(0)
        assert (frame.width, frame.height) == (640, 480)
    finally:
        await camera.close()
    assert _camera_threads() == []


async def test_a_preview_viewer_keeps_the_stream_open(mjpeg: MjpegServer, journal: Journal, tmp_path: Path) -> None:
    bus = EventBus(journal, queue_size=64, replay_page=16)
    await bus.start()
    camera = _resting(mjpeg.url, close_s=0.5)
    service = CameraService(
        camera, DeviceRegistry(bus), bus, journal, state_dir=tmp_path, session_of=lambda port: None
    )  # fmt: skip
    try:
        await camera.open()
        await _until_idle(camera)
        await mjpeg.until(lambda: mjpeg.clients == 0)
        stale = camera.latest()
        assert stale is not None
        seen: list[int] = []
        async with contextlib.aclosing(service.preview(max_fps=30, quality=50)) as viewer:
            async for frame in viewer:
                seen.append(frame.sequence)
                if len(seen) == 1:
                    streaming = camera.link()
                if len(seen) == 45:  # 1.5 s at 30 fps: three times the idle delay
                    break
        assert seen[0] > stale.sequence, "the viewer's first frame is live, not the one kept from before"
        assert camera.link() == streaming, "the stream never went idle while watched"
        assert streaming.detail.startswith("streaming")
        assert mjpeg.requests == 2  # the first connection and one reopening for the viewer
        await _until_idle(camera)  # the viewer gone, it rests again
    finally:
        await camera.close()


def test_sized_url_replaces_an_existing_size() -> None:
    assert sized_url("http://h:1/s.mjpg?size=9x9&x=1", 320, 240) == "http://h:1/s.mjpg?x=1&size=320x240"


# ---- a V4L2 device (stand-in capture) ----------------------------------------------------------


class StandInV4l2:
    """A V4L2 capture as OpenCV's backend presents it: modes 640x480 and 1280x720, exposure (1..5000,
    only in manual mode) and white balance controls, no focus control. ``hang`` makes ``read`` block
    until ``freed`` is set, like a device that stops answering."""

    MODES = frozenset({(640, 480), (1280, 720)})

    def __init__(self, hang: threading.Event, freed: threading.Event) -> None:
        self.hang, self.freed, self.pace = hang, freed, threading.Event()
        self.reads, self.busy = 0, threading.Event()  # busy: 50 frames read
        self.props = {
            cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0, cv2.CAP_PROP_FPS: 30.0,
            cv2.CAP_PROP_AUTO_EXPOSURE: 3.0, cv2.CAP_PROP_EXPOSURE: 150.0, cv2.CAP_PROP_AUTO_WB: 1.0,
            cv2.CAP_PROP_WB_TEMPERATURE: 4600.0,
        }  # fmt: skip
        self.asked_width = 640.0

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        if self.hang.is_set():
            self.freed.wait()
            return False, None
        self.pace.wait(0.01)  # a 100 fps sensor
        self.reads += 1
        if self.reads >= 50:
            self.busy.set()
        return True, shaded_frame(
            int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT]), 9
        )

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            self.asked_width = value
        elif prop == cv2.CAP_PROP_FRAME_HEIGHT:
            if (int(self.asked_width), int(value)) in self.MODES:
                self.props[cv2.CAP_PROP_FRAME_WIDTH], self.props[prop] = self.asked_width, value
        elif prop == cv2.CAP_PROP_EXPOSURE:
            if self.props[cv2.CAP_PROP_AUTO_EXPOSURE] == 1.0:
                self.props[prop] = min(max(value, 1.0), 5000.0)
        elif prop == cv2.CAP_PROP_WB_TEMPERATURE:
            if self.props[cv2.CAP_PROP_AUTO_WB] == 0.0:
                self.props[prop] = value
        elif prop in self.props:
            self.props[prop] = value
        else:
            return False
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, -1.0)

    def release(self) -> None:
        pass


@contextlib.contextmanager
def _stand_ins() -> Iterator[tuple[list[StandInV4l2], threading.Event, threading.Event, Any]]:
    made: list[StandInV4l2] = []
    hang, freed = threading.Event(), threading.Event()

    def opener(source: str, api: int, params: list[int]) -> StandInV4l2:
        assert api == cv2.CAP_V4L2
        made.append(StandInV4l2(hang if not made else threading.Event(), freed))
        return made[-1]

    try:
        yield made, hang, freed, opener
    finally:
        freed.set()


async def test_v4l2_settings_are_applied_and_read_back() -> None:
    with _stand_ins() as (_, _, _, opener):
        camera = _fast("/dev/video-standin", opener)
        try:
            await camera.open()
            asked = CameraSettings(width=1280, height=720, exposure=200, white_balance_k=5000, focus=10)
            got = {s.name: s for s in await camera.apply(asked)}
            assert (got["width"].actual, got["height"].actual) == ("1280", "720")
            assert got["height"].applied
            assert (got["exposure"].actual, got["exposure"].applied) == ("200", True)
            assert (got["auto_exposure"].requested, got["auto_exposure"].actual) == ("false", "false")
            assert (got["white_balance_k"].actual, got["auto_white_balance"].actual) == ("5000", "false")
            assert got["focus"].detail == "the device has no focus control"
            assert got["fps"].requested == ""  # not asked for: read back as it stands
            frame = await camera.next_frame(camera.latest().sequence)  # type: ignore[union-attr]
            assert (frame.width, frame.height) == (1280, 720)
            clamped = {s.name: s for s in await camera.apply(CameraSettings(exposure=99999))}["exposure"]
            assert not clamped.applied
            assert clamped.detail == "the device reads back 5000"
            assert {s.name: s.actual for s in camera.settings()}["exposure"] == "5000"
        finally:
            await camera.close()


async def test_a_v4l2_device_keeps_streaming_with_nobody_reading() -> None:
    with _stand_ins() as (made, _, _, opener):
        camera = OpenCvCamera("/dev/video-standin", opener=opener, idle_close_s=0.05, idle_probe_s=0.05)
        try:
            link = await camera.open()
            await asyncio.to_thread(made[0].busy.wait, 10)  # 50 reads: 0.5 s at 100 fps, ten idle delays
            assert camera.link() == link
            assert link.detail == "streaming from /dev/video-standin"
            assert len(made) == 1
        finally:
            await camera.close()


async def test_a_device_that_hangs_is_abandoned_and_reconnected() -> None:
    with _stand_ins() as (made, hang, freed, opener):
        camera = OpenCvCamera("/dev/video-standin", opener=opener, timeout_s=0.2, backoff_s=0.05, max_backoff_s=0.2)
        try:
            await camera.open()
            await camera.apply(CameraSettings(width=1280, height=720))
            hang.set()
            stalled = await _until(camera, online=False)
            assert stalled.reason == "CAMERA_STALLED"
            await _until(camera, online=True)
            frame = await camera.next_frame(0)
            assert (frame.width, frame.height) == (1280, 720), "the new connection gets the settings asked before"
            assert len(made) == 2
            assert camera.stalls == 1
            freed.set()  # the stuck call returns: the abandoned thread releases its capture and ends
        finally:
            await camera.close()
        assert _camera_threads() == []
