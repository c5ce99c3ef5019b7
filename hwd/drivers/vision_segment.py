"""Finding the phone on the tray: a smooth model of the empty tray, the pixels that stand out from it,
and the most phone-like blob among them (part of hwd.drivers.vision).

The tray fills the border of the frame; a phone is a compact, nearly rectangular blob of a size a
phone can have. The tray model is a quadratic surface per colour channel, fitted to the pixels
that look like tray, so a lighting gradient across the tray is not mistaken for an object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from hwd.drivers.vision_image import U8Image

F32 = npt.NDArray[np.float32]
BORDER = 0.06  # fraction of each side assumed to show the tray when fitting the first model
SAMPLE_STEP = 4  # fit the tray model on one pixel in SAMPLE_STEP x SAMPLE_STEP
FIT_ROUNDS = 3  # rounds of the trimmed fit ...
TRIM_SIGMAS = 3.0  # ... each dropping samples this many deviations off the surface
MIN_AREA = 0.01  # a phone covers at least this fraction of the frame ...
MAX_AREA = 0.6  # ... and at most this one
FRAGMENT = 0.003  # fraction of the frame: the least piece of a phone cut by a highlight
FRAGMENT_COVERAGE = 0.8  # pieces covering this much of their hull together are taken as whole
MIN_ASPECT, MAX_ASPECT = 1.3, 3.2  # long side over short side: phones are 1.8-2.4
NOISE_FLOOR = 1.5  # grey levels: the least tray noise assumed (a synthetic tray can be perfectly flat)
THRESHOLD_SIGMAS = 6.0  # a pixel stands out beyond this many tray-noise deviations ...
MIN_CONTRAST = 10.0  # ... and never by less than this many grey levels
GOOD_FILL = 0.9  # a blob filling this much of its rectangle needs no second look
DIM_TRAY = 40.0  # grey levels: a tray darker than this is looked at again, smoothed with ...
DIM_BLUR = 13  # ... this Gaussian kernel ...
DIM_MIN_CONTRAST = 3.0  # ... a contrast floor down to this ...
DIM_NOISE_FLOOR = 0.3  # ... and this least noise assumed
SHADOW_DEPTH = 0.4  # a shadow on the tray takes off at most this fraction of the light
GLARE_DEPTH = 0.8  # a highlight on the tray blends it at most this far towards white
HUE_TOLERANCE = 8.0  # grey levels a shadowed or highlighted tray may stray from the tray's hue


@dataclass(frozen=True)
class Blob:
    """The most phone-like blob in the working image.

    ``rect`` is cv2.minAreaRect's ((cx, cy), (w, h), angle) in working pixels; ``fill`` is the blob's
    area over the rectangle's; ``contrast`` is how far the blob stands out from the tray in tray-noise
    deviations; ``touches_edge`` is True when it reaches the border of the frame (cut off).
    """

    rect: tuple[tuple[float, float], tuple[float, float], float]
    fill: float
    area_fraction: float
    contrast: float
    touches_edge: bool


@dataclass(frozen=True)
class TrayView:
    """What the tray looks like: ``blob`` is the best candidate (None when nothing stands out);
    ``noise`` is the tray's noise deviation in grey levels; ``brightness`` its mean grey level."""

    blob: Blob | None
    noise: float
    brightness: float


def _design(xs: F32, ys: F32) -> F32:
    """Columns of a quadratic surface in normalised coordinates."""
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, ys * ys, xs * ys], axis=1)


def _least_squares(design: F32, values: F32) -> npt.NDArray[np.float64]:
    """The least-squares coefficients (6 x 3) by the normal equations: a 6 x 6 system, far quicker
    than an SVD for this well-conditioned basis."""
    a = design.astype(np.float64)
    gram = a.T @ a + np.eye(a.shape[1]) * 1e-9  # the ridge keeps a degenerate sample set solvable
    return np.asarray(np.linalg.solve(gram, a.T @ values.astype(np.float64)), dtype=np.float64)


