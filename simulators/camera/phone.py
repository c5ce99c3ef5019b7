"""Drawing one phone, face up and upright, as a sprite the chamber renderer places on the tray.

Everything is laid out in millimetres and drawn at ``px_per_mm``, so a scene looks the same at
every output size. The sprite's long axis is vertical; the renderer rotates it into place.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from simulators.camera.scene import PhoneLook

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.float32]
Point = tuple[float, float]

#: Sub-pixel precision of the polygon drawing (cv2's ``shift``): 16ths of a pixel.
_SHIFT = 4
#: Width of the body's rim seen around the black front glass.
_RIM_MM = 0.9
_SCREEN_OFF_BGR = (16, 15, 14)
#: Saturated app-icon colours (BGR); a seed picks the order.
_ICON_BGR = [(60, 76, 231), (113, 204, 46), (219, 152, 52), (15, 196, 241), (182, 89, 155), (34, 126, 230)]
_WALLPAPERS = [((214, 150, 60), (140, 70, 150)), ((120, 180, 60), (60, 90, 30)), ((90, 120, 230), (150, 60, 120))]


@dataclass(frozen=True)
class Sprite:
    """An upright phone: ``bgr`` colour, ``alpha`` coverage 0..1 and ``screen`` coverage 0..1."""

    bgr: Image
    alpha: Mask
    screen: Mask


def draw_phone(look: PhoneLook, *, screen_on: bool, cracked: bool, seed: int, px_per_mm: float) -> Sprite:
    """Draw ``look`` upright (long side vertical) at ``px_per_mm``.

    :param seed: picks the wallpaper and icons of a lit screen and the crack pattern.
    :returns: the sprite; its centre is the phone's centre.
    """
    pad = 2
    width = math.ceil(look.width_mm * px_per_mm) + 2 * pad
    height = math.ceil(look.length_mm * px_per_mm) + 2 * pad
    origin = ((width - look.width_mm * px_per_mm) / 2, (height - look.length_mm * px_per_mm) / 2)

    def box(inset_mm: float) -> tuple[float, float, float, float]:
        inset = inset_mm * px_per_mm
        return (
            origin[0] + inset,
            origin[1] + inset,
            origin[0] + look.width_mm * px_per_mm - inset,
            origin[1] + look.length_mm * px_per_mm - inset,
        )

    alpha = np.zeros((height, width), np.uint8)
    _fill_rounded(alpha, box(0), look.corner_mm * px_per_mm, 255)
    bgr = np.zeros((height, width, 3), np.uint8)
    _fill_rounded(bgr, box(0), look.corner_mm * px_per_mm, look.body_bgr)
    glass = tuple(int(c * 0.22 + 8) for c in look.body_bgr)
    _fill_rounded(bgr, box(_RIM_MM), max(look.corner_mm - _RIM_MM, 0.5) * px_per_mm, glass)

    bezel = max(look.bezel_mm, _RIM_MM + 0.5)
    screen_box = box(bezel)
    screen_radius = max(look.corner_mm - bezel, 1.0) * px_per_mm
    screen_mask = np.zeros((height, width), np.uint8)
    _fill_rounded(screen_mask, screen_box, screen_radius, 255)
    content = _screen_content(screen_box, (height, width), screen_on, seed, px_per_mm)
    if cracked:
        _draw_cracks(content, screen_box, seed, px_per_mm)
    inside = screen_mask > 0
    bgr[inside] = content[inside]
    return Sprite(
        bgr=bgr,
        alpha=alpha.astype(np.float32) / 255.0,
        screen=screen_mask.astype(np.float32) / 255.0,
    )


def _fill_rounded(
    canvas: Image, rect: tuple[float, float, float, float], radius: float, colour: int | tuple[int, ...]
) -> None:
    """Fill an anti-aliased rounded rectangle ``rect`` (x0, y0, x1, y1 in pixels) on ``canvas``."""
    x0, y0, x1, y1 = rect
    radius = max(0.0, min(radius, (x1 - x0) / 2, (y1 - y0) / 2))
    points: list[Point] = []
    corners = [(x1 - radius, y0 + radius, -90.0), (x1 - radius, y1 - radius, 0.0)]
    corners += [(x0 + radius, y1 - radius, 90.0), (x0 + radius, y0 + radius, 180.0)]
    for cx, cy, start in corners:
        for step in range(9):
            angle = math.radians(start + step * 90.0 / 8)
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    fixed = np.array([[round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT))] for x, y in points], np.int32)
    fill: tuple[int, ...] = (colour,) if isinstance(colour, int) else colour
    cv2.fillPoly(canvas, [fixed], fill, lineType=cv2.LINE_AA, shift=_SHIFT)


def _screen_content(
    rect: tuple[float, float, float, float], shape: tuple[int, int], screen_on: bool, seed: int, px_per_mm: float
) -> Image:
    """The screen's picture over the whole sprite (the caller keeps only the screen area)."""
    content = np.empty((*shape, 3), np.uint8)
    x0, y0, x1, y1 = rect
    rows = np.linspace(0.0, 1.0, shape[0], dtype=np.float32)[:, None]
    if not screen_on:
        # A dead screen is not flat black: the chamber light leaves a faint sheen across it.
        sheen = 10.0 * np.clip(1.0 - np.abs(rows - 0.35) * 3.0, 0.0, 1.0)
        content[:] = (np.asarray(_SCREEN_OFF_BGR, np.float32) + sheen[:, :, None]).astype(np.uint8)
        return content
    rng = random.Random(seed)
    top, bottom = rng.choice(_WALLPAPERS)
    blend = np.asarray(top, np.float32) * (1 - rows[:, :, None]) + np.asarray(bottom, np.float32) * rows[:, :, None]
    content[:] = np.broadcast_to(blend, content.shape).astype(np.uint8)
    width_mm = (x1 - x0) / px_per_mm
    height_mm = (y1 - y0) / px_per_mm

    def rect_mm(ax: float, ay: float, bx: float, by: float, radius: float, colour: tuple[int, ...]) -> None:
        box = (x0 + ax * px_per_mm, y0 + ay * px_per_mm, x0 + bx * px_per_mm, y0 + by * px_per_mm)
        _fill_rounded(content, box, radius * px_per_mm, colour)

    white = (245, 245, 245)
    rect_mm(4.0, 2.0, 12.0, 4.5, 0.6, white)  # the clock
    rect_mm(width_mm - 12.0, 2.2, width_mm - 4.0, 4.3, 0.8, white)  # battery and signal
    icons = _ICON_BGR[:]
    rng.shuffle(icons)
    side = width_mm * 0.16
    gap = (width_mm - 4 * side) / 5
    for row in range(5):
        for col in range(4):
            ax = gap + col * (side + gap)
            ay = 12.0 + row * (side + 6.0)
            rect_mm(ax, ay, ax + side, ay + side, side * 0.22, icons[(row * 4 + col) % len(icons)])
            rect_mm(ax + side * 0.2, ay + side + 1.2, ax + side * 0.8, ay + side + 2.4, 0.4, (235, 235, 235))
    rect_mm(2.5, height_mm - side - 8.0, width_mm - 2.5, height_mm - 3.0, 4.0, (225, 215, 215))
    for col in range(4):
        ax = gap + col * (side + gap)
        rect_mm(ax, height_mm - side - 5.5, ax + side, height_mm - 5.5, side * 0.22, icons[(col + 2) % len(icons)])
    return content


