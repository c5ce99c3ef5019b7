"""The camera's owner thread: the only thread that touches its ``cv2.VideoCapture``.

It connects (with a bounded backoff between failed attempts), grabs frames continuously so the
latest one is always at hand (a stream's buffered backlog never delays a capture), and runs the
commands queued by the async side between two frames. It reports through ``post``, a callable
that hands a function and its arguments to the event loop (``loop.call_soon_threadsafe``).

A network stream or a video file is used on demand (:class:`Demand`): once nobody has wanted
frames for a while the owner releases it and rests, so an idle daemon decodes nothing; while
resting it checks now and then that the source still answers (open, read one frame, release),
and demand reopens it at once. A V4L2 device streams all the time: its auto exposure and white
balance only settle on a running stream, and reopening a USB camera takes up to a second or more.

Deadlines: OpenCV's FFMPEG backend honours open and read timeouts, so a frozen stream makes
``read`` fail after ``timeout_s``; a backend without them (a V4L2 device that stops answering) is
caught by the async side's watchdog, which abandons this thread (it exits when ``read`` returns).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cv2

from hwd.drivers.camera_settings import (
    Capture,
    apply_controls,
    merged,
    read_back,
    set_size,
    size_outcome,
)
from hwd.errors import DeviceUnavailable
from hwd.model.camera import AppliedSetting, CameraSettings

log = logging.getLogger(__name__)

Opener = Callable[[str, int, list[int]], Capture]
Post = Callable[..., None]
Command = tuple[Callable[[], Any], "Future[Any]"]
STREAM = re.compile(r"(https?|rtsp)://", re.IGNORECASE)
FILE_FPS_DEFAULT = 30.0


def open_capture(source: str, api: int, params: list[int]) -> Capture:
    """Opens ``source`` with OpenCV (the default opener)."""
    return cv2.VideoCapture(source, api, params)


def sized_url(url: str, width: int, height: int) -> str:
    """:returns: ``url`` asking for ``width`` x ``height`` frames with a ``size`` query parameter
    (the simulated kiosk's camera and many IP cameras serve size variants this way)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "size"]
    query.append(("size", f"{width}x{height}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class Demand:
    """Whether anybody wants frames: counted on the event loop, read by the owner thread.

    Frames are wanted while a reader waits (:meth:`begin` .. :meth:`end`) and for ``linger_s``
    after the last one went, so readers in quick succession (a preview viewer) keep the source open.

    :param linger_s: how long the source stays open after the last reader went.
    """

    def __init__(self, linger_s: float) -> None:
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._readers = 0
        self._until = 0.0  # time.monotonic() at which the linger ends

    def begin(self) -> bool:
        """A reader starts waiting. :returns: True when frames were not wanted just before (the
        owner may be resting and needs waking)."""
        with self._lock:
            idle = self._readers == 0 and time.monotonic() >= self._until
            self._readers += 1
            return idle

    def end(self) -> None:
        """A reader is done; the linger starts when it was the last."""
        with self._lock:
            self._readers = max(0, self._readers - 1)
            self._until = max(self._until, time.monotonic() + self.linger_s)

    def extend(self) -> None:
        """Wants frames for ``linger_s`` from now (on opening: the first connection streams a while)."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + self.linger_s)

    def wanted(self) -> bool:
        """:returns: True while a reader waits or the linger lasts."""
        with self._lock:
            return self._readers > 0 or time.monotonic() < self._until


class Owner(threading.Thread):
    """Owns one camera for one connection generation.

    :param source: a V4L2 device path, a stream URL or a video file.
    :param post: hands ``(fn, *args)`` to the event loop; called from this thread.
    :param timeout_s: deadline of opening and of reading one frame.
    :param backoff_s: first wait after a failed connection; doubles up to ``max_backoff_s``.
    :param wanted: settings to apply on each connection (what was asked before a reconnect).
    :param demand: who wants frames; a stream or a file is released while nobody does.
    :param idle_probe_s: while resting, how often the source is checked (opened, one frame read, released).
    """

    def __init__(
        self, source: str, post: Post, *, timeout_s: float, backoff_s: float, max_backoff_s: float,
        wanted: CameraSettings, demand: Demand, idle_probe_s: float, opener: Opener = open_capture,
    ) -> None:  # fmt: skip
        super().__init__(name=f"camera-owner {source}", daemon=True)
        self.source = source
        self.post = post
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.wanted = wanted
        self.opener = opener
        self.commands: queue.SimpleQueue[Command | None] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.cap: Capture | None = None
        self.url = source  # a stream's URL with the size variant in force
        self.size = (0, 0)
        self.is_file = not STREAM.match(source) and not source.startswith("/dev/")
        self.period = 0.0  # a file is paced at its own frame rate; a live source paces itself
        self.due = 0.0
        # A V4L2 device keeps streaming (see the module's docstring); a stream or a file rests when unwanted.
        self.on_demand = not source.startswith("/dev/")
        self.demand = demand
        self.idle_probe_s = idle_probe_s
        self.healthy = True  # the last connection or check worked: demand may reopen without waiting
        self.retry_at = 0.0  # time.monotonic() of the next connection attempt or check
        self.backoff = backoff_s

    def stop(self) -> None:
        """Asks the thread to release the camera and end (it may be blocked in a read for a while)."""
        self.stopping.set()
        self.commands.put(None)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Queues ``fn`` to run on this thread between two frames. :returns: its future."""
        future: Future[Any] = Future()
        self.commands.put((fn, future))
        return future

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self.cap is None:
                    self._without_capture()
                    continue
                self._serve(max(0.0, self.due - time.monotonic()) if self.is_file else 0.0)
                if self.cap is None or self.stopping.is_set():
                    continue
                if self.on_demand and not self.demand.wanted():
                    self._rest()
                else:
                    self._grab()
        finally:
            self._release()
            self._fail_pending()
            self.post("exited")

    # -- connection --------------------------------------------------------------------------

    def _without_capture(self) -> None:
        """One step with no capture open: wait for the next attempt (demand for a source that was
        fine ends the wait at once), then connect when frames are wanted, else check the source."""
        wanted = self.demand.wanted() or not self.on_demand
        wait_s = self.retry_at - time.monotonic()
        if wait_s > 0 and not (wanted and self.healthy):
            self._serve(wait_s)  # a command (demand's wake-up) ends the wait early
            return
        self._attempt(wanted)

    def _attempt(self, wanted: bool) -> None:
        """Connects (``wanted``) or checks the source, and schedules the next attempt."""
        ok = self._connect() if wanted else self._probe()
        self.healthy = ok
        if ok:
            self.backoff = self.backoff_s
            self.retry_at = time.monotonic() + self.idle_probe_s  # the next check, should the source rest
        else:
            self.retry_at = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, self.max_backoff_s)

    def _rest(self) -> None:
        """Releases a source nobody wants frames from; it is checked every ``idle_probe_s``."""
        self._release()
        self.healthy, self.retry_at = True, time.monotonic() + self.idle_probe_s
        log.info("camera %s idle: released until frames are wanted", self.source)
        self.post("idle")

    def _probe(self) -> bool:
        """Checks a resting source: opens it, reads one frame, releases it.

        :returns: whether it gave a frame (reported as "idle", else as "offline").
        """
        cap = self._open(self.url)
        ok = cap is not None and cap.read()[0]
        if cap is not None:
            cap.release()
        if ok:
            self.post("idle")
        elif self.healthy:
            log.warning("camera %s lost while idle: no frame when checked", self.source)
            self.post("offline", "CAMERA_LOST", f"{self.url} gave no frame when checked while idle")
        else:
            self.post("offline", "CAMERA_NOT_FOUND", f"cannot open {self.url}")
        return ok

    def _open(self, url: str) -> Capture | None:
        api, params = self._backend(url)
        cap = self.opener(url, api, params)
        if not cap.isOpened():
            cap.release()
            return None
        if api == cv2.CAP_V4L2:
            # MJPG lets USB cameras reach their large sizes at full rate (raw YUYV saturates USB 2).
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_s * 1000)
        return cap

    def _backend(self, url: str) -> tuple[int, list[int]]:
        ms = int(self.timeout_s * 1000)
        if STREAM.match(url) or self.is_file:
            return cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.CAP_V4L2, []

    def _connect(self) -> bool:
        target = os.path.realpath(self.source) if self.source.startswith("/dev/") else self.url
        cap = self._open(target)
        ok, image = cap.read() if cap is not None else (False, None)
        if cap is None or not ok:
            if cap is not None:
                cap.release()
            self.post("offline", "CAMERA_NOT_FOUND", f"cannot open {self.url}")
            return False
        self.cap = cap
        if self.is_file:
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            self.period = 1.0 / (fps if 1 <= fps <= 120 else FILE_FPS_DEFAULT)
        self._deliver(image)
        settings: tuple[AppliedSetting, ...] = ()
        if not self.wanted.is_empty():
            settings = self.apply(self.wanted)  # what was asked before a reconnect still holds
        self.post("online", settings or self.settings())
        log.info("camera %s connected: %sx%s", self.source, *self.size)
        return True

    def _release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    # -- frames ------------------------------------------------------------------------------

    def _grab(self) -> None:
        assert self.cap is not None
        ok, image = self.cap.read()
        if not ok and self.is_file:  # the end of a video file: loop it, like a camera that never stops
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        if not ok:
            self._release()
            self.healthy = False
            if not self.stopping.is_set():
                log.warning("camera %s lost: no frame within %.1f s", self.source, self.timeout_s)
                self.post("offline", "CAMERA_LOST", f"no frame from {self.url} within {self.timeout_s:g} s")
            return
        self._deliver(image)

    def _deliver(self, image: Any) -> None:
        height, width = image.shape[:2]
        self.size = (int(width), int(height))
        self.due = time.monotonic() + self.period
        self.post("frame", time.time_ns(), self.size, image)

    # -- commands ----------------------------------------------------------------------------

    def _serve(self, wait_s: float) -> None:
        """Runs queued commands: waits up to ``wait_s`` for the first, then takes what else is queued."""
        try:
            item = self.commands.get(timeout=wait_s) if wait_s > 0 else self.commands.get_nowait()
        except queue.Empty:
            return
        while item is not None:
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except Exception as exc:  # the caller gets it; this thread keeps the camera
                    future.set_exception(exc)
            try:
                item = self.commands.get_nowait()
            except queue.Empty:
                return

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self.commands.get_nowait()
            except queue.Empty:
                return
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(DeviceUnavailable(f"camera {self.source} is closed", device="camera"))

    def settings(self) -> tuple[AppliedSetting, ...]:
        """:returns: the settings in force, as read back. Owner thread only."""
        if self.cap is None:
            return ()
        return merged(read_back(self.cap, self.size), {})

    def apply(self, settings: CameraSettings) -> tuple[AppliedSetting, ...]:
        """Applies ``settings`` and reads everything back. Owner thread only.

        :returns: every setting in force, those asked for with their outcome.
        :raises DeviceUnavailable: the camera is not connected.
        """
        if self.cap is None and self.on_demand and self.healthy and not self.stopping.is_set():
            self._attempt(True)  # the source rests: the demand that queued this reopens it first
        if self.cap is None:
            raise DeviceUnavailable(f"camera {self.source} is not connected", device="camera")
        self.wanted = dataclasses.replace(self.wanted, **{k: v for k, v in vars(settings).items() if v is not None})
        outcomes: dict[str, AppliedSetting] = {}
        if settings.width is not None and settings.height is not None:
            outcomes.update(self._resize(settings.width, settings.height))
        outcomes.update(apply_controls(self.cap, settings))
        return merged(read_back(self.cap, self.size), outcomes)

    def _resize(self, width: int, height: int) -> dict[str, AppliedSetting]:
        assert self.cap is not None
        if self.size != (width, height):
            if self.url.lower().startswith(("http://", "https://")):  # size variants are an HTTP convention
                self._switch_stream(sized_url(self.source, width, height), (width, height))
            elif set_size(self.cap, width, height):
                ok, image = self.cap.read()  # the next frame has the size the device really delivers
                if ok:
                    self._deliver(image)
        return {s.name: s for s in size_outcome(width, height, self.size)}

    def _switch_stream(self, url: str, size: tuple[int, int]) -> None:
        """Moves to another size variant of an HTTP stream if it delivers frames of that size."""
        cap = self._open(url)
        if cap is None:
            return
        ok, image = cap.read()
        if not ok or (image.shape[1], image.shape[0]) != size:
            cap.release()
            return
        self._release()
        self.cap, self.url = cap, url
        self._deliver(image)