def _fit_tray(image: F32, usable: npt.NDArray[np.bool_], noise_floor: float) -> tuple[F32, float]:
    """Fits the tray surface to the ``usable`` pixels (subsampled).

    :returns: the modelled tray image (H x W x 3) and the noise deviation of its residuals.
    """
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h:SAMPLE_STEP, 0:w:SAMPLE_STEP]
    keep = usable[::SAMPLE_STEP, ::SAMPLE_STEP]
    if int(keep.sum()) < 12:
        keep = np.ones_like(keep)
    xs = (xx[keep] / w).astype(np.float32)
    ys = (yy[keep] / h).astype(np.float32)
    samples = image[::SAMPLE_STEP, ::SAMPLE_STEP][keep]
    design = _design(xs, ys)
    inliers = np.ones(len(samples), dtype=bool)
    # Trimmed least squares: a phone lying across the border must not bend the tray's surface.
    for _ in range(FIT_ROUNDS):
        coef = _least_squares(design[inliers], samples[inliers])
        residual = np.abs(samples - design @ coef).max(axis=1)
        spread = max(float(np.median(residual[inliers])) * 1.4826, noise_floor)
        trimmed = residual <= TRIM_SIGMAS * spread
        if int(trimmed.sum()) < 12:
            break
        inliers = trimmed
    # The surface is smooth: evaluate it on the subsampled grid and scale it up.
    gx, gy = (xx[0, :] / w).astype(np.float32), (yy[:, 0] / h).astype(np.float32)
    grid_x, grid_y = np.meshgrid(gx, gy)
    coarse = (_design(grid_x.ravel(), grid_y.ravel()) @ coef.astype(np.float32)).reshape(*grid_x.shape, 3)
    model = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    noise = float(np.median(residual[inliers])) * 1.4826
    return np.asarray(model, dtype=np.float32), max(noise, noise_floor)


def _f32(array: object) -> F32:
    """An OpenCV result as the float32 array it is."""
    return np.asarray(array, dtype=np.float32)


def _channel_max(planes: F32) -> F32:
    """The largest of the three channels of an H x W x 3 image (faster than ``max(axis=2)``)."""
    return np.maximum(np.maximum(planes[:, :, 0], planes[:, :, 1]), planes[:, :, 2])


def _explained(image: F32, model: F32, tolerance: float) -> npt.NDArray[np.bool_]:
    """Pixels that are the tray under a shadow or a highlight rather than an object.

    A shadow scales the tray's colour down, at most by SHADOW_DEPTH; a specular highlight blends it
    towards white, at most by GLARE_DEPTH. Either keeps the tray's hue, which a phone's glass, body
    and screen do not share, within ``tolerance`` grey levels.
    """
    tray = _f32(cv2.transform(model, np.full((1, 3), 1 / 3, np.float32)))
    seen = _f32(cv2.transform(image, np.full((1, 3), 1 / 3, np.float32)))
    ratio = seen / np.maximum(tray, 1.0)
    shaded = _f32(cv2.multiply(model, cv2.merge([ratio, ratio, ratio])))
    off_shade = _channel_max(_f32(cv2.absdiff(image, shaded)))
    shadow = (ratio >= 1.0 - SHADOW_DEPTH) & (ratio <= 1.0) & (off_shade < tolerance)
    blend = (seen - tray) / np.maximum(255.0 - tray, 1.0)
    lit = model + _f32(cv2.multiply(255.0 - model, cv2.merge([blend, blend, blend])))
    off_glare = _channel_max(_f32(cv2.absdiff(image, lit)))
    glare = (blend > 0) & (blend <= GLARE_DEPTH) & (off_glare < tolerance)
    return np.asarray(shadow | glare, dtype=np.bool_)


