"""CameraService with the in-memory camera: stills, errors naming the field, evidence, status, preview."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hwd.errors import DeviceNotReady, DeviceUnavailable, InvalidArgument, JournalUnavailable
from hwd.journal import Journal
from hwd.model import (
    CameraSettings,
    DeviceState,
    DeviceStatusChanged,
    EvidenceCaptured,
    ImageFormat,
    PreviewFrame,
)
from hwd.services.camera import CameraService
from hwd.services.camera_port import FakeCamera
from hwd.services.events import EventBus
from hwd.services.registry import DeviceRegistry

PHONES = {"1-4.2": "session-a", "1-4.3": "session-b"}


@dataclass
class Rig:
    service: CameraService
    fake: FakeCamera
    journal: Journal
    state_dir: Path


async def _rig(journal: Journal, tmp_path: Path, fake: FakeCamera, **kw: int) -> Rig:
    bus = EventBus(journal, queue_size=256, replay_page=64)
    await bus.start()
    service = CameraService(
        fake, DeviceRegistry(bus), bus, journal, state_dir=tmp_path / "state", session_of=PHONES.get, timeout_s=2.0,
        mm_per_px=0.1, **kw,
    )  # fmt: skip
    return Rig(service, fake, journal, tmp_path / "state")


@contextlib.asynccontextmanager
async def _running(rig: Rig) -> AsyncIterator[Rig]:
    task = asyncio.create_task(rig.service.run())
    await _status(rig, DeviceState.ONLINE if rig.fake.present else DeviceState.OFFLINE)
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _shows(rig: Rig, state: DeviceState) -> bool:
    registry = rig.service.registry
    return "camera" in registry and registry.get("camera").state is state


async def _status(rig: Rig, state: DeviceState) -> None:
    """Waits for the registry to show ``state`` (each change is a journaled event)."""
    if _shows(rig, state):
        return
    async with contextlib.aclosing(rig.service.bus.watch(rig.service.bus.last_sequence)) as events:  # type: ignore[type-var]
        async for _ in events:
            if _shows(rig, state):
                return


@pytest.fixture
async def rig(journal: Journal, tmp_path: Path) -> AsyncIterator[Rig]:
    async with _running(await _rig(journal, tmp_path, FakeCamera())) as running:
        yield running


async def _events(journal: Journal, kind: type) -> list[object]:
    return [e.payload for e in await journal.events_after(0, 1000) if isinstance(e.payload, kind)]


# ---- stills ------------------------------------------------------------------------------------


async def test_a_capture_carries_its_settings_size_and_hash(rig: Rig) -> None:
    before = rig.fake.emit()
    still = await rig.service.capture(CameraSettings(width=320, height=240, focus=5), ImageFormat.PNG, 0)
    assert still.data == b"PNG 2 q90 320x240"
    assert (still.width, still.height, still.format) == (320, 240, ImageFormat.PNG)
    assert still.sha256 == hashlib.sha256(still.data).hexdigest()
    settings = {s.name: s for s in still.settings}
    assert settings["width"].applied
    assert settings["width"].requested == "320"
    assert not settings["focus"].applied
    assert settings["focus"].detail == "the device has no focus control"
    assert still.captured_ns >= before.captured_ns
    assert still.evidence_id == ""
    assert rig.service.info().width == 320


async def test_quality_zero_means_90_and_is_used(rig: Rig) -> None:
    assert (await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 0)).data.endswith(b"q90 640x480")
    assert (await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 35)).data.endswith(b"q35 640x480")


@pytest.mark.parametrize(
    ("settings", "quality", "field"),
    [
        (CameraSettings(), 101, "quality"),
        (CameraSettings(), -1, "quality"),
        (CameraSettings(width=640), 90, "height"),
        (CameraSettings(width=0, height=480), 90, "width"),
        (CameraSettings(fps=0.5), 90, "fps"),
        (CameraSettings(fps=121), 90, "fps"),
        (CameraSettings(fps=float("nan")), 90, "fps"),
        (CameraSettings(exposure=-3), 90, "exposure"),
        (CameraSettings(exposure=100, auto_exposure=True), 90, "exposure"),
        (CameraSettings(white_balance_k=200), 90, "white_balance_k"),
    ],
)
async def test_bad_settings_and_quality_are_refused_naming_the_field(
    rig: Rig, settings: CameraSettings, quality: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await rig.service.capture(settings, ImageFormat.JPEG, quality)
    assert refused.value.metadata["field"] == field
    assert refused.value.message.startswith(field + ":")
    assert rig.fake.encodes == {}, "nothing was captured"


async def test_a_capture_takes_a_frame_newer_than_the_request(rig: Rig) -> None:
    stale = rig.fake.emit()
    still = await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90)
    assert still.data.startswith(f"JPEG {stale.sequence + 1} ".encode())


# ---- evidence ----------------------------------------------------------------------------------


async def test_a_capture_with_a_port_is_kept_as_evidence_of_that_session(rig: Rig) -> None:
    still = await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 80, port="1-4.2")
    assert still.evidence_id
    [record] = await rig.journal.list_evidence("session-a")
    assert (record.evidence_id, record.port, record.sha256) == (still.evidence_id, "1-4.2", still.sha256)
    assert (record.width, record.height, record.format) == (640, 480, ImageFormat.JPEG)
    path = rig.state_dir / "evidence" / record.file
    assert path.read_bytes() == still.data
    assert hashlib.sha256(path.read_bytes()).hexdigest() == still.sha256
    assert [p.name for p in path.parent.iterdir()] == [record.file], "no temp file left behind"
    [event] = await _events(rig.journal, EvidenceCaptured)
    assert event == EvidenceCaptured(still.evidence_id, "1-4.2", "session-a", still.sha256, "JPEG", 640, 480)
    assert rig.service.info().evidence_count == 1


async def test_no_phone_on_the_port_is_refused_and_nothing_is_kept(rig: Rig) -> None:
    with pytest.raises(DeviceNotReady, match="no phone on port 9-9"):
        await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90, port="9-9")
    assert await rig.journal.list_evidence() == []
    assert not (rig.state_dir / "evidence").exists()


async def test_retention_removes_the_oldest_files_and_rows(journal: Journal, tmp_path: Path) -> None:
    async with _running(await _rig(journal, tmp_path, FakeCamera(), evidence_max_files=2)) as rig:
        ids = [
            (await rig.service.capture(CameraSettings(), ImageFormat.PNG, 0, port="1-4.3")).evidence_id for _ in "abc"
        ]
        kept = await rig.journal.list_evidence()
        assert [r.evidence_id for r in kept] == ids[1:]
        assert sorted(p.name for p in (rig.state_dir / "evidence").iterdir()) == sorted(r.file for r in kept)
        assert rig.service.info().evidence_count == 2
        assert len(await _events(rig.journal, EvidenceCaptured)) == 3, "the event history stays"


async def test_evidence_that_cannot_be_written_is_an_error_and_leaves_no_row(rig: Rig) -> None:
    rig.state_dir.mkdir(parents=True, exist_ok=True)
    (rig.state_dir / "evidence").write_bytes(b"a file where the directory should be")
    with pytest.raises(JournalUnavailable, match="cannot write evidence file"):
        await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90, port="1-4.2")
    assert await rig.journal.list_evidence() == []
    assert await _events(rig.journal, EvidenceCaptured) == []


async def test_a_restart_counts_the_kept_evidence_and_removes_half_written_files(
    journal: Journal, tmp_path: Path
) -> None:
    async with _running(await _rig(journal, tmp_path, FakeCamera())) as rig:
        await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90, port="1-4.2")
    leftover = rig.state_dir / "evidence" / ".incoming-crashed.jpg"
    leftover.write_bytes(b"half a jpeg")
    async with _running(await _rig(journal, tmp_path, FakeCamera())) as again:
        assert again.service.info().evidence_count == 1
        assert not leftover.exists()


async def test_inspect_returns_the_still_its_signals_and_keeps_evidence(rig: Rig) -> None:
    still, signals, compute_ms = await rig.service.inspect(CameraSettings(), port="1-4.2")
    assert still.format is ImageFormat.JPEG
    assert still.data.endswith(b"q90 640x480")
    assert signals.phone_present.value is True
    assert signals.length_mm is not None, "the calibration reaches the inspection"
    assert compute_ms == 1.5
    assert [r.evidence_id for r in await rig.journal.list_evidence("session-a")] == [still.evidence_id]


async def test_the_calibration_follows_the_width_of_the_still(journal: Journal, tmp_path: Path) -> None:
    # calibrated on 640-pixel-wide frames: the same view at 320 pixels has twice the millimetres per pixel
    async with _running(await _rig(journal, tmp_path, FakeCamera(), calibration_width=640)) as rig:
        _, native, _ = await rig.service.inspect(CameraSettings())
        _, halved, _ = await rig.service.inspect(CameraSettings(width=320, height=240))
    assert native.length_mm is not None
    assert halved.length_mm is not None
    assert native.length_mm.value == pytest.approx(140.0)
    assert halved.length_mm.value == pytest.approx(280.0)


# ---- status ------------------------------------------------------------------------------------


async def test_a_camera_that_vanishes_goes_offline_and_comes_back_without_a_restart(rig: Rig) -> None:
    rig.fake.lose()
    await _status(rig, DeviceState.OFFLINE)
    status = rig.service.registry.get("camera")
    assert status.reason == "CAMERA_LOST"
    assert status.recovery_hint
    with pytest.raises(DeviceUnavailable, match="offline"):
        await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90)
    rig.fake.restore()
    await _status(rig, DeviceState.ONLINE)
    assert (await rig.service.capture(CameraSettings(), ImageFormat.JPEG, 90)).data
    states = [e.status.state for e in await _events(rig.journal, DeviceStatusChanged)]  # type: ignore[attr-defined]
    assert states == [DeviceState.STARTING, DeviceState.ONLINE, DeviceState.OFFLINE, DeviceState.ONLINE]


async def test_an_absent_camera_starts_offline_and_the_service_closes_it(journal: Journal, tmp_path: Path) -> None:
    fake = FakeCamera()
    fake.present = False
    async with _running(await _rig(journal, tmp_path, fake)) as rig:
        assert rig.service.registry.get("camera").reason == "CAMERA_NOT_FOUND"
        assert rig.service.info().width == 0
    assert not fake.opened


# ---- preview -----------------------------------------------------------------------------------


async def test_viewers_share_frames_and_a_slow_viewer_skips_instead_of_queueing(
    journal: Journal, tmp_path: Path
) -> None:
    async with _running(await _rig(journal, tmp_path, FakeCamera(free_running=False))) as rig:
        fast = rig.service.preview(30, 50)
        slow = rig.service.preview(30, 50)
        rig.fake.emit()
        first_fast, first_slow = await asyncio.gather(anext(fast), anext(slow))
        assert first_fast == first_slow
        assert first_fast.sequence == 1
        assert rig.fake.encodes == {(1, ImageFormat.JPEG, 50): 1}, "encoded once for both viewers"
        for _ in range(5):
            waiting = asyncio.ensure_future(anext(fast))
            rig.fake.emit()
            assert (await waiting).sequence == rig.fake.latest().sequence  # type: ignore[union-attr]
        late = await anext(slow)
        assert late.sequence == 6, "the slow viewer gets the latest frame, not the five it missed"
        await fast.aclose()  # type: ignore[attr-defined]
        await slow.aclose()  # type: ignore[attr-defined]


async def test_preview_frames_are_jpeg_at_the_asked_quality(rig: Rig) -> None:
    stream = rig.service.preview(0, 0)
    frame: PreviewFrame = await anext(stream)
    assert frame.jpeg.endswith(b"q70 640x480")
    assert (frame.width, frame.height) == (640, 480)
    await stream.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fps", "quality", "field"), [(31, 50, "max_fps"), (0.5, 50, "max_fps"), (10, 101, "quality")])
async def test_a_bad_preview_request_names_the_field(rig: Rig, fps: float, quality: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await anext(rig.service.preview(fps, quality))
    assert refused.value.metadata["field"] == field


async def test_preview_ends_when_the_camera_goes_offline(journal: Journal, tmp_path: Path) -> None:
    async with _running(await _rig(journal, tmp_path, FakeCamera(free_running=False))) as rig:
        stream = rig.service.preview(30, 50)
        rig.fake.emit()
        await anext(stream)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        rig.fake.lose()
        with pytest.raises(DeviceUnavailable):
            await waiting
        with pytest.raises(DeviceUnavailable):
            await anext(rig.service.preview(30, 50))
