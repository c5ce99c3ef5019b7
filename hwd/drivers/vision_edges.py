"""Refining the phone's rectangle on the full-resolution image (part of hwd.drivers.vision).

The blob found at working resolution is off by a pixel or two of that resolution, and a light
body's thin rim can blend into the tray there. Each side is moved to the outermost sharp step
across it, measured on intensity profiles taken along the side's normal at full resolution; a
shadow's or a highlight's soft ramp is no sharp step.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from hwd.drivers.vision_image import U8Image

F32 = npt.NDArray[np.float32]
PROFILES = 24  # profiles per side
SPAN = (0.2, 0.8)  # part of each side probed: clear of the rounded corners
STEP = 0.5  # pixels between samples along a profile
MIN_STEP = 12.0  # grey levels: the least step that can be the phone's edge ...
NOISE_STEPS = 5.0  # ... and the least in multiples of the median step (the noise's)
STRANDS = 5  # parallel lines averaged into one profile
OUTERMOST = 0.1  # an edge this strong relative to the profile's strongest counts as the outer one


def _profiles(image: U8Image, a: F32, b: F32, normal: F32, reach: float) -> F32:
    """Colour profiles (PROFILES x samples x 3) across the side a-b, from outside (``reach`` pixels
    along ``normal``) to inside."""
    side = b - a
    unit = side / max(float(np.hypot(*side)), 1e-6)
    # Each profile averages STRANDS parallel lines one pixel apart: sensor noise drops, the edge stays.
    spread = (np.arange(STRANDS, dtype=np.float32) - (STRANDS - 1) / 2)[None, :]
    along = np.linspace(SPAN[0], SPAN[1], PROFILES, dtype=np.float32)[:, None]
    starts = a[None, None, :] + (along * side)[:, None, :] + (spread[:, :, None] * unit)
    offsets = np.arange(reach, -reach - STEP / 2, -STEP, dtype=np.float32)
    points = starts.reshape(-1, 1, 2) + offsets[None, :, None] * normal[None, None, :]
    maps = points.astype(np.float32)
    sampled = cv2.remap(image, maps[:, :, 0], maps[:, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    strands = np.asarray(sampled, dtype=np.float32).reshape(PROFILES, STRANDS, offsets.size, 3)
    return np.asarray(strands.mean(axis=1), dtype=np.float32)


def _edge_offset(profiles: F32, reach: float) -> float | None:
    """Median outward distance of the side's outermost sharp step, or None when too few profiles show one."""
    lag = max(1, round(1.0 / STEP))
    diffs = np.abs(profiles[:, 2 * lag :] - profiles[:, : -2 * lag])  # central differences
    steps = np.maximum(np.maximum(diffs[:, :, 0], diffs[:, :, 1]), diffs[:, :, 2])
    # Most samples show no edge, so the median step is the noise's: a real edge stands well above it.
    floor = max(MIN_STEP, NOISE_STEPS * float(np.median(steps)))
    found: list[float] = []
    for row in steps:
        strongest = float(row.max())
        if strongest < floor:
            continue
        over = np.flatnonzero(row >= max(OUTERMOST * strongest, floor))
        i = int(over[0])
        while i + 1 < row.size and row[i + 1] >= row[i]:
            i += 1  # climb to the top of this step
        position = float(i)
        if 0 < i < row.size - 1:  # parabolic peak between the samples
            left, mid, right = float(row[i - 1]), float(row[i]), float(row[i + 1])
            curvature = left - 2 * mid + right
            if curvature < 0:
                position += 0.5 * (left - right) / curvature
        found.append(reach - (position + lag) * STEP)
    if len(found) < PROFILES // 2:
        return None
    return float(np.median(found))


def refine(image: U8Image, corners: F32, reach: float) -> tuple[F32, float]:
    """Moves each side of the rectangle to the phone's edge.

    :param image: the full-resolution BGR image.
    :param corners: the rectangle in ``image`` pixels, 4 x 2, clockwise on the image.
    :param reach: how far (pixels) a side may move either way.
    :returns: the refined corners (same order) and the fraction of sides whose edge was found.
    """
    centre = corners.mean(axis=0)
    shifts = np.zeros((4, 2), dtype=np.float32)
    found = 0
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        direction = b - a
        normal = np.array([direction[1], -direction[0]], dtype=np.float32) / max(float(np.hypot(*direction)), 1e-6)
        if float(np.dot(normal, (a + b) / 2 - centre)) < 0:
            normal = -normal
        offset = _edge_offset(_profiles(image, a, b, normal, reach), reach)
        if offset is None:
            continue
        found += 1
        shifts[i] = normal * offset
    # A corner moves with both of its sides: side i runs from corner i to corner i + 1.
    moved = corners + shifts + np.roll(shifts, 1, axis=0)
    return moved.astype(np.float32), found / 4
