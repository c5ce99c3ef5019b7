"""The camera's model <-> protobuf converters: round trips over the wire, presence kept, bad input named."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwd.errors import InvalidArgument
from hwd.model import AppliedSetting, CameraSettings, ImageFormat, InspectionSignals, PreviewFrame, Signal, Still
from hwd.rpc.camera import (
    format_from_pb,
    image_from_pb,
    image_to_pb,
    preview_from_pb,
    preview_to_pb,
    settings_from_pb,
    settings_to_pb,
    signal_to_pb,
    signals_from_pb,
    signals_to_pb,
)
from hwd.rpc.pb.hwd.v1 import camera_pb2

T0 = 1_767_000_000_123_456_789

_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
_confidence = st.floats(min_value=0, max_value=1)
_signal = st.builds(Signal, st.one_of(st.booleans(), _floats), _confidence)
_settings = st.builds(
    CameraSettings,
    width=st.none() | st.integers(0, 2**32 - 1),
    height=st.none() | st.integers(0, 2**32 - 1),
    fps=st.none() | _floats,
    exposure=st.none() | _floats,
    focus=st.none() | _floats,
    white_balance_k=st.none() | _floats,
    auto_exposure=st.none() | st.booleans(),
    auto_focus=st.none() | st.booleans(),
    auto_white_balance=st.none() | st.booleans(),
)
_applied = st.builds(AppliedSetting, st.text(), st.text(), st.text(), st.booleans(), st.text())


def _wire(msg: camera_pb2.CameraSettings) -> camera_pb2.CameraSettings:
    """``msg`` after a trip through its serialized form, as the daemon receives it."""
    return type(msg).FromString(msg.SerializeToString())


@given(_settings)
def test_settings_round_trip_over_the_wire(settings: CameraSettings) -> None:
    assert settings_from_pb(_wire(settings_to_pb(settings))) == settings


def test_a_field_left_out_is_none_and_a_zero_or_false_is_kept() -> None:
    msg = camera_pb2.CameraSettings(exposure=0.0, auto_focus=False)

    settings = settings_from_pb(_wire(msg))

    assert settings == CameraSettings(exposure=0.0, auto_focus=False)
    assert settings.width is None
    assert settings.auto_exposure is None


def test_no_settings_is_empty() -> None:
    assert settings_from_pb(camera_pb2.CameraSettings()).is_empty()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (camera_pb2.IMAGE_FORMAT_UNSPECIFIED, ImageFormat.JPEG),
        (camera_pb2.IMAGE_FORMAT_JPEG, ImageFormat.JPEG),
        (camera_pb2.IMAGE_FORMAT_PNG, ImageFormat.PNG),
    ],
)
def test_format_unspecified_means_jpeg(value: int, expected: ImageFormat) -> None:
    assert format_from_pb(value) is expected


def test_an_unknown_format_is_an_invalid_argument_naming_format() -> None:
    with pytest.raises(InvalidArgument) as bad:
        format_from_pb(7)

    assert bad.value.message.startswith("format:")
    assert bad.value.metadata == {"field": "format"}


@given(st.binary(max_size=64), st.sampled_from(ImageFormat), st.lists(_applied, max_size=4), st.text())
def test_still_round_trips_with_its_settings_time_and_evidence(
    data: bytes, fmt: ImageFormat, settings: list[AppliedSetting], evidence: str
) -> None:
    still = Still(data, fmt, 1920, 1080, hashlib.sha256(data).hexdigest(), T0, tuple(settings), evidence)

    msg = camera_pb2.Image.FromString(image_to_pb(still).SerializeToString())

    assert image_from_pb(msg) == still
    assert msg.captured.ToNanoseconds() == T0


def test_a_not_applied_setting_keeps_its_reason() -> None:
    setting = AppliedSetting("focus", "120", "", False, "the device has no focus control")
    still = Still(b"x", ImageFormat.JPEG, 640, 480, "00", T0, (setting,))

    image = image_to_pb(still)

    shown = image.settings[0]
    assert (shown.name, shown.requested, shown.actual, shown.applied) == ("focus", "120", "", False)
    assert shown.detail == "the device has no focus control"
    assert image.format == camera_pb2.IMAGE_FORMAT_JPEG


@given(st.binary(max_size=64), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_preview_frame_round_trips(jpeg: bytes, width: int, height: int, sequence: int) -> None:
    frame = PreviewFrame(jpeg, width, height, sequence, T0)

    assert preview_from_pb(camera_pb2.PreviewFrame.FromString(preview_to_pb(frame).SerializeToString())) == frame


@pytest.mark.parametrize(
    ("signal", "member"),
    [
        (Signal(True, 0.9), "flag"),
        (Signal(False, 0.5), "flag"),
        (Signal(0.0, 1.0), "number"),
        (Signal(3.5, 0.2), "number"),
    ],
)
def test_a_signal_lands_in_the_oneof_member_of_its_kind(signal: Signal, member: str) -> None:
    msg = camera_pb2.Signal.FromString(signal_to_pb(signal).SerializeToString())

    assert msg.WhichOneof("value") == member
    assert getattr(msg, member) == signal.value
    assert msg.confidence == signal.confidence


_signals = st.builds(
    InspectionSignals,
    phone_present=st.builds(Signal, st.booleans(), _confidence),
    outline=st.lists(st.tuples(_floats, _floats), max_size=4).map(tuple),
    orientation_deg=st.none() | _signal,
    length_px=st.none() | _signal,
    width_px=st.none() | _signal,
    length_mm=st.none() | _signal,
    width_mm=st.none() | _signal,
    screen_on=st.none() | _signal,
    crack_score=st.none() | _signal,
)


@given(_signals)
def test_signals_round_trip_with_absent_ones_absent(signals: InspectionSignals) -> None:
    msg = camera_pb2.InspectionSignals.FromString(signals_to_pb(signals).SerializeToString())

    assert signals_from_pb(msg) == signals


def test_signals_without_a_phone_carry_only_presence() -> None:
    msg = signals_to_pb(InspectionSignals.absent(0.97))

    assert [field.name for field, _ in msg.ListFields()] == ["phone_present"]
    assert (msg.phone_present.flag, msg.phone_present.confidence) == (False, 0.97)
    assert msg.phone_present.WhichOneof("value") == "flag"


def test_a_measured_phone_keeps_its_outline_in_order_and_bool_screen() -> None:
    corners = ((100.0, 50.0), (400.0, 60.0), (390.0, 700.0), (90.0, 690.0))
    signals = InspectionSignals(
        Signal(True, 0.99), corners, orientation_deg=Signal(-1.5, 0.9), length_px=Signal(640.0, 0.9),
        width_px=Signal(300.0, 0.9), screen_on=Signal(True, 0.8), crack_score=Signal(0.05, 0.7),
    )  # fmt: skip

    msg = signals_to_pb(signals)

    assert [(p.x, p.y) for p in msg.outline] == list(corners)
    assert msg.screen_on.WhichOneof("value") == "flag"
    assert msg.crack_score.number == 0.05
    assert not msg.HasField("length_mm")
