"""The inspection chamber renderer: sizes, determinism, and that each scene element shows where it should."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import numpy.typing as npt
import pytest

from simulators.camera import scene as s
from simulators.camera.phone import crack_paths

SMALL = (640, 360)  # a third of the native size: the same view, quicker to draw
LOOKS = s.load_looks()
PIXEL = LOOKS["pixel-7"]
Frame = npt.NDArray[np.uint8]


def changed(a: Frame, b: Frame, threshold: int = 12) -> npt.NDArray[np.bool_]:
    """Pixels where two frames differ visibly."""
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return np.asarray(difference > threshold, np.bool_)


def box(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the true pixels of ``mask``."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def to_px(x_mm: float, y_mm: float, size: tuple[int, int] = SMALL) -> tuple[float, float]:
    """Output pixel of a tray point given in mm from the tray centre."""
    scale = size[0] / s.NATIVE_SIZE[0]
    return (s.TRAY_WIDTH_MM / 2 + x_mm) / s.MM_PER_PX * scale, (s.TRAY_HEIGHT_MM / 2 + y_mm) / s.MM_PER_PX * scale


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (640, 480)])
def test_frames_have_the_asked_size(size: tuple[int, int]) -> None:
    frame = s.render(s.Scene(phone=PIXEL, screen_on=True, noise=2.0), *size)
    assert frame.shape == (size[1], size[0], 3)
    assert frame.dtype == np.uint8


def test_default_size_is_native_full_hd() -> None:
    assert s.render(s.Scene()).shape == (1080, 1920, 3)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (s.MAX_SIDE + 1, 10)])
def test_impossible_sizes_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="whole numbers"):
        s.render(s.Scene(), *size)


def test_same_scene_same_pixels_and_the_seed_matters() -> None:
    scene = s.Scene(phone=PIXEL, angle_deg=12, cracked=True, screen_on=True, glare=0.6, noise=3.0, seed=7)
    first = s.render(scene, *SMALL)
    assert np.array_equal(first, s.render(scene, *SMALL))
    assert not np.array_equal(first, s.render(dataclasses.replace(scene, seed=8), *SMALL))


def test_noise_variants_differ_only_by_noise() -> None:
    scene = s.Scene(phone=PIXEL, noise=4.0, seed=3)
    variants = s.render_variants(scene, *SMALL, count=3)
    assert np.array_equal(variants[0], s.render(scene, *SMALL))
    difference = variants[1].astype(np.float32) - variants[2].astype(np.float32)
    assert not np.array_equal(variants[1], variants[2])
    assert 4.0 < difference.std() < 8.0  # two independent noises of std 4: sqrt(2) * 4
    assert len(s.render_variants(dataclasses.replace(scene, noise=0.0), *SMALL, count=3)) == 1


@pytest.mark.parametrize(("name", "x_mm", "y_mm"), [("pixel-7", 80.0, -10.0), ("iphone-se-2", -90.0, 20.0)])
def test_the_phone_is_where_the_scene_puts_it(name: str, x_mm: float, y_mm: float) -> None:
    look = LOOKS[name]
    empty = s.render(s.Scene(), *SMALL)
    placed = s.render(s.Scene(phone=look, x_mm=x_mm, y_mm=y_mm), *SMALL)
    x0, y0, x1, y1 = box(changed(empty, placed))
    px_per_mm = SMALL[0] / s.NATIVE_SIZE[0] / s.MM_PER_PX
    left, top = to_px(x_mm - look.width_mm / 2, y_mm - look.length_mm / 2)
    right, bottom = to_px(x_mm + look.width_mm / 2, y_mm + look.length_mm / 2)
    assert abs(x0 - left) < 2
    assert abs(y0 - top) < 2
    # The soft shadow falls to the lower right, a few millimetres beyond the phone.
    assert right - 2 < x1 < right + 8 * px_per_mm
    assert bottom - 2 < y1 < bottom + 8 * px_per_mm


def test_a_turned_phone_lies_across() -> None:
    empty = s.render(s.Scene(), *SMALL)
    x0, y0, x1, y1 = box(changed(empty, s.render(s.Scene(phone=PIXEL, angle_deg=90), *SMALL)))
    assert (x1 - x0) > 2 * (y1 - y0)


def screen_box(size: tuple[int, int] = SMALL) -> tuple[slice, slice]:
    """Rows and columns well inside the screen of an upright pixel-7 at the tray centre."""
    (x0, y0), (x1, y1) = to_px(-25, -60, size), to_px(25, 60, size)
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def test_a_lit_screen_is_brighter_than_a_dark_one() -> None:
    rows, cols = screen_box()
    off = s.render(s.Scene(phone=PIXEL), *SMALL)[rows, cols]
    on = s.render(s.Scene(phone=PIXEL, screen_on=True), *SMALL)[rows, cols]
    assert off.mean() < 30
    assert on.mean() > off.mean() + 60
    assert on.std() > 20  # a picture, not a flat glow


def test_lights_off_is_much_darker_and_noisier_but_a_lit_screen_still_shows() -> None:
    lit = s.render(s.Scene(), *SMALL)
    dark = s.render(s.Scene(lights_on=False), *SMALL)
    assert dark.mean() < lit.mean() / 5
    flat = (slice(100, 200), slice(250, 400))
    assert np.diff(dark[flat].astype(np.float32), axis=1).std() > np.diff(lit[flat].astype(np.float32), axis=1).std()
    rows, cols = screen_box()
    screen = s.render(s.Scene(phone=PIXEL, screen_on=True, lights_on=False), *SMALL)[rows, cols]
    assert screen.mean() > 80


@pytest.mark.parametrize("screen_on", [False, True])
def test_cracks_change_the_screen_and_nothing_else(screen_on: bool) -> None:
    size = (1280, 720)
    whole = s.render(s.Scene(phone=PIXEL, screen_on=screen_on, seed=4), *size)
    cracked = s.render(s.Scene(phone=PIXEL, screen_on=screen_on, cracked=True, seed=4), *size)
    diff = changed(whole, cracked, threshold=30)
    assert diff.sum() > 2000
    x0, y0, x1, y1 = box(diff)
    left, top = to_px(-PIXEL.width_mm / 2 + PIXEL.bezel_mm, -PIXEL.length_mm / 2 + PIXEL.bezel_mm, size)
    right, bottom = to_px(PIXEL.width_mm / 2 - PIXEL.bezel_mm, PIXEL.length_mm / 2 - PIXEL.bezel_mm, size)
    assert left - 2 <= x0 < x1 <= right + 2
    assert top - 2 <= y0 < y1 <= bottom + 2


def test_cracks_branch_from_one_impact_point() -> None:
    paths = crack_paths(9, 60.0, 140.0)
    starts = [path[0] for path in paths]
    impact = max(set(starts), key=starts.count)
    assert starts.count(impact) >= 5  # the rays
    assert len(paths) > starts.count(impact)  # and their branches and the web around the impact
    assert all(0 <= x <= 60 and 0 <= y <= 140 for path in paths for x, y in path[:1])
    assert paths == crack_paths(9, 60.0, 140.0)


def test_glare_brightens_a_soft_patch() -> None:
    plain = s.render(s.Scene(phone=PIXEL, seed=2), *SMALL)
    glare = s.render(s.Scene(phone=PIXEL, glare=0.8, seed=2), *SMALL)
    lift = glare.astype(np.int16) - plain.astype(np.int16)
    assert lift.min() >= 0
    assert lift.max() > 120
    assert 0.01 < (lift.max(axis=2) > 20).mean() < 0.5


def test_looks_cover_the_profiles_with_real_sizes_and_both_dark_and_light_bodies() -> None:
    for name in ("pixel-7", "pixel-4a", "galaxy-s21", "iphone-8", "iphone-13", "iphone-se-2", "iphone-12-mini"):
        assert LOOKS[name].name == name
    assert (PIXEL.length_mm, PIXEL.width_mm) == (155.6, 73.2)
    brightness = [sum(look.body_bgr) / 3 for look in LOOKS.values()]
    assert min(brightness) < 60
    assert max(brightness) > 200
    assert all(look.width_mm < look.length_mm for look in LOOKS.values())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[x]\nlength_mm = 1", "'x' is malformed"),
        ('[x]\nlength_mm = 100\nwidth_mm = 50\ncolour = "red"\ncorner_mm = 1\nbezel_mm = 1', "'x' is malformed"),
        ('[x]\nlength_mm = 10\nwidth_mm = 50\ncolour = "#000000"\ncorner_mm = 1\nbezel_mm = 1', "impossible"),
        ("x = 1", "must be a table"),
        ("[x", "not valid TOML"),
    ],
)
def test_malformed_looks_are_refused_by_name(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        s.parse_looks(text)


def test_random_scenes_keep_the_phone_in_view_and_follow_the_probabilities() -> None:
    rng = random.Random(5)
    looks = list(LOOKS.values())
    scenes = [s.random_scene(rng, looks, phone_probability=1.0, crack_probability=0.0) for _ in range(60)]
    for scene in scenes:
        assert scene.phone is not None
        assert (scene.cracked, scene.lights_on) == (False, True)
        half_x, half_y = s._half_extent(scene.phone, scene.angle_deg)
        assert abs(scene.x_mm) + half_x <= s.TRAY_WIDTH_MM / 2
        assert abs(scene.y_mm) + half_y <= s.TRAY_HEIGHT_MM / 2
    assert all(s.random_scene(rng, looks, phone_probability=0.0).phone is None for _ in range(20))
    assert s.random_scene(random.Random(1), looks) == s.random_scene(random.Random(1), looks)


def test_a_random_phone_is_wholly_in_the_frame() -> None:
    rng = random.Random(11)
    empty = s.render(s.Scene(), *SMALL)
    for _ in range(3):
        scene = dataclasses.replace(
            s.random_scene(rng, list(LOOKS.values()), phone_probability=1.0), noise=0.0, glare=0.0
        )
        x0, y0, x1, y1 = box(changed(empty, s.render(scene, *SMALL)))
        assert 0 < x0 < x1 < SMALL[0] - 1
        assert 0 < y0 < y1 < SMALL[1] - 1
