"""The inspection camera over OpenCV: a V4L2 device, a network stream (MJPEG over HTTP, RTSP) or a
video file, behind async methods.

One owner thread per connection generation makes every OpenCV call on the capture
(hwd/drivers/camera_owner.py); it grabs continuously and hands each frame to the event loop, so
the latest frame is always at hand and shared by every reader. A watchdog timer catches an owner
that stops reporting (a backend stuck in a call without a timeout): that generation is abandoned
(its thread ends when the call returns) and a new owner connects. JPEG/PNG encoding and the
inspection run on one worker thread of their own, so they never hold up the grabbing.

A network stream or a video file is open only while frames are wanted: a reader waiting in
:meth:`OpenCvCamera.next_frame` or a settings change, and ``idle_close_s`` after the last one (a
preview viewer asks for frame after frame, so it keeps the stream open). Then the owner releases
it: the link stays online ("idle"), nothing is decoded, and the owner checks every
``idle_probe_s`` that the source still answers. A V4L2 device streams all the time (see
hwd/drivers/camera_owner.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from hwd.drivers import vision
from hwd.drivers.camera_owner import Demand, Opener, Owner, open_capture
from hwd.errors import DeviceUnavailable, HardwareFault
from hwd.model.camera import PNG_COMPRESSION, AppliedSetting, CameraLink, CameraSettings, Frame, ImageFormat
from hwd.model.inspection import InspectionSignals

log = logging.getLogger(__name__)

DEVICE = "camera"
HINT = "Check the camera's cable and power (or the stream's address); the daemon reconnects on its own."
_T = TypeVar("_T")


class OpenCvCamera:
    """One camera. The constructor does no I/O; :meth:`open` starts the capture, :meth:`close` ends it.

    :param source: a V4L2 device path (``/dev/v4l/by-id/...``, ``/dev/video0``), a stream URL
        (``http://HOST:PORT/stream.mjpg``, ``rtsp://...``) or a video file.
    :param timeout_s: deadline of opening, of reading one frame, and of each command.
    :param backoff_s: first wait between failed connections; doubles up to ``max_backoff_s``.
    :param idle_close_s: a stream or a file is released this long after frames were last wanted.
    :param idle_probe_s: while released, how often it is checked (opened, one frame read, released),
        so a source that vanished goes offline and its return comes back online.
    :param opener: makes the capture object (OpenCV's VideoCapture; a test may pass a stand-in).
    """

    def __init__(
        self, source: str, *, timeout_s: float = 5.0, backoff_s: float = 0.2, max_backoff_s: float = 5.0,
        idle_close_s: float = 10.0, idle_probe_s: float = 15.0, opener: Opener = open_capture,
    ) -> None:  # fmt: skip
        self.source = source
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.idle_probe_s = idle_probe_s
        self._demand = Demand(idle_close_s)
        self._resting = False  # the owner released the source for lack of demand
        self._live_after = 0  # frames up to this sequence were grabbed before the source last rested
        self._opener = opener
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: Owner | None = None
        self._exits: dict[Owner, asyncio.Future[None]] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._link = CameraLink(False, "CLOSED", "the camera is not open")
        self._latest: Frame | None = None
        self._sequence = 0
        self._settings: tuple[AppliedSetting, ...] = ()
        self._wanted = CameraSettings()
        self._wake = asyncio.Event()
        self._watchdog: asyncio.TimerHandle | None = None
        self.frames = 0  # frames grabbed since the driver was made
        self.stalls = 0  # owners abandoned because they stopped answering

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> CameraLink:
        """Starts capturing and waits for the first connection attempt (at most a few deadlines).

        The driver keeps reconnecting on its own while open; watch :meth:`link_changed`.

        :returns: the link after the first attempt (offline when the camera is not there yet).
        """
        if self._owner is not None:
            return self._link
        self._loop = asyncio.get_running_loop()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="camera-encode")
        self._demand.extend()  # the first connection streams a while, so the frame size is known
        self._start_owner()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.link_changed(self._link.version), self._silence_s(online=True))
        return self._link

    async def close(self) -> None:
        """Stops capturing, releases the camera and ends its threads; safe to call twice."""
        self._disarm()
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.stop()
        for other in list(self._exits):
            other.stop()
        if self._exits:
            await asyncio.wait(list(self._exits.values()), timeout=self._silence_s(online=True))
        for other, exited in list(self._exits.items()):
            if exited.done():
                self._reap(other)
            else:
                log.warning("camera %s: a thread is still stuck in OpenCV; it ends when the call returns", self.source)
        await self._stop_worker()
        self._set_link(False, "CLOSED", "the camera is not open")

    async def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            # Work already queued finishes first; then shutdown returns at once instead of blocking the loop.
            await asyncio.get_running_loop().run_in_executor(worker, lambda: None)
            worker.shutdown(wait=True)

    def _start_owner(self) -> None:
        assert self._loop is not None
        loop = self._loop
        holder: list[Owner] = []

        def post(kind: str, *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
                loop.call_soon_threadsafe(self._on_owner, holder[0], kind, *args)

        owner = Owner(
            self.source, post, timeout_s=self.timeout_s, backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s,
            wanted=self._wanted, demand=self._demand, idle_probe_s=self.idle_probe_s, opener=self._opener,
        )  # fmt: skip
        holder.append(owner)
        self._exits[owner] = loop.create_future()
        self._owner = owner
        self._resting = False
        owner.start()
        self._arm(online=False)

    # -- what the owner reports --------------------------------------------------------------

    def _on_owner(self, owner: Owner, kind: str, *args: Any) -> None:
        if kind == "exited":
            exit_ = self._exits.get(owner)
            if exit_ is not None and not exit_.done():
                exit_.set_result(None)
            if owner is not self._owner:
                self._reap(owner)
            return
        if owner is not self._owner:
            return  # an abandoned generation: its reports are stale
        if kind == "frame":
            captured_ns, (width, height), image = args
            if self._resting:  # reopened on demand: it says so with its first frame, before its settings
                self._resting = False
                self._set_link(True, "OK", f"streaming from {self.source}")
            self._sequence += 1
            self.frames += 1
            self._latest = Frame(self._sequence, captured_ns, width, height, image)
            self._arm(online=True)
            self._wake_all()
        elif kind == "online":
            self._settings = args[0]
            self._resting = False
            self._arm(online=True)
            self._set_link(True, "OK", f"streaming from {self.source}")
        elif kind == "idle":  # the last frame stays at hand (its size for info); readers wait for a live one
            self._resting = True
            self._live_after = self._sequence
            self._arm(online=True, resting=True)
            self._set_link(True, "OK", f"idle: {self.source} opens when frames are wanted")
        elif kind == "offline":
            self._resting = False
            self._latest = None
            self._arm(online=False)
            self._set_link(False, args[0], args[1])

    def _reap(self, owner: Owner) -> None:
        """Joins an owner that sent its last report (only its return is left, so this is immediate)."""
        owner.join()
        self._exits.pop(owner, None)

    def _set_link(self, online: bool, reason: str, detail: str) -> None:
        if (online, reason, detail) != (self._link.online, self._link.reason, self._link.detail):
            self._link = CameraLink(online, reason, detail, self._link.version + 1)
            self._wake_all()

    def _wake_all(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    # -- the watchdog ------------------------------------------------------------------------

    def _silence_s(self, *, online: bool) -> float:
        """The longest an owner may go without a report: open, first read and a size switch
        (each bounded by ``timeout_s``), plus the backoff wait when it is reconnecting."""
        return 3 * self.timeout_s + 1.0 + (0.0 if online else self.max_backoff_s)

    def _arm(self, *, online: bool, resting: bool = False) -> None:
        """Starts the watchdog; a resting owner reports at its next check (``idle_probe_s``)."""
        self._disarm()
        if self._loop is not None and self._owner is not None:
            silence = self._silence_s(online=online) + (self.idle_probe_s if resting else 0.0)
            self._watchdog = self._loop.call_later(silence, self._stalled, self._owner)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _stalled(self, owner: Owner) -> None:
        if owner is not self._owner:
            return
        self.stalls += 1
        log.warning("camera %s stopped answering; starting a new connection", self.source)
        owner.stop()  # it releases the capture and ends once the stuck call returns
        self._latest = None
        self._resting = False
        self._wanted = owner.wanted
        self._set_link(
            False, "CAMERA_STALLED", f"{self.source} did not answer within {self._silence_s(online=True):g} s"
        )
        self._start_owner()

    # -- reading -----------------------------------------------------------------------------

    def link(self) -> CameraLink:
        """:returns: whether the camera delivers frames now, and why not."""
        return self._link

    async def link_changed(self, after_version: int) -> CameraLink:
        """Waits until the link's version passes ``after_version``. :returns: the link then."""
        while self._link.version <= after_version:
            await self._wake.wait()
        return self._link

    def latest(self) -> Frame | None:
        """:returns: the newest frame, or None while offline."""
        return self._latest

    def settings(self) -> tuple[AppliedSetting, ...]:
        """:returns: the settings in force, as last read back from the device."""
        return self._settings

    async def next_frame(self, after: int) -> Frame:
        """Waits for a frame newer than sequence ``after`` (0 for any live frame).

        A stream or a file at rest is reopened for it at once; the frame kept from before it rested
        is not handed out again.

        :raises DeviceUnavailable: the camera is offline, or goes offline while waiting.
        """
        if not self._link.online:
            raise self._unavailable()
        with self._wanting():
            while True:
                if not self._link.online:
                    raise self._unavailable()
                frame = self._latest
                if frame is not None and frame.sequence > max(after, self._live_after):
                    return frame
                await self._wake.wait()

    @contextlib.contextmanager
    def _wanting(self) -> Iterator[None]:
        """Frames are wanted for the duration: a resting owner is woken to reopen the source."""
        owner = self._owner
        if self._demand.begin() and owner is not None:
            owner.submit(lambda: None)  # ends the owner's wait; it sees the demand and reopens
            if self._resting:
                self._arm(online=True)  # reopening must report as soon as any connection does
        try:
            yield
        finally:
            self._demand.end()

    def _unavailable(self) -> DeviceUnavailable:
        return DeviceUnavailable(
            f"the camera is offline: {self._link.detail}",
            device=DEVICE,
            hint=HINT,
            metadata={"reason": self._link.reason},
        )

    # -- commands ----------------------------------------------------------------------------

    async def apply(self, settings: CameraSettings) -> tuple[AppliedSetting, ...]:
        """Applies ``settings`` between two frames and reads everything back.

        :returns: every setting in force, those asked for with their outcome (not applied, with the
            reason, when the device lacks it or reads back something else).
        :raises DeviceUnavailable: the camera is offline or did not answer in time (it then reconnects).
        """
        owner = self._owner
        if owner is None or not self._link.online:
            raise self._unavailable()
        asked = {name: value for name, value in vars(settings).items() if value is not None}
        if self._settings and all(getattr(self._wanted, name) == value for name, value in asked.items()):
            return self._settings  # already in force: applying again would only cost a frame
        try:
            with self._wanting():  # at rest, the owner reopens the source before applying
                future = owner.submit(lambda: owner.apply(settings))
                result: tuple[AppliedSetting, ...] = await asyncio.wait_for(
                    asyncio.wrap_future(future), self._silence_s(online=True)
                )
        except TimeoutError:
            self._stalled(owner)
            raise self._unavailable() from None
        self._wanted = dataclasses.replace(self._wanted, **asked)
        self._settings = result
        return result

    async def _work(self, fn: Callable[[], _T]) -> _T:
        if self._worker is None:
            raise DeviceUnavailable("the camera is not open", device=DEVICE)
        job = asyncio.get_running_loop().run_in_executor(self._worker, fn)
        try:
            return await asyncio.wait_for(job, self._silence_s(online=True))
        except TimeoutError:
            raise HardwareFault("encoding the frame took too long", device=DEVICE) from None

    async def encode(self, frame: Frame, fmt: ImageFormat, quality: int) -> bytes:
        """Encodes a frame on the worker thread.

        :param quality: JPEG quality 1-100 (PNG uses the fixed compression level 3).
        :raises HardwareFault: the frame cannot be encoded.
        """
        return await self._work(lambda: encode_image(frame.pixels, fmt, quality))

    async def inspect(self, frame: Frame, mm_per_px: float | None) -> tuple[InspectionSignals, float]:
        """Computes the inspection signals of a frame on the worker thread.

        :param mm_per_px: the tray's scale, or None for no sizes in millimetres.
        :returns: the signals and the compute time in milliseconds.
        """

        def run() -> tuple[InspectionSignals, float]:
            start = time.perf_counter()
            signals = vision.inspect(cast("npt.NDArray[np.generic]", frame.pixels), mm_per_px)
            return signals, (time.perf_counter() - start) * 1000

        return await self._work(run)


def encode_image(pixels: Any, fmt: ImageFormat, quality: int) -> bytes:
    """Encodes a BGR image as JPEG (``quality`` 1-100) or PNG (compression 3).

    :raises HardwareFault: OpenCV cannot encode it.
    """
    if fmt is ImageFormat.PNG:
        ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    else:
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise HardwareFault(f"cannot encode the frame as {fmt.value}", device=DEVICE)
    return bytes(buf.tobytes())
