"""The phone's screen: is it lit, and how cracked does it look (part of hwd.drivers.vision).

The phone is cut out of the full-resolution image and turned upright (long axis vertical); the
screen is its inner part, inside the widest bezel phones have. A lit screen is bright where the
front glass of an unlit one is near black, whatever the room light. A crack is a long thin line,
brighter or darker than both its sides, at an angle of its own: a UI draws thin lines too, but
along the screen's axes, while glare and sensor noise make no long thin lines at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from hwd.drivers.vision_image import U8Image

F32 = npt.NDArray[np.float32]
CROP_LONG = 560  # pixels along the phone's long axis in the upright crop
INSET = 0.1  # of the phone's width, on every side: past the widest bezel and the rounded corners
LIT_LEVEL = 55.0  # median grey level of a lit screen is above, of an unlit one below
LIT_SPAN = 35.0  # grey levels from LIT_LEVEL to full confidence
RIDGE_KERNEL = 5  # cracks are thinner than this (pixels of the crop)
RIDGE_MIN = 10.0  # grey levels: the least contrast of a crack line
RIDGE_SIGMAS = 5.0  # and the least in deviations of the ridge response on the screen
AXIS_TOLERANCE_DEG = 10.0  # a line this close to the screen's axes may be UI, not a crack
CRACK_LENGTH_SCALE = 1.5  # crack length, in screen widths, that gives a score of 1 - 1/e
DIM_TRAY = 40.0  # grey levels: a tray darker than this means the chamber light is off
SATURATED = 250  # grey level of a pixel washed out by glare


@dataclass(frozen=True)
class ScreenReading:
    """``lit`` and its confidence; ``crack_score`` in 0..1 and its confidence."""

    lit: bool
    lit_confidence: float
    crack_score: float
    crack_confidence: float


def upright(image: U8Image, corners: npt.NDArray[np.float32]) -> U8Image:
    """The phone cut out of ``image`` and turned so that its long axis is vertical.

    :param corners: the phone's rectangle in ``image`` pixels, 4 x 2, clockwise.
    :returns: a BGR image CROP_LONG pixels high.
    """
    sides = [float(np.linalg.norm(corners[(i + 1) % 4] - corners[i])) for i in range(4)]
    start = 0 if sides[0] <= sides[1] else 1  # the corner that starts a short side
    p0, p1, p2 = (corners[(start + k) % 4] for k in range(3))
    short, long = min(sides[0], sides[1]), max(sides[0], sides[1])
    height = CROP_LONG
    width = max(8, round(CROP_LONG * short / max(long, 1.0)))
    src = np.array([p0, p1, p2], dtype=np.float32)
    dst = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1]], dtype=np.float32)
    matrix = cv2.getAffineTransform(src, dst)
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def screen_area(phone: U8Image) -> U8Image:
    """The inner part of an upright phone crop where the screen is."""
    h, w = phone.shape[:2]
    inset = max(1, round(INSET * w))
    return phone[inset : h - inset, inset : w - inset]


def read_screen(phone: U8Image, tray_brightness: float) -> ScreenReading:
    """Reads the screen of an upright phone crop.

    :param tray_brightness: mean grey level of the tray, to judge how well lit the scene is.
    :returns: the reading.
    """
    grey = np.asarray(cv2.cvtColor(screen_area(phone), cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    level = float(np.median(grey))
    lit_confidence = min(1.0, 0.5 + abs(level - LIT_LEVEL) / (2 * LIT_SPAN))
    lit = level > LIT_LEVEL
    score, crack_confidence = crack(grey)
    if tray_brightness < DIM_TRAY:  # without the chamber light only a lit screen shows its cracks
        crack_confidence *= 0.8 if lit else 0.25
    return ScreenReading(lit, lit_confidence, score, crack_confidence)


def _ridges(grey: U8Image) -> tuple[npt.NDArray[np.uint8], float]:
    """Thin lines brighter or darker than both sides, as a 0/255 mask; and the response's noise level."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (RIDGE_KERNEL, RIDGE_KERNEL))
    smooth = cv2.GaussianBlur(grey, (3, 3), 0)
    response = np.maximum(
        cv2.morphologyEx(smooth, cv2.MORPH_TOPHAT, kernel), cv2.morphologyEx(smooth, cv2.MORPH_BLACKHAT, kernel)
    ).astype(np.float32)
    median = float(np.median(response))
    spread = float(np.median(np.abs(response - median))) * 1.4826
    threshold = max(RIDGE_MIN, median + RIDGE_SIGMAS * spread)
    mask = (response > threshold).astype(np.uint8) * np.uint8(255)
    return mask, spread


def _off_axis_length(mask: npt.NDArray[np.uint8]) -> float:
    """Total length in pixels of the straight line segments in ``mask`` that are not along its axes."""
    w = mask.shape[1]
    min_len = max(8, round(0.08 * w))
    lines = cv2.HoughLinesP(mask, 1, math.pi / 180, threshold=min_len, minLineLength=min_len, maxLineGap=3)
    if lines is None:
        return 0.0
    total = 0.0
    for x1, y1, x2, y2 in lines.reshape(-1, 4).astype(np.float64):
        angle = abs(math.degrees(math.atan2(y2 - y1, x2 - x1))) % 90.0
        if AXIS_TOLERANCE_DEG < angle < 90.0 - AXIS_TOLERANCE_DEG:
            total += math.hypot(x2 - x1, y2 - y1)
    return total


def crack(grey: U8Image) -> tuple[float, float]:
    """The crack score of a screen (upright, grey) and its confidence.

    :returns: (score 0..1, confidence 0..1).
    """
    h, w = grey.shape
    if h < 16 or w < 16:
        return 0.0, 0.1
    mask, spread = _ridges(grey)
    length = _off_axis_length(mask)
    score = 1.0 - math.exp(-length / (CRACK_LENGTH_SCALE * w))
    washed = float(np.count_nonzero(grey >= SATURATED)) / grey.size
    # Glare hides what is under it, noise buries faint lines: both lower the confidence.
    confidence = max(0.1, 1.0 - washed) * (1.0 / (1.0 + spread / RIDGE_MIN))
    confidence = min(1.0, confidence * (0.6 + 0.4 * abs(score - 0.5) * 2))
    return score, confidence
