"""The inspection signals computed on stills of the simulated chamber (hwd.drivers.vision)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hwd.drivers.vision import inspect
from hwd.model.inspection import InspectionSignals, Signal
from simulators.camera.scene import (
    MM_PER_PX,
    TRAY_HEIGHT_MM,
    TRAY_WIDTH_MM,
    PhoneLook,
    Scene,
    load_looks,
    random_scene,
    render,
)

LOOKS = load_looks()
SIZE_TOLERANCE_MM = 1.5
ANGLE_TOLERANCE_DEG = 1.0
CORNER_TOLERANCE_PX = 10.0  # 2 mm at the native scale


def _look(name: str) -> PhoneLook:
    return LOOKS[name]


def true_corners(scene: Scene, width: int = 1920, height: int = 1080) -> np.ndarray:
    """The phone's outer rectangle in pixels of a frame of ``width`` x ``height``, as the renderer places it."""
    assert scene.phone is not None
    kx, ky = width / TRAY_WIDTH_MM, height / TRAY_HEIGHT_MM
    turn = math.radians(scene.angle_deg)
    rotate = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [scene.phone.width_mm / 2, scene.phone.length_mm / 2]
    mm = half @ rotate.T + [TRAY_WIDTH_MM / 2 + scene.x_mm, TRAY_HEIGHT_MM / 2 + scene.y_mm]
    return np.asarray(mm * [kx, ky])


def angle_error(measured: float, truth: float) -> float:
    """Difference of two axis angles in degrees, modulo 180 (an axis has no head)."""
    diff = (measured - truth) % 180.0
    return min(diff, 180.0 - diff)


def assert_in_contract(signals: InspectionSignals) -> None:
    """Every confidence in 0..1, the angle in (-90, 90], the optional signals None without a phone."""
    present = signals.phone_present
    assert isinstance(present.value, bool)
    optional = (
        signals.orientation_deg,
        signals.length_px,
        signals.width_px,
        signals.length_mm,
        signals.width_mm,
        signals.screen_on,
        signals.crack_score,
    )
    for signal in (present, *optional):
        if signal is not None:
            assert 0.0 <= signal.confidence <= 1.0
    if not present.value:
        assert signals.outline == ()
        assert all(s is None for s in optional)
        return
    assert signals.orientation_deg is not None
    assert -90.0 < float(signals.orientation_deg.value) <= 90.0
    assert signals.crack_score is not None
    assert 0.0 <= float(signals.crack_score.value) <= 1.0


def measured(signal: Signal | None) -> float:
    assert signal is not None
    return float(signal.value)


@pytest.mark.parametrize(
    "scene",
    [
        Scene(),
        Scene(noise=4.0, seed=1),
        Scene(glare=0.7, seed=2),
        Scene(glare=1.0, noise=3.0, seed=3),
        Scene(lights_on=False, seed=4),
        Scene(noise=12.0, seed=5),
    ],
    ids=["plain", "noise", "glare", "full-glare", "lights-off", "heavy-noise"],
)
def test_an_empty_tray_has_no_phone(scene: Scene) -> None:
    signals = inspect(render(scene), MM_PER_PX)

    assert signals.phone_present.value is False
    assert_in_contract(signals)


def test_an_empty_lit_tray_is_confidently_empty() -> None:
    assert inspect(render(Scene(noise=2.0, seed=8))).phone_present.confidence >= 0.8


@pytest.mark.parametrize(
    ("name", "angle", "extra"),
    [
        ("pixel-7", 0.0, {}),
        ("iphone-se-2", 17.0, {"screen_on": True}),
        ("galaxy-s21", -38.0, {"glare": 0.6, "seed": 4}),
        ("iphone-8", 90.0, {"glare": 1.0, "seed": 4}),
        ("moto-g", 72.0, {"noise": 6.0, "seed": 5}),
        ("galaxy-s9", -61.0, {"screen_on": True, "cracked": True, "x_mm": -80.0, "y_mm": 30.0}),
        ("iphone-12-mini", 105.0, {"x_mm": 120.0, "y_mm": -40.0, "noise": 3.0, "seed": 6}),
        ("redmi-note-10", 45.0, {"cracked": True, "seed": 7}),
        ("iphone-15", 0.8, {"x_mm": 148.0, "y_mm": -9.6, "cracked": True, "noise": 3.0, "seed": 8}),
        ("iphone-se-2", -3.8, {"x_mm": 117.0, "y_mm": 32.0, "cracked": True, "noise": 1.0, "seed": 9}),
        ("pixel-7", 103.8, {"x_mm": -100.0, "y_mm": 28.7, "screen_on": True, "noise": 2.8, "seed": 10}),
    ],
)
def test_the_phone_is_found_and_measured(name: str, angle: float, extra: dict[str, object]) -> None:
    scene = Scene(phone=_look(name), angle_deg=angle, **extra)  # type: ignore[arg-type]
    assert scene.phone is not None

    signals = inspect(render(scene), MM_PER_PX)

    assert signals.phone_present.value is True
    assert signals.phone_present.confidence >= 0.8
    assert_in_contract(signals)
    assert abs(measured(signals.length_mm) - scene.phone.length_mm) <= SIZE_TOLERANCE_MM
    assert abs(measured(signals.width_mm) - scene.phone.width_mm) <= SIZE_TOLERANCE_MM
    assert abs(measured(signals.length_px) * MM_PER_PX - scene.phone.length_mm) <= SIZE_TOLERANCE_MM
    assert angle_error(measured(signals.orientation_deg), angle) <= ANGLE_TOLERANCE_DEG


