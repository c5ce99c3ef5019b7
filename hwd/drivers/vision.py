"""Inspection signals from one still of the tray, by classical computer vision (OpenCV, nothing learned).

``inspect`` finds the phone against the tray, measures its outline, orientation and size, and
reads its screen (lit or not, crack score). It works on a copy scaled down to WORK_LONG pixels
for the search and on an upright full-resolution cut-out for the screen, and reports positions
and sizes in the input's pixels. It is CPU-bound and blocking: call it from a worker thread.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import numpy.typing as npt

from hwd.drivers.vision_edges import refine
from hwd.drivers.vision_image import U8Image, as_bgr8, shrink
from hwd.drivers.vision_screen import read_screen, upright
from hwd.drivers.vision_segment import DIM_TRAY, Blob, TrayView, look
from hwd.model.inspection import InspectionSignals, Signal

log = logging.getLogger(__name__)

WORK_LONG = 640  # the longer side of the working image
UNUSABLE_CONFIDENCE = 0.1  # how sure "no phone" is on an image nothing can be seen on
MIN_TRAY_BRIGHTNESS = 5.0  # grey levels: a darker tray is a camera seeing nothing ...
MAX_TRAY_BRIGHTNESS = 245.0  # ... and a brighter one a washed-out frame
FILL_GOOD = 0.93  # a phone's rounded rectangle fills this much of its minimum-area rectangle
DIM_SIZE_FACTOR = 0.3  # how much less sure the size is on a dim tray
# Working pixels a side may move when refined at full resolution: the glass of a light phone can
# pass for the tray in shadow, leaving only the screen found, up to a bezel (6 mm) inside the edge.
REFINE_REACH = 10.0
FILL_POOR = 0.75  # an ellipse fills 0.79: below this a blob is no phone
MIN_PRESENT = 0.25  # the least shape-and-contrast score of a phone


def inspect(image_bgr: npt.NDArray[np.generic], mm_per_px: float | None = None) -> InspectionSignals:
    """Computes the inspection signals of one still.

    :param image_bgr: the still, normally H x W x 3 uint8 BGR; grey, BGRA, other integer and float
        dtypes are converted (see vision_image.as_bgr8). Anything else reads as an unusable image.
    :param mm_per_px: the tray's scale in millimetres per input pixel; without it (or when it is
        not a positive number) the sizes in millimetres are None.
    :returns: the signals; an unusable image gives ``phone_present`` False with low confidence.
        Never raises.
    """
    try:
        return _inspect(image_bgr, mm_per_px)
    except Exception:  # a guard for the contract: an image never breaks the caller
        log.exception("inspection failed on an image of shape %s", getattr(image_bgr, "shape", None))
        return InspectionSignals.absent(UNUSABLE_CONFIDENCE)


def _inspect(image: object, mm_per_px: float | None) -> InspectionSignals:
    bgr = as_bgr8(image)
    if bgr is None:
        return InspectionSignals.absent(UNUSABLE_CONFIDENCE)
    small, (sx, sy) = shrink(bgr, WORK_LONG)
    view = look(small)
    if view.blob is None and not MIN_TRAY_BRIGHTNESS <= view.brightness <= MAX_TRAY_BRIGHTNESS:
        return InspectionSignals.absent(UNUSABLE_CONFIDENCE)
    present = _presence(view)
    if view.blob is None or not present.value:
        return InspectionSignals(phone_present=present)
    return _measure(bgr, view, view.blob, (sx, sy), present, mm_per_px)


def _presence(view: TrayView) -> Signal:
    """Whether the blob is a phone, and how sure that is."""
    blob = view.blob
    if blob is None:
        # Nothing stands out: sure of it on a clean, lit tray; less on a dim or noisy one.
        dim = min(1.0, view.brightness / 40.0)
        clean = 1.0 / (1.0 + view.noise / 10.0)
        return Signal(False, round(max(UNUSABLE_CONFIDENCE, 0.98 * dim * clean**0.5), 3))
    shape = min(1.0, max(0.0, (blob.fill - FILL_POOR) / (FILL_GOOD - FILL_POOR)))
    strength = min(1.0, blob.contrast / 12.0)
    confidence = shape * (0.5 + 0.5 * strength)
    if confidence < MIN_PRESENT:
        # Something is there but it is no phone: sure of that when it is far from a phone's shape.
        return Signal(False, round(0.5 + 0.4 * (1.0 - confidence / MIN_PRESENT), 3))
    return Signal(True, round(min(0.99, 0.5 + confidence / 2), 3))


def _corners(blob: Blob, scale: tuple[float, float]) -> npt.NDArray[np.float32]:
    """The blob's rectangle in input pixels, 4 x 2, clockwise on the image, first the top-left-most."""
    sx, sy = scale
    pts = cv2.boxPoints(blob.rect).astype(np.float64)
    pts[:, 0] = (pts[:, 0] + 0.5) * sx - 0.5
    pts[:, 1] = (pts[:, 1] + 0.5) * sy - 0.5
    centre = pts.mean(axis=0)
    # atan2 grows clockwise on an image (y points down).
    order = np.argsort(np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0]))
    pts = pts[order]
    first = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -first, axis=0).astype(np.float32)