def _outstanding(image: F32, model: F32, noise: float, min_contrast: float) -> tuple[npt.NDArray[np.uint8], F32]:
    """The pixels that stand out from the tray model, as a cleaned 0/255 mask, and the distance map."""
    distance = _channel_max(_f32(cv2.absdiff(image, model)))
    threshold = max(THRESHOLD_SIGMAS * noise, min_contrast)
    explained = _explained(image, model, max(HUE_TOLERANCE, 3.0 * noise))
    raw = ((distance > threshold) & ~explained).astype(np.uint8) * np.uint8(255)
    opened = cv2.morphologyEx(raw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return np.asarray(closed, dtype=np.uint8), distance


def _tray_mask(h: int, w: int) -> npt.NDArray[np.bool_]:
    """The border strips of the frame, where the first tray model is fitted."""
    usable = np.zeros((h, w), dtype=bool)
    by, bx = max(1, int(h * BORDER)), max(1, int(w * BORDER))
    usable[:by, :] = usable[-by:, :] = True
    usable[:, :bx] = usable[:, -bx:] = True
    return usable


def look(small: U8Image) -> TrayView:
    """Models the tray and picks the most phone-like blob on it.

    A dim tray (the chamber light off) is looked at again with more smoothing and a lower contrast
    floor: the camera's gain raises the noise there while every contrast shrinks.

    :param small: the working-size BGR image.
    :returns: the tray's view.
    """
    view = _look(small, 3, MIN_CONTRAST, NOISE_FLOOR)
    if view.brightness >= DIM_TRAY or (view.blob is not None and view.blob.fill >= GOOD_FILL):
        return view
    floor = max(DIM_MIN_CONTRAST, MIN_CONTRAST * view.brightness / DIM_TRAY)
    second = _look(small, DIM_BLUR, floor, DIM_NOISE_FLOOR)
    if second.blob is None or (view.blob is not None and view.blob.fill >= second.blob.fill):
        return view
    return second


def _look(small: U8Image, blur: int, min_contrast: float, noise_floor: float) -> TrayView:
    image = _f32(cv2.GaussianBlur(small.astype(np.float32), (blur, blur), 0))
    h, w = image.shape[:2]
    model, noise = _fit_tray(image, _tray_mask(h, w), noise_floor)
    mask, distance = _outstanding(image, model, noise, min_contrast)
    # Refit on everything that is not foreground: a better model where the border alone misleads.
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))) == 0
    model, noise = _fit_tray(image, grown, noise_floor)
    mask, distance = _outstanding(image, model, noise, min_contrast)
    brightness = float(model.mean())
    return TrayView(_best_blob(mask, distance, noise), noise, brightness)


def _best_blob(mask: npt.NDArray[np.uint8], distance: F32, noise: float) -> Blob | None:
    """The candidate blob with the best size-weighted rectangularity, or None.

    The sizeable fragments are also tried together: a highlight across the phone's glass can cut
    it in two where the lit glass looks like the tray.
    """
    h, w = mask.shape
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [np.asarray(c, dtype=np.int32) for c in found]
    groups = [[c] for c in contours]
    fragments = [c for c in contours if cv2.contourArea(c) >= FRAGMENT * h * w]
    if len(fragments) > 1:
        groups.append(fragments)
    best: tuple[float, Blob] | None = None
    for group in groups:
        blob = _candidate(group, h, w, distance, noise)
        if blob is None:
            continue
        merit = blob.fill * math.sqrt(blob.area_fraction)
        if best is None or merit > best[0]:
            best = (merit, blob)
    return None if best is None else best[1]


def _candidate(contours: list[npt.NDArray[np.int32]], h: int, w: int, distance: F32, noise: float) -> Blob | None:
    """The contours taken together as a Blob when their size and shape could be a phone's, else None."""
    area = float(sum(cv2.contourArea(c) for c in contours))
    points = np.concatenate(contours)
    hull = cv2.convexHull(points)
    hull_area = float(cv2.contourArea(hull))
    fraction = hull_area / (h * w)
    if not MIN_AREA <= fraction <= MAX_AREA:
        return None
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(hull)
    short, long = sorted((rw, rh))
    if short < 4 or not MIN_ASPECT <= long / short <= MAX_ASPECT:
        return None
    filled = np.zeros((h, w), dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    contrast = float(np.median(distance[filled > 0])) / noise
    x, y, bw, bh = cv2.boundingRect(points)
    touches = x <= 0 or y <= 0 or x + bw >= w or y + bh >= h
    rect = ((float(cx), float(cy)), (float(rw), float(rh)), float(angle))
    # Fragments leave gaps inside their hull: judge their shape by the hull, discounted for the gaps.
    coverage = min(1.0, area / max(hull_area, 1.0) / FRAGMENT_COVERAGE)
    fill = (area if len(contours) == 1 else hull_area * coverage) / max(rw * rh, 1.0)
    return Blob(rect, fill, fraction, contrast, touches)
