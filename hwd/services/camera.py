"""The camera service: stills with their settings and provenance, evidence of phone sessions, the
inspection signals, and one shared live preview.

The camera grabs continuously on its own (see :class:`CameraPort`); this service keeps its
status in the registry, takes stills from the frames it delivers, and fans the same frames out
to every preview viewer. A viewer holds one latest-frame slot, never a queue: a slow one simply
gets fewer frames. Each frame is JPEG-encoded once per quality, whatever the number of viewers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from hwd.errors import DeviceNotReady, DeviceUnavailable, InvalidArgument
from hwd.journal import Journal
from hwd.model import CameraInfo, CameraSettings, DeviceState, ImageFormat, PreviewFrame, Still, quality_problem
from hwd.model.camera import (
    CAPTURE_QUALITY_DEFAULT,
    PREVIEW_FPS_DEFAULT,
    PREVIEW_FPS_MAX,
    PREVIEW_QUALITY_DEFAULT,
    AppliedSetting,
    CameraLink,
    Frame,
    SettingProblem,
)
from hwd.model.inspection import InspectionSignals
from hwd.services.camera_port import CameraPort
from hwd.services.events import EventBus
from hwd.services.evidence import EvidenceKeeper
from hwd.services.registry import DeviceRegistry

log = logging.getLogger(__name__)

NAME = "camera"
HINT = "Check the camera's cable and power (or the stream's address); it reconnects on its own."


def _check(problem: SettingProblem | None) -> None:
    if problem is not None:
        raise InvalidArgument(problem.message, device=NAME, metadata={"field": problem.field})


class _SharedJpeg:
    """The JPEG of the latest frame at each quality, encoded once and shared by every viewer."""

    def __init__(self, port: CameraPort) -> None:
        self._port = port
        self._latest: dict[int, tuple[int, asyncio.Task[bytes]]] = {}

    async def of(self, frame: Frame, quality: int) -> bytes:
        entry = self._latest.get(quality)
        if entry is None or entry[0] != frame.sequence:
            entry = (frame.sequence, asyncio.ensure_future(self._port.encode(frame, ImageFormat.JPEG, quality)))
            # Only the newest frame is ever asked for again: older JPEGs go (their waiters hold their own task).
            self._latest = {q: e for q, e in self._latest.items() if e[0] >= frame.sequence}
            self._latest[quality] = entry
        # Shielded: one viewer leaving must not cancel the encoding the others wait for.
        return await asyncio.shield(entry[1])


class CameraService:
    """Stills, evidence, inspection and preview from one camera.

    :param port: the camera.
    :param state_dir: the daemon's state directory; evidence goes to ``state_dir/evidence``.
    :param session_of: the session id of the phone on a port, None when no phone is there
        (the phones service provides it).
    :param evidence_max_files: how many stills are kept as evidence; the oldest go first.
    :param timeout_s: deadline of one capture (settings applied and a fresh frame delivered).
    :param preview_max_fps: the preview never streams faster than this, whatever a viewer asks.
    :param mm_per_px: the tray's scale for the inspection, None without a calibration.
    :param calibration_width: the width of the frames ``mm_per_px`` was measured on; a still of
        another width gets the scale in proportion (the same view, other pixels).
    """

    name = NAME

    def __init__(
        self, port: CameraPort, registry: DeviceRegistry, bus: EventBus, journal: Journal, *, state_dir: Path,
        session_of: Callable[[str], str | None], evidence_max_files: int = 1000, timeout_s: float = 5.0,
        preview_max_fps: float = PREVIEW_FPS_MAX, mm_per_px: float | None = None, calibration_width: int = 1920,
    ) -> None:  # fmt: skip
        self.port = port
        self.registry = registry
        self.bus = bus
        self.session_of = session_of
        self.timeout_s = timeout_s
        self.preview_max_fps = min(preview_max_fps, PREVIEW_FPS_MAX)
        self.mm_per_px = mm_per_px
        self.calibration_width = calibration_width
        self.evidence = EvidenceKeeper(state_dir / "evidence", journal, bus, evidence_max_files, NAME)
        self._shared = _SharedJpeg(port)
        self._capturing = asyncio.Lock()

    # -- status ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Opens the camera and keeps its status in the registry until cancelled (then closes it).

        The camera reconnects on its own: unplugged gives OFFLINE (and an event), back gives ONLINE.
        """
        await self.registry.set(NAME, DeviceState.STARTING, "STARTING", f"opening {self.port.source}")
        try:
            await self.evidence.start()
            link = await self.port.open()
            while True:
                await self._report(link)
                link = await self.port.link_changed(link.version)
        finally:
            await self.port.close()

    async def _report(self, link: CameraLink) -> None:
        if link.online:
            await self.registry.set(NAME, DeviceState.ONLINE, "OK", link.detail)
        else:
            log.warning("camera offline: %s (%s)", link.detail, link.reason)
            await self.registry.set(NAME, DeviceState.OFFLINE, link.reason, link.detail, HINT)

    def info(self) -> CameraInfo:
        """:returns: the source, current frame size, settings in force and the evidence count."""
        frame = self.port.latest()
        width, height = (frame.width, frame.height) if frame is not None else (0, 0)
        return CameraInfo(self.port.source, width, height, self.port.settings(), self.evidence.count)

    def _require_online(self) -> None:
        link = self.port.link()
        if not link.online:
            raise DeviceUnavailable(
                f"the camera is offline: {link.detail}", device=NAME, hint=HINT, metadata={"reason": link.reason}
            )

    # -- stills ------------------------------------------------------------------------------

    async def capture(self, settings: CameraSettings, fmt: ImageFormat, quality: int, port: str = "") -> Still:
        """Takes one still, after applying ``settings``, from a frame grabbed after the request.

        :param quality: JPEG quality 1-100, 0 for the default (90); ignored for PNG.
        :param port: the port path of the phone being inspected: the still becomes evidence of its session.
        :returns: the still with the settings as read back (and its evidence id with a port).
        :raises InvalidArgument: a bad setting or quality (metadata ``field`` names it).
        :raises DeviceNotReady: no phone on ``port``.
        :raises DeviceUnavailable: the camera is offline or gave no frame in time.
        :raises JournalUnavailable: the evidence could not be written.
        """
        quality = quality or CAPTURE_QUALITY_DEFAULT
        _check(quality_problem(quality))
        _check(settings.problem())
        session = self._session(port)
        frame, applied = await self._take(settings)
        still = await self._still(frame, applied, fmt, quality)
        return still if session is None else await self.evidence.keep(still, port, session)

    async def inspect(self, settings: CameraSettings, port: str = "") -> tuple[Still, InspectionSignals, float]:
        """Takes a JPEG still and computes the inspection signals on the same frame.

        :returns: the still (evidence with a port), the signals, and their compute time in ms.
        :raises: as :meth:`capture`.
        """
        _check(settings.problem())
        session = self._session(port)
        frame, applied = await self._take(settings)
        still = await self._still(frame, applied, ImageFormat.JPEG, CAPTURE_QUALITY_DEFAULT)
        scale = None if self.mm_per_px is None else self.mm_per_px * self.calibration_width / max(frame.width, 1)
        signals, compute_ms = await self.port.inspect(frame, scale)
        if session is not None:
            still = await self.evidence.keep(still, port, session)
        return still, signals, compute_ms

    def _session(self, port: str) -> str | None:
        if not port:
            return None
        session = self.session_of(port)
        if session is None:
            raise DeviceNotReady(
                f"no phone on port {port}", device=NAME, hint="Plug the phone in before taking evidence of it.",
                metadata={"port": port},
            )  # fmt: skip
        return session

    async def _take(self, settings: CameraSettings) -> tuple[Frame, tuple[AppliedSetting, ...]]:
        self._require_online()
        async with self._capturing:  # settings and the frame they apply to belong to one capture
            try:
                async with asyncio.timeout(self.timeout_s):
                    applied = self.port.settings() if settings.is_empty() else await self.port.apply(settings)
                    latest = self.port.latest()
                    frame = await self.port.next_frame(latest.sequence if latest is not None else 0)
            except TimeoutError:
                raise DeviceUnavailable(
                    f"the camera gave no frame within {self.timeout_s:g} s", device=NAME, hint=HINT
                ) from None
        return frame, applied

    async def _still(self, frame: Frame, applied: tuple[AppliedSetting, ...], fmt: ImageFormat, quality: int) -> Still:
        data = await self.port.encode(frame, fmt, quality)
        digest = hashlib.sha256(data).hexdigest()
        return Still(data, fmt, frame.width, frame.height, digest, frame.captured_ns, applied)

    # -- preview -----------------------------------------------------------------------------

    async def preview(self, max_fps: float, quality: int) -> AsyncIterator[PreviewFrame]:
        """Streams the latest frame as JPEG, at most ``max_fps`` a second, until the camera goes offline.

        :param max_fps: 1-30 frames a second, 0 for 15 (capped by the configured maximum).
        :param quality: JPEG quality 1-100, 0 for 70.
        :raises InvalidArgument: ``max_fps`` or ``quality`` out of range (metadata ``field``).
        :raises DeviceUnavailable: the camera is offline, or goes offline (the stream ends).
        """
        fps, quality = max_fps or PREVIEW_FPS_DEFAULT, quality or PREVIEW_QUALITY_DEFAULT
        if not 1 <= fps <= PREVIEW_FPS_MAX:
            raise InvalidArgument(
                f"max_fps: {max_fps:g} is not in 1..{PREVIEW_FPS_MAX:g} (0 for the default)",
                device=NAME, metadata={"field": "max_fps"},
            )  # fmt: skip
        _check(quality_problem(quality))
        self._require_online()
        period = 1.0 / min(fps, self.preview_max_fps)
        loop = asyncio.get_running_loop()
        after, due = 0, loop.time()
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))  # the viewer's rate limit, not a poll
            frame = await self.port.next_frame(after)
            jpeg = await self._shared.of(frame, quality)
            after, due = frame.sequence, max(due + period, loop.time())
            yield PreviewFrame(jpeg, frame.width, frame.height, frame.sequence, frame.captured_ns)
