"""What the camera service needs from a camera, and an in-memory fake of it for tests.

The driver (hwd/drivers/camera.py, OpenCV) implements CameraPort; frames reach the service as
:class:`hwd.model.camera.Frame` whose pixels only the driver understands, so the service never
touches image data itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from hwd.errors import DeviceUnavailable
from hwd.model.camera import AppliedSetting, CameraLink, CameraSettings, Frame, ImageFormat
from hwd.model.inspection import InspectionSignals, Signal


class CameraPort(Protocol):
    """A camera that grabs continuously and keeps its latest frame; it reconnects on its own."""

    source: str

    async def open(self) -> CameraLink:
        """Starts capturing. :returns: the link after the first connection attempt."""

    async def close(self) -> None:
        """Stops capturing and releases the device; safe to call twice."""

    def link(self) -> CameraLink:
        """:returns: whether frames flow now, and why not."""

    async def link_changed(self, after_version: int) -> CameraLink:
        """Waits until the link's version passes ``after_version``. :returns: the link then."""

    def latest(self) -> Frame | None:
        """:returns: the newest frame, None while offline."""

    def settings(self) -> tuple[AppliedSetting, ...]:
        """:returns: the settings in force, as last read back."""

    async def next_frame(self, after: int) -> Frame:
        """Waits for a frame newer than ``after``. :raises DeviceUnavailable: offline, or goes offline."""

    async def apply(self, settings: CameraSettings) -> tuple[AppliedSetting, ...]:
        """Applies settings and reads all back. :raises DeviceUnavailable: offline or no answer in time."""

    async def encode(self, frame: Frame, fmt: ImageFormat, quality: int) -> bytes:
        """Encodes a frame (JPEG quality 1-100; PNG). :raises HardwareFault: it cannot be encoded."""

    async def inspect(self, frame: Frame, mm_per_px: float | None) -> tuple[InspectionSignals, float]:
        """:returns: the inspection signals of a frame and the compute time in milliseconds."""


class FakeCamera:
    """An in-memory camera. Frames come from :meth:`emit`, or, with ``free_running``, whenever one
    is waited for. ``encodes`` counts encodings per (sequence, format, quality).

    :param sizes: the frame sizes it can deliver; the first is the one it starts with.
    """

    def __init__(self, *, sizes: tuple[tuple[int, int], ...] = ((640, 480), (320, 240)), free_running: bool = True):
        self.source = "fake://camera"
        self.sizes = sizes
        self.size = sizes[0]
        self.free_running = free_running
        self.present = True
        self.opened = False
        self.encodes: dict[tuple[int, ImageFormat, int], int] = {}
        self._link = CameraLink(False, "CLOSED", "not open")
        self._latest: Frame | None = None
        self._sequence = 0
        self._changed = asyncio.Event()

    def _set(self, online: bool, reason: str, detail: str) -> None:
        self._link = CameraLink(online, reason, detail, self._link.version + 1)
        if not online:
            self._latest = None
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def open(self) -> CameraLink:
        """Connects when the camera is present."""
        self.opened = True
        self._set(*((True, "OK", "fake") if self.present else (False, "CAMERA_NOT_FOUND", "unplugged")))
        return self._link

    async def close(self) -> None:
        """Marks the fake closed."""
        self.opened = False
        self._set(False, "CLOSED", "not open")

    def lose(self, reason: str = "CAMERA_LOST") -> None:
        """The camera vanishes."""
        self.present = False
        self._set(False, reason, "the fake camera was unplugged")

    def restore(self) -> None:
        """The camera comes back (and, if open, reconnects)."""
        self.present = True
        if self.opened:
            self._set(True, "OK", "fake")

    def emit(self) -> Frame:
        """Delivers one frame. :returns: it."""
        self._sequence += 1
        frame = Frame(self._sequence, time.time_ns(), *self.size, pixels=f"pixels {self._sequence}")
        self._latest = frame
        self._wake()
        return frame

    def link(self) -> CameraLink:
        """:returns: the link."""
        return self._link

    async def link_changed(self, after_version: int) -> CameraLink:
        """Waits for a link change."""
        while self._link.version <= after_version:
            await self._changed.wait()
        return self._link

    def latest(self) -> Frame | None:
        """:returns: the newest frame."""
        return self._latest

    def settings(self) -> tuple[AppliedSetting, ...]:
        """:returns: the size in force."""
        return (
            AppliedSetting("width", "", str(self.size[0]), True),
            AppliedSetting("height", "", str(self.size[1]), True),
        )

    async def next_frame(self, after: int) -> Frame:
        """The next frame after ``after``. :raises DeviceUnavailable: offline."""
        while True:
            if not self._link.online:
                raise DeviceUnavailable(f"fake camera offline: {self._link.reason}", device="camera")
            if self._latest is not None and self._latest.sequence > after:
                return self._latest
            if self.free_running:
                return self.emit()
            await self._changed.wait()

    async def apply(self, settings: CameraSettings) -> tuple[AppliedSetting, ...]:
        """Takes a size it has; every other setting is reported as a control it lacks."""
        if not self._link.online:
            raise DeviceUnavailable("fake camera offline", device="camera")
        outcomes = {s.name: s for s in self.settings()}
        if settings.width is not None and settings.height is not None:
            wanted = (settings.width, settings.height)
            self.size = wanted if wanted in self.sizes else self.size
            ok = self.size == wanted
            detail = "" if ok else f"the device has no {wanted[0]}x{wanted[1]} mode"
            for name, asked, actual in (("width", wanted[0], self.size[0]), ("height", wanted[1], self.size[1])):
                outcomes[name] = AppliedSetting(name, str(asked), str(actual), ok, detail)
        for name, value in settings.requested().items():
            if name not in ("width", "height"):
                outcomes[name] = AppliedSetting(name, value, "", False, f"the device has no {name} control")
        return tuple(outcomes.values())

    async def encode(self, frame: Frame, fmt: ImageFormat, quality: int) -> bytes:
        """:returns: bytes naming the frame, format and quality."""
        key = (frame.sequence, fmt, quality)
        self.encodes[key] = self.encodes.get(key, 0) + 1
        await asyncio.sleep(0)  # a real encoder yields to the loop while a worker thread works
        return f"{fmt.value} {frame.sequence} q{quality} {frame.width}x{frame.height}".encode()

    async def inspect(self, frame: Frame, mm_per_px: float | None) -> tuple[InspectionSignals, float]:
        """:returns: a phone found, with its length in millimetres when calibrated."""
        mm = None if mm_per_px is None else Signal(140.0 * mm_per_px / 0.1, 0.9)
        return InspectionSignals(phone_present=Signal(True, 0.99), length_px=Signal(1400.0, 0.9), length_mm=mm), 1.5
