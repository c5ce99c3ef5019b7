"""Camera settings over OpenCV's CAP_PROP_* properties: set, read back, and say what took.

Every function here runs on the camera's owner thread (hwd/drivers/camera_owner.py): OpenCV
capture objects are not thread-safe. A property the backend does not know makes ``set`` return
False and ``get`` return -1 (V4L2 controls a device lacks, and most properties of a network
stream); that is reported as "not applied", never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2

from hwd.model.camera import AppliedSetting, CameraSettings, setting_text

UNSUPPORTED = -1.0
# V4L2_CID_EXPOSURE_AUTO menu values as OpenCV's V4L2 backend passes them through; older OpenCV
# builds mapped them to 0.25 (manual) and 0.75 (auto), which some drivers still read back.
V4L2_EXPOSURE_MANUAL = 1.0
V4L2_EXPOSURE_AUTO = 3.0
_AUTO_EXPOSURE_READS = {V4L2_EXPOSURE_AUTO: True, 0.75: True, V4L2_EXPOSURE_MANUAL: False, 0.25: False}
FPS_TOLERANCE = 0.5  # drivers round the frame interval; 29.97 for 30 is what was asked
VALUE_TOLERANCE = 0.01


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the driver uses (a test may stand in for it)."""

    def isOpened(self) -> bool: ...  # OpenCV's name

    def read(self) -> tuple[bool, Any]: ...

    def set(self, prop: int, value: float) -> bool: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class _Control:
    """One setting: its property, how a request maps to the value written, and how to read it back."""

    name: str
    label: str
    prop: int
    value: Callable[[Any], float]
    reads: Callable[[float], object]


def _auto_exposure_read(raw: float) -> object:
    return _AUTO_EXPOSURE_READS.get(raw, raw)


_CONTROLS: dict[str, _Control] = {
    c.name: c
    for c in (
        _Control("fps", "frame rate", cv2.CAP_PROP_FPS, float, float),
        _Control("auto_exposure", "automatic exposure", cv2.CAP_PROP_AUTO_EXPOSURE,
                 lambda on: V4L2_EXPOSURE_AUTO if on else V4L2_EXPOSURE_MANUAL, _auto_exposure_read),
        _Control("exposure", "exposure", cv2.CAP_PROP_EXPOSURE, float, float),
        _Control("auto_focus", "autofocus", cv2.CAP_PROP_AUTOFOCUS, float, bool),
        _Control("focus", "focus", cv2.CAP_PROP_FOCUS, float, float),
        _Control("auto_white_balance", "automatic white balance", cv2.CAP_PROP_AUTO_WB, float, bool),
        _Control("white_balance_k", "white balance", cv2.CAP_PROP_WB_TEMPERATURE, float, float),
    )
}  # fmt: skip

# A manual value needs its automatic mode off first (V4L2 ignores or refuses it otherwise).
_MANUAL_NEEDS = {"exposure": "auto_exposure", "focus": "auto_focus", "white_balance_k": "auto_white_balance"}


def _matches(name: str, wanted: object, actual: object) -> bool:
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return wanted is actual
    if not isinstance(wanted, (int, float)) or not isinstance(actual, (int, float)):
        return False
    tolerance = FPS_TOLERANCE if name == "fps" else VALUE_TOLERANCE * max(1.0, abs(float(wanted)))
    return abs(float(wanted) - float(actual)) <= tolerance


def set_control(cap: Capture, name: str, wanted: object) -> AppliedSetting:
    """Writes one setting (not the frame size) and reads it back.

    :param name: a CameraSettings field name other than width and height.
    :param wanted: the value asked for.
    :returns: what became of it: not applied, with the reason, when the device lacks the control or
        reads back something else.
    """
    control = _CONTROLS[name]
    requested = setting_text(wanted)
    took = bool(cap.set(control.prop, control.value(wanted)))
    raw = float(cap.get(control.prop))
    actual = "" if raw == UNSUPPORTED else setting_text(control.reads(raw))
    if not took:
        return AppliedSetting(name, requested, actual, False, f"the device has no {control.label} control")
    if raw == UNSUPPORTED:
        return AppliedSetting(name, requested, "", False, f"the device cannot read back its {control.label}")
    if not _matches(name, wanted, control.reads(raw)):
        return AppliedSetting(name, requested, actual, False, f"the device reads back {actual}")
    return AppliedSetting(name, requested, actual, True)


def apply_controls(cap: Capture, settings: CameraSettings) -> dict[str, AppliedSetting]:
    """Writes every setting asked for except the frame size, automatic modes first.

    :returns: the outcome of each, by name.
    """
    asked = {name: getattr(settings, name) for name in _CONTROLS if getattr(settings, name) is not None}
    for manual, auto in _MANUAL_NEEDS.items():
        if manual in asked and auto not in asked:
            asked[auto] = False
    order = sorted(asked, key=lambda n: n in _MANUAL_NEEDS)  # automatic modes before manual values
    return {name: set_control(cap, name, asked[name]) for name in order}


def set_size(cap: Capture, width: int, height: int) -> bool:
    """Asks for a frame size. :returns: True when the device accepted both properties."""
    took_w = bool(cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width)))
    took_h = bool(cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height)))
    return took_w and took_h


def size_outcome(width: int, height: int, actual: tuple[int, int]) -> tuple[AppliedSetting, AppliedSetting]:
    """:returns: the width and height outcomes of asking for ``width`` x ``height`` when frames are ``actual``."""
    applied = actual == (width, height)
    detail = "" if applied else f"the device has no {width}x{height} mode; frames are {actual[0]}x{actual[1]}"
    return (
        AppliedSetting("width", str(width), str(actual[0]), applied, detail),
        AppliedSetting("height", str(height), str(actual[1]), applied, detail),
    )


def read_back(cap: Capture, size: tuple[int, int]) -> dict[str, AppliedSetting]:
    """Reads every setting the device reports (a control it lacks is left out).

    :param size: the size of the frames it delivers (the truth, whatever the properties say).
    :returns: the settings in force, by name, as not-requested AppliedSettings.
    """
    found = {
        "width": AppliedSetting("width", "", str(size[0]), True),
        "height": AppliedSetting("height", "", str(size[1]), True),
    }
    for name, control in _CONTROLS.items():
        raw = float(cap.get(control.prop))
        if raw != UNSUPPORTED and not (name == "fps" and raw <= 0):
            found[name] = AppliedSetting(name, "", setting_text(control.reads(raw)), True)
    return found


SETTING_ORDER = ("width", "height", *_CONTROLS)


def merged(current: dict[str, AppliedSetting], outcomes: dict[str, AppliedSetting]) -> tuple[AppliedSetting, ...]:
    """:returns: the read-back settings with the outcomes of those just asked for in their place, in
    CameraSettings order."""
    both = {**current, **outcomes}
    return tuple(both[name] for name in SETTING_ORDER if name in both)
