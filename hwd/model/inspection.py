"""Inspection signals computed on one camera still (mirroring hwd.v1.InspectionSignals): pure values, no I/O.

They are signals for the grader, not a grade: each carries a confidence from 0 (a guess) to 1 (sure).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    """One signal: a yes/no ``value`` (bool) or a measured number (float), and ``confidence`` in 0..1."""

    value: bool | float
    confidence: float


@dataclass(frozen=True)
class InspectionSignals:
    """What classical computer vision saw on one still.

    ``outline`` holds the corners of the phone's minimum-area rectangle in image pixels (x, y),
    clockwise as seen on the image, empty without a phone. ``orientation_deg`` is the rotation of
    the phone's long axis from vertical in degrees, in (-90, 90], positive clockwise as seen on the
    image. ``length_px``/``width_px`` are the long and short sides in pixels of the input image;
    ``length_mm``/``width_mm`` the same in millimetres, None without a calibration. ``screen_on`` is
    True when the screen is lit; ``crack_score`` runs from 0 (no crack seen) to 1 (heavily cracked).
    Every signal but ``phone_present`` is None when no phone was found.
    """

    phone_present: Signal
    outline: tuple[tuple[float, float], ...] = ()
    orientation_deg: Signal | None = None
    length_px: Signal | None = None
    width_px: Signal | None = None
    length_mm: Signal | None = None
    width_mm: Signal | None = None
    screen_on: Signal | None = None
    crack_score: Signal | None = None

    @classmethod
    def absent(cls, confidence: float) -> InspectionSignals:
        """:returns: the signals of a still without a phone, ``confidence`` being how sure that is."""
        return cls(phone_present=Signal(False, confidence))