def crack_paths(seed: int, width_mm: float, height_mm: float) -> list[list[Point]]:
    """The polylines (in mm from the screen's top-left corner) of a cracked screen.

    Rays branch out of an impact point and wander until they leave the screen or run out; short
    arcs between neighbouring rays near the impact make the familiar spider web.

    :param seed: fixes the pattern.
    """
    rng = random.Random(seed ^ 0x5EED)
    impact = (rng.uniform(0.2, 0.8) * width_mm, rng.uniform(0.15, 0.85) * height_mm)
    count = rng.randint(5, 9)
    base = rng.uniform(0, 2 * math.pi)
    pending = [
        (impact, base + 2 * math.pi * i / count + rng.gauss(0, 0.2), rng.uniform(0.5, 1.3), 0) for i in range(count)
    ]
    paths: list[list[Point]] = []
    reach = max(width_mm, height_mm)
    while pending and len(paths) < 48:
        start, heading, share, depth = pending.pop()
        point, budget, path = start, share * reach, [start]
        while budget > 0:
            step = rng.uniform(3.0, 9.0)
            heading += rng.gauss(0, 0.28)
            point = (point[0] + step * math.cos(heading), point[1] + step * math.sin(heading))
            path.append(point)
            budget -= step
            if not (0 <= point[0] <= width_mm and 0 <= point[1] <= height_mm):
                break
            if depth < 2 and rng.random() < 0.14:
                turn = rng.choice((-1, 1)) * rng.uniform(0.4, 1.0)
                pending.append((point, heading + turn, share * 0.45, depth + 1))
        paths.append(path)
    for ring in (rng.uniform(4, 7), rng.uniform(9, 14)):
        arc_start = rng.uniform(0, 2 * math.pi)
        arc = [
            (impact[0] + ring * math.cos(arc_start + k * 0.35), impact[1] + ring * math.sin(arc_start + k * 0.35))
            for k in range(rng.randint(6, 14))
        ]
        paths.append(arc)
    return paths


def _draw_cracks(content: Image, rect: tuple[float, float, float, float], seed: int, px_per_mm: float) -> None:
    """Draw the crack pattern of ``seed`` over the screen ``rect`` of ``content``."""
    x0, y0, x1, y1 = rect
    scale = px_per_mm * (1 << _SHIFT)
    offset = max(1.0, px_per_mm * 0.2) * (1 << _SHIFT)
    lines = []
    for path in crack_paths(seed, (x1 - x0) / px_per_mm, (y1 - y0) / px_per_mm):
        lines.append(
            np.array(
                [[round(x0 * (1 << _SHIFT) + x * scale), round(y0 * (1 << _SHIFT) + y * scale)] for x, y in path],
                np.int32,
            )
        )
    thickness = max(1, round(px_per_mm * 0.18))
    # Each crack is a dark fissure with a bright edge beside it, where the broken glass catches light.
    shadow = [line + np.int32(offset) for line in lines]
    cv2.polylines(content, shadow, False, (20, 20, 20), thickness, cv2.LINE_AA, _SHIFT)
    cv2.polylines(content, lines, False, (235, 238, 240), thickness, cv2.LINE_AA, _SHIFT)