def _geometry(corners: npt.NDArray[np.float32]) -> tuple[float, float, float]:
    """(length, width, orientation) of a rectangle: its sides in pixels and the long axis's angle
    from vertical in degrees, (-90, 90], positive clockwise on the image."""
    a, b = corners[1] - corners[0], corners[2] - corners[1]
    la, lb = float(np.hypot(*a)), float(np.hypot(*b))
    axis = a if la >= lb else b
    angle = math.degrees(math.atan2(float(axis[0]), -float(axis[1])))
    while angle > 90.0:
        angle -= 180.0
    while angle <= -90.0:
        angle += 180.0
    return max(la, lb), min(la, lb), angle


def _measure(
    bgr: U8Image,
    view: TrayView,
    blob: Blob,
    scale: tuple[float, float],
    present: Signal,
    mm_per_px: float | None,
) -> InspectionSignals:
    """The signals of a found phone."""
    corners, edges_found = refine(bgr, _corners(blob, scale), REFINE_REACH * max(scale))
    length, width, angle = _geometry(corners)
    size_conf = present.confidence * (0.4 if blob.touches_edge else 1.0) * min(1.0, blob.fill / FILL_GOOD)
    size_conf *= 0.6 + 0.4 * edges_found
    if view.brightness < DIM_TRAY:  # in the dark a lit screen shows, the body around it hardly
        size_conf *= DIM_SIZE_FACTOR
    # How sure the angle is grows with the elongation; near 90 degrees it has two faces.
    angle_conf = present.confidence * min(1.0, (length / max(width, 1.0) - 1.0) / 0.6)
    screen = read_screen(upright(bgr, corners), view.brightness)
    calibrated = mm_per_px is not None and math.isfinite(mm_per_px) and mm_per_px > 0
    return InspectionSignals(
        phone_present=present,
        outline=tuple((round(float(x), 2), round(float(y), 2)) for x, y in corners),
        orientation_deg=Signal(round(angle, 2), round(angle_conf, 3)),
        length_px=Signal(round(length, 2), round(size_conf, 3)),
        width_px=Signal(round(width, 2), round(size_conf, 3)),
        length_mm=Signal(round(length * mm_per_px, 2), round(size_conf, 3)) if calibrated and mm_per_px else None,
        width_mm=Signal(round(width * mm_per_px, 2), round(size_conf, 3)) if calibrated and mm_per_px else None,
        screen_on=Signal(screen.lit, round(screen.lit_confidence * present.confidence, 3)),
        crack_score=Signal(round(screen.crack_score, 3), round(screen.crack_confidence * present.confidence, 3)),
    )
