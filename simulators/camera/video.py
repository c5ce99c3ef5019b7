"""Video files of the chamber (Motion-JPEG in AVI), for pointing the daemon at a file instead of a camera.

Also a command (``simulators/camera/__main__.py``):
``python -m simulators.camera OUT.avi [--size 1280x720] [--fps 10] [--seed 7]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2

from simulators.camera.scene import NATIVE_SIZE, PhoneLook, Scene, random_scene, render

DEFAULT_FPS = 10
#: How long each scene of a clip is held, in frames.
FRAMES_PER_SCENE = 10


def demo_scenes(looks: Sequence[PhoneLook], seed: int) -> list[Scene]:
    """A kiosk session as the camera sees it: empty tray, a phone put down, its screen lit, then cracked.

    :param looks: phones to choose from; must not be empty.
    :param seed: picks the phone and where it lies.
    """
    placed = random_scene(random.Random(seed), looks, phone_probability=1.0, crack_probability=0.0)
    placed = dataclasses.replace(placed, screen_on=False, glare=0.0)
    return [
        Scene(seed=seed),
        placed,
        dataclasses.replace(placed, screen_on=True),
        dataclasses.replace(placed, screen_on=True, cracked=True),
    ]


def write_video(
    path: Path,
    scenes: Sequence[Scene],
    *,
    size: tuple[int, int] = NATIVE_SIZE,
    fps: int = DEFAULT_FPS,
    frames_per_scene: int = FRAMES_PER_SCENE,
) -> int:
    """Write ``scenes`` to ``path`` as an MJPG ``.avi``, each held ``frames_per_scene`` frames.

    The file appears whole or not at all (it is written beside ``path`` and renamed over it).

    :returns: the number of frames written.
    :raises ValueError: ``path`` does not end in ``.avi``, or nothing to write.
    :raises OSError: OpenCV could not open a writer there.
    """
    if path.suffix != ".avi" or not scenes or frames_per_scene < 1 or fps < 1:
        raise ValueError("need an .avi path, at least one scene, and positive frame counts")
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".avi")
    os.close(fd)
    writer = cv2.VideoWriter(temp, cv2.VideoWriter.fourcc(*"MJPG"), float(fps), size)
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write an MJPG video to {path}")
        for scene in scenes:
            frame = render(scene, *size)
            for _ in range(frames_per_scene):
                writer.write(frame)
        writer.release()
        os.replace(temp, path)
    except BaseException:
        writer.release()
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return len(scenes) * frames_per_scene
