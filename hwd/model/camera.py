"""The inspection camera's value types (mirroring hwd.v1 camera.proto) and their checks, no I/O.

Checks return a ``SettingProblem`` naming the bad field rather than raising, so this layer stays
below hwd.errors; hwd/services/camera.py turns a problem into an InvalidArgument.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

MAX_SIDE = 16384  # larger than any sensor a kiosk carries; a bigger number is a typo
MIN_FPS = 1.0
MAX_FPS = 120.0
MIN_WHITE_BALANCE_K = 1000.0
MAX_WHITE_BALANCE_K = 15000.0
CAPTURE_QUALITY_DEFAULT = 90
PREVIEW_QUALITY_DEFAULT = 70
PREVIEW_FPS_DEFAULT = 15.0
PREVIEW_FPS_MAX = 30.0
PNG_COMPRESSION = 3  # fixed by the contract: quick to encode, still lossless


class ImageFormat(enum.Enum):
    """An image encoding (mirrors hwd.v1.ImageFormat; unspecified maps to JPEG at the edge)."""

    JPEG = "JPEG"
    PNG = "PNG"


@dataclass(frozen=True)
class SettingProblem:
    """Why a request cannot be honoured: ``field`` names it, ``message`` starts with it."""

    field: str
    message: str


@dataclass(frozen=True)
class CameraSettings:
    """Settings to apply before a capture; None keeps what the camera has.

    ``exposure`` is in the device's units (V4L2: 100 us steps) and implies auto exposure off;
    ``focus`` and ``white_balance_k`` likewise imply their automatic mode off.
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    exposure: float | None = None
    focus: float | None = None
    white_balance_k: float | None = None
    auto_exposure: bool | None = None
    auto_focus: bool | None = None
    auto_white_balance: bool | None = None

    def is_empty(self) -> bool:
        """:returns: True when no setting is asked for."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def requested(self) -> dict[str, str]:
        """:returns: each setting asked for, by name, as text (the ``requested`` of AppliedSetting)."""
        return {f.name: setting_text(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}

    def problem(self) -> SettingProblem | None:
        """Checks every field.

        :returns: the first problem, or None when the settings make sense.
        """
        for check in (_size_problem, _fps_problem, _manual_problem):
            found = check(self)
            if found is not None:
                return found
        return None


def setting_text(value: object) -> str:
    """:returns: a setting's value as text: "" for None, "true"/"false", integers without ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _size_problem(s: CameraSettings) -> SettingProblem | None:
    if (s.width is None) != (s.height is None):
        name = "height" if s.height is None else "width"
        return SettingProblem(name, f"{name}: width and height go together")
    for name, value in (("width", s.width), ("height", s.height)):
        if value is not None and not 1 <= value <= MAX_SIDE:
            return SettingProblem(name, f"{name}: {value} is not in 1..{MAX_SIDE}")
    return None


def _fps_problem(s: CameraSettings) -> SettingProblem | None:
    if s.fps is not None and not (math.isfinite(s.fps) and MIN_FPS <= s.fps <= MAX_FPS):
        return SettingProblem("fps", f"fps: {s.fps} is not in {MIN_FPS:g}..{MAX_FPS:g}")
    return None


def _manual_problem(s: CameraSettings) -> SettingProblem | None:
    manual = (
        ("exposure", s.exposure, "auto_exposure", s.auto_exposure, 0.0, math.inf),
        ("focus", s.focus, "auto_focus", s.auto_focus, 0.0, math.inf),
        ("white_balance_k", s.white_balance_k, "auto_white_balance", s.auto_white_balance,
         MIN_WHITE_BALANCE_K, MAX_WHITE_BALANCE_K),
    )  # fmt: skip
    for name, value, auto_name, auto, low, high in manual:
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            span = f"at least {low:g}" if high == math.inf else f"in {low:g}..{high:g}"
            return SettingProblem(name, f"{name}: {value} is not {span}")
        if name == "exposure" and value == 0:
            return SettingProblem(name, f"{name}: must be more than 0")
        if auto:
            return SettingProblem(name, f"{name}: a manual value needs {auto_name} off")
    return None


def quality_problem(quality: int) -> SettingProblem | None:
    """Checks a JPEG quality once 0 has been replaced by its default.

    :returns: a problem naming ``quality`` when it is not in 1..100, else None.
    """
    if not 1 <= quality <= 100:
        return SettingProblem("quality", f"quality: {quality} is not in 1..100 (0 for the default)")
    return None


@dataclass(frozen=True)
class AppliedSetting:
    """What became of one setting: ``applied`` is True when the read-back matches the request.

    ``requested`` is "" when not asked for; ``actual`` is "" when the device cannot read it back;
    ``detail`` says why not applied (e.g. "the device has no focus control").
    """

    name: str
    requested: str
    actual: str
    applied: bool
    detail: str = ""


@dataclass(frozen=True)
class Still:
    """A still image with its provenance.

    ``sha256`` is of ``data`` (lowercase hex); ``captured_ns`` is wall-clock nanoseconds since the
    epoch; ``settings`` are as read back from the device; ``evidence_id`` is "" unless kept as evidence.
    """

    data: bytes
    format: ImageFormat
    width: int
    height: int
    sha256: str
    captured_ns: int
    settings: tuple[AppliedSetting, ...]
    evidence_id: str = ""


@dataclass(frozen=True)
class PreviewFrame:
    """One preview frame: ``sequence`` is the capture loop's frame counter (gaps are skipped frames)."""

    jpeg: bytes
    width: int
    height: int
    sequence: int
    captured_ns: int


@dataclass(frozen=True)
class CameraInfo:
    """The camera's source (device path or stream URL), current size, settings in force, and the
    number of stills kept as evidence now."""

    source: str
    width: int
    height: int
    settings: tuple[AppliedSetting, ...]
    evidence_count: int


@dataclass(frozen=True)
class EvidenceRecord:
    """A still kept as evidence of a phone's session, as the journal holds it.

    ``file`` is the image's file name in the evidence directory; ``sha256`` is of its bytes.
    """

    evidence_id: str
    session_id: str
    port: str
    format: ImageFormat
    file: str
    sha256: str
    width: int
    height: int
    captured_ns: int


@dataclass(frozen=True)
class Frame:
    """One frame of the capture loop: ``pixels`` is the driver's own image (opaque to services)."""

    sequence: int
    captured_ns: int
    width: int
    height: int
    pixels: object


@dataclass(frozen=True)
class CameraLink:
    """Whether the camera delivers frames; ``reason`` is a stable code ("OK", "CAMERA_LOST" ...)."""

    online: bool
    reason: str
    detail: str
    version: int = 0
