"""The camera's current picture as JPEG, encoded once per scene and size, never per client."""

from __future__ import annotations

import asyncio
import logging

import cv2

from simulators.camera.scene import NATIVE_SIZE, Scene, render_variants

log = logging.getLogger(__name__)

#: The sizes the camera's scaler offers, as "WIDTHxHEIGHT"; the first is the sensor's own.
SIZES: dict[str, tuple[int, int]] = {"1920x1080": NATIVE_SIZE, "1280x720": (1280, 720), "640x480": (640, 480)}
#: A still scene with sensor noise is streamed as this many pre-rendered noisy frames, in turn.
NOISE_VARIANTS = 4
JPEG_QUALITY = 85


def encode_jpeg(frame: object, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR frame.

    :raises ValueError: OpenCV could not encode it.
    """
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])  # type: ignore[call-overload]
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(data)


class FrameCache:
    """JPEG frames of the current scene per size, made on first demand after each change.

    Rendering and encoding run in a worker thread, one at a time: the simulator shares a small
    machine with the daemon it feeds, so clients of the same size share one encoding.
    """

    def __init__(self, scene: Scene) -> None:
        """:param scene: the initial scene; nothing is rendered yet."""
        self._scene = scene
        self._version = 0
        self._jpegs: dict[tuple[int, int], tuple[bytes, ...]] = {}
        self._lock = asyncio.Lock()
        self.encodings = 0  # how many scene-and-size encodings were made, for tests and the state line

    @property
    def scene(self) -> Scene:
        """The scene being shown."""
        return self._scene

    def show(self, scene: Scene) -> None:
        """Show ``scene`` from now on; frames of the old one are dropped."""
        if scene != self._scene:
            self._scene = scene
            self._version += 1
            self._jpegs.clear()

    async def frames(self, size: tuple[int, int]) -> tuple[bytes, ...]:
        """The current scene's JPEG frames at ``size`` (one, or :data:`NOISE_VARIANTS` with noise).

        :raises ValueError: the frame could not be encoded.
        """
        while (cached := self._jpegs.get(size)) is None:
            async with self._lock:
                if size in self._jpegs:
                    continue
                scene, version = self._scene, self._version
                jpegs = await asyncio.to_thread(_encode_scene, scene, size)
                self.encodings += 1
                if version == self._version:  # else the scene changed meanwhile: encode the new one
                    self._jpegs[size] = jpegs
        return cached


def _encode_scene(scene: Scene, size: tuple[int, int]) -> tuple[bytes, ...]:
    frames = render_variants(scene, size[0], size[1], NOISE_VARIANTS)
    log.debug("camera: encoded %d frame(s) at %dx%d", len(frames), *size)
    return tuple(encode_jpeg(frame) for frame in frames)