def test_the_outline_is_the_phones_rectangle_clockwise() -> None:
    scene = Scene(phone=_look("pixel-4a"), angle_deg=28.0, x_mm=40.0, y_mm=-25.0, screen_on=True, seed=9)

    outline = np.array(inspect(render(scene), MM_PER_PX).outline)

    assert outline.shape == (4, 2)
    truth = true_corners(scene)
    for corner in truth:
        assert np.min(np.hypot(*(outline - corner).T)) <= CORNER_TOLERANCE_PX
    # Shoelace area with y pointing down: positive means clockwise as seen on the image.
    x, y = outline[:, 0], outline[:, 1]
    assert float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) > 0


@pytest.mark.parametrize("angle", [-89.0, -45.0, -5.0, 0.0, 5.0, 45.0, 89.0, 90.0, 135.0])
def test_orientation_follows_the_clockwise_turn_within_minus_90_to_90(angle: float) -> None:
    scene = Scene(phone=_look("iphone-13"), angle_deg=angle, seed=10)

    orientation = measured(inspect(render(scene)).orientation_deg)

    assert -90.0 < orientation <= 90.0
    assert angle_error(orientation, angle) <= ANGLE_TOLERANCE_DEG


def test_sizes_in_millimetres_need_a_calibration() -> None:
    image = render(Scene(phone=_look("pixel-7"), angle_deg=10.0))

    for scale in (None, 0.0, -0.2, math.nan, math.inf):
        signals = inspect(image, scale)
        assert signals.phone_present.value is True
        assert signals.length_mm is None
        assert signals.width_mm is None
        assert signals.length_px is not None


def test_pixels_are_reported_at_the_inputs_scale() -> None:
    scene = Scene(phone=_look("galaxy-a52"), angle_deg=-20.0, seed=11)

    full = inspect(render(scene), MM_PER_PX)
    half = inspect(render(scene, 960, 540), MM_PER_PX * 2)

    assert measured(half.length_px) == pytest.approx(measured(full.length_px) / 2, abs=3.0)
    assert measured(half.length_mm) == pytest.approx(measured(full.length_mm), abs=SIZE_TOLERANCE_MM)


def test_grey_and_bgra_stills_are_inspected_too() -> None:
    bgr = render(Scene(phone=_look("iphone-11"), angle_deg=3.0, screen_on=False))
    grey = bgr.mean(axis=2).astype(np.uint8)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])

    assert inspect(grey).phone_present.value is True
    assert inspect(bgra).phone_present.value is True


@pytest.mark.parametrize("lights_on", [True, False])
@pytest.mark.parametrize("name", ["pixel-7", "iphone-se-2", "galaxy-s9"])
def test_screen_on_and_off_are_told_apart(name: str, lights_on: bool) -> None:
    for on in (False, True):
        scene = Scene(phone=_look(name), angle_deg=-15.0, screen_on=on, lights_on=lights_on, glare=0.0, seed=12)

        signals = inspect(render(scene), MM_PER_PX)

        assert signals.phone_present.value is True
        assert signals.screen_on is not None
        assert signals.screen_on.value is on


def test_in_the_dark_the_size_is_less_sure() -> None:
    lit = Scene(phone=_look("pixel-7"), angle_deg=30.0, screen_on=True, seed=3)

    bright = inspect(render(lit), MM_PER_PX)
    dark = inspect(render(replace(lit, lights_on=False)), MM_PER_PX)

    assert dark.length_mm is not None
    assert bright.length_mm is not None
    assert dark.length_mm.confidence < bright.length_mm.confidence


def test_cracked_screens_score_higher_than_intact_ones() -> None:
    rng = random.Random(2026)
    looks = list(LOOKS.values())
    cracked: list[float] = []
    intact: list[float] = []
    for _ in range(12):
        scene = random_scene(rng, looks, phone_probability=1.0)
        for is_cracked, scores in ((True, cracked), (False, intact)):
            signals = inspect(render(replace(scene, cracked=is_cracked)), MM_PER_PX)
            scores.append(measured(signals.crack_score))
    # The same scene cracked always scores above itself intact, and the two sets barely overlap.
    assert all(c > i for c, i in zip(cracked, intact, strict=True))
    assert min(cracked) > float(np.median(intact))
    assert float(np.median(cracked)) >= 0.5 > float(np.median(intact))


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1080, 1920, 3), np.uint8),
        np.full((1080, 1920, 3), 255, np.uint8),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((100, 100, 7), np.uint8),
        np.zeros((2, 100, 100, 3), np.uint8),
        np.array(3.0),
        np.zeros((100, 100), np.complex64),
    ],
    ids=["black", "white", "empty", "tiny", "seven-channels", "4d", "scalar", "complex"],
)
def test_an_unusable_image_gives_no_phone_with_low_confidence(image: np.ndarray) -> None:
    signals = inspect(image, MM_PER_PX)

    assert signals.phone_present.value is False
    assert signals.phone_present.confidence <= 0.3
    assert_in_contract(signals)


def test_something_that_is_not_an_array_gives_no_phone() -> None:
    signals = inspect("not an image", MM_PER_PX)  # type: ignore[arg-type]

    assert signals == InspectionSignals.absent(signals.phone_present.confidence)
    assert signals.phone_present.confidence <= 0.3


_DTYPES = st.sampled_from(
    [np.bool_, np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        dtype=_DTYPES,
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=48),
        elements=None,
    )
)
def test_any_array_gives_signals_and_never_raises(image: np.ndarray) -> None:
    assert_in_contract(inspect(image, MM_PER_PX))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(16, 400),
    st.integers(16, 400),
    st.sampled_from([1, 3, 4]),
    st.integers(0, 2**32 - 1),
)
def test_random_noise_images_never_raise(height: int, width: int, channels: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)

    assert_in_contract(inspect(image, MM_PER_PX))
