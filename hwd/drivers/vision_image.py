"""Turning whatever array a caller hands over into an 8-bit BGR image, or None when it cannot be one.

Part of hwd.drivers.vision; total: nothing here raises on a strange array.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

MIN_SIDE = 16  # below this nothing can be seen
MAX_SIDE = 16384  # larger than any sensor a kiosk carries
MAX_PIXELS = 50_000_000

U8Image = npt.NDArray[np.uint8]


def as_bgr8(image: object) -> U8Image | None:
    """An 8-bit, 3-channel, C-contiguous copy (or view) of ``image``.

    Accepts H x W (grey), H x W x 1, x 3 (BGR) and x 4 (BGRA) arrays of bool, integer or floating
    dtypes: integers wider than 8 bits are scaled from their full range, floats from 0..1 when they
    stay within it (else clipped to 0..255), NaN reads as 0.

    :param image: anything.
    :returns: the image, or None when it has no usable shape, dtype or size.
    """
    if not isinstance(image, np.ndarray) or not _usable_shape(image.shape):
        return None
    u8 = _to_uint8(image)
    if u8 is None:
        return None
    h, w = image.shape[:2]
    if u8.ndim == 2 or u8.shape[2] == 1:
        return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(u8.reshape(h, w)), cv2.COLOR_GRAY2BGR))
    if u8.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(u8), cv2.COLOR_BGRA2BGR))
    return np.ascontiguousarray(u8)


def _usable_shape(shape: tuple[int, ...]) -> bool:
    """True for H x W, H x W x 1, x 3 and x 4 of a size an image can have."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3, 4)):
        return False
    h, w = shape[:2]
    return MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE and h * w <= MAX_PIXELS


def _to_uint8(image: npt.NDArray[Any]) -> U8Image | None:
    """Scales the values of ``image`` to 0..255 by its dtype (see as_bgr8); None for other dtypes."""
    kind = image.dtype.kind
    if image.dtype == np.uint8:
        return np.asarray(image, dtype=np.uint8)
    if kind == "b":
        return image.astype(np.uint8) * np.uint8(255)
    if kind in "iu":
        info = np.iinfo(image.dtype)
        if info.max <= 255:
            return np.asarray(np.clip(image, 0, 255), dtype=np.uint8)
        scaled = np.clip(image.astype(np.float64), 0, None) * (255.0 / info.max)
        return np.rint(scaled).astype(np.uint8)
    if kind == "f":
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        top = float(values.max())
        if top <= 1.0:
            values = values * 255.0
        return np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)
    return None


def shrink(image: U8Image, long_side: int) -> tuple[U8Image, tuple[float, float]]:
    """``image`` scaled down (area interpolation) so that its longer side is at most ``long_side``.

    :returns: the smaller image and the factors (x, y) from its pixels to the input's (1.0 when unscaled).
    """
    h, w = image.shape[:2]
    factor = max(h, w) / long_side
    if factor <= 1.0:
        return image, (1.0, 1.0)
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8), (w / size[0], h / size[1])
