"""The inspection chamber as the kiosk's camera sees it: a lit grey tray, maybe with a phone on it.

``render`` turns a :class:`Scene` into a BGR frame, deterministically for a given ``seed``. The
view is fixed: at the native 1920x1080 one pixel is :data:`MM_PER_PX` millimetres of tray, and
other output sizes show the same view scaled (stretched when the aspect ratio differs, as a
camera's scaler does). Image coordinates: ``x_mm`` grows to the right, ``y_mm`` downwards, and
``angle_deg`` turns the phone clockwise on the image.
"""

from __future__ import annotations

import functools
import math
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.phone import draw_phone

Frame = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

#: Millimetres of tray per pixel at the native size.
MM_PER_PX = 0.2
NATIVE_SIZE = (1920, 1080)
TRAY_WIDTH_MM = NATIVE_SIZE[0] * MM_PER_PX
TRAY_HEIGHT_MM = NATIVE_SIZE[1] * MM_PER_PX
#: Largest output side ``render`` accepts.
MAX_SIDE = 8192

_TRAY_BGR = (118.0, 121.0, 124.0)
_LIGHTS_OFF_GAIN = 0.08
#: Extra sensor noise (grey levels) in the dark: the camera's gain goes up.
_LIGHTS_OFF_NOISE = 6.0
_SHADOW_STRENGTH = 0.35
_SHADOW_OFFSET_MM = (1.5, 2.5)


@dataclass(frozen=True)
class PhoneLook:
    """A phone as the camera sees it, face up."""

    name: str  # profile name, e.g. "pixel-7"
    length_mm: float  # long side
    width_mm: float  # short side
    body_bgr: tuple[int, int, int]
    corner_mm: float  # corner radius
    bezel_mm: float  # how far the screen starts inside the outer edge


@dataclass(frozen=True)
class Scene:
    """What is in the chamber at one instant."""

    phone: PhoneLook | None = None
    x_mm: float = 0.0  # phone centre offset from the tray centre, to the right
    y_mm: float = 0.0  # ... and downwards
    angle_deg: float = 0.0  # clockwise turn of the long axis from vertical
    screen_on: bool = False
    cracked: bool = False
    lights_on: bool = True
    glare: float = 0.0  # 0..1 strength of a specular highlight
    noise: float = 0.0  # sensor noise standard deviation, grey levels
    seed: int = 0  # fixes cracks, screen picture, glare position and noise


def render(scene: Scene, width: int = NATIVE_SIZE[0], height: int = NATIVE_SIZE[1]) -> Frame:
    """Draw ``scene`` as a ``height`` x ``width`` BGR frame.

    :returns: a new uint8 array of shape (height, width, 3).
    :raises ValueError: a side is not a whole number from 1 to :data:`MAX_SIDE`.
    """
    return render_variants(scene, width, height, 1)[0]


def render_variants(
    scene: Scene, width: int = NATIVE_SIZE[0], height: int = NATIVE_SIZE[1], count: int = 1
) -> list[Frame]:
    """Draw ``scene`` ``count`` times, each with its own sensor noise (the rest is drawn once).

    A live camera's frames of a still scene differ only by noise; a stream cycles these. The first
    variant is exactly :func:`render`'s frame; a scene without noise gives one frame, whatever ``count``.

    :raises ValueError: a side is not a whole number from 1 to :data:`MAX_SIDE`, or ``count`` < 1.
    """
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_SIDE:
            raise ValueError(f"frame sides must be whole numbers from 1 to {MAX_SIDE}, not {width}x{height}")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    clean = _compose(scene, width, height)
    noise = max(scene.noise, 0.0) + (0.0 if scene.lights_on else _LIGHTS_OFF_NOISE)
    if noise <= 0:
        return [_to_uint8(clean)]
    frames = []
    for variant in range(count):
        rng = np.random.default_rng(scene.seed if variant == 0 else (scene.seed, variant))
        frames.append(_to_uint8(clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(noise)))
    return frames


def _compose(scene: Scene, width: int, height: int) -> Floats:
    """Everything but the sensor noise, as floats."""
    frame = _tray(width, height).copy()
    light = 1.0 if scene.lights_on else _LIGHTS_OFF_GAIN
    if scene.phone is not None:
        _place_phone(frame, scene, light)
    else:
        frame *= light
    if scene.glare > 0 and scene.lights_on:
        highlight = _glare(scene, width, height)[:, :, None] * min(scene.glare, 1.0)
        frame += (255.0 - frame) * highlight
    return frame


def _to_uint8(frame: Floats) -> Frame:
    np.clip(frame, 0.0, 255.0, out=frame)
    return frame.astype(np.uint8)


def random_scene(
    rng: random.Random,
    looks: Sequence[PhoneLook],
    *,
    phone_probability: float = 0.5,
    crack_probability: float = 0.5,
) -> Scene:
    """A plausible chamber scene drawn from ``rng``: lights on, the phone (if any) wholly in view.

    :param looks: the phones to choose from; an empty sequence gives an empty tray.
    :param phone_probability: chance that a phone lies on the tray.
    :param crack_probability: chance that a present phone's screen is cracked.
    """
    seed = rng.randrange(2**31)
    glare = rng.uniform(0.2, 0.7) if rng.random() < 0.3 else 0.0
    noise = rng.uniform(0.0, 4.0)
    if not looks or rng.random() >= phone_probability:
        return Scene(glare=glare, noise=noise, seed=seed)
    look = rng.choice(list(looks))
    angle = rng.choice((0.0, 90.0)) + rng.uniform(-20.0, 20.0)
    half_x, half_y = _half_extent(look, angle)
    margin = 4.0
    room_x = max(TRAY_WIDTH_MM / 2 - half_x - margin, 0.0)
    room_y = max(TRAY_HEIGHT_MM / 2 - half_y - margin, 0.0)
    return Scene(
        phone=look,
        x_mm=rng.uniform(-room_x, room_x),
        y_mm=rng.uniform(-room_y, room_y),
        angle_deg=angle,
        screen_on=rng.random() < 0.5,
        cracked=rng.random() < crack_probability,
        glare=glare,
        noise=noise,
        seed=seed,
    )


def load_looks() -> dict[str, PhoneLook]:
    """The phone profiles' looks, from the data file ``simulators/camera/phones.toml``.

    :returns: looks by profile name, in the file's order.
    :raises ValueError: the data file is malformed (a packaging defect).
    """
    text = resources.files("simulators.camera").joinpath("phones.toml").read_text(encoding="utf-8")
    return parse_looks(text)


def parse_looks(text: str) -> dict[str, PhoneLook]:
    """Parse a phones.toml document (see that file for its fields).

    :raises ValueError: not TOML, or a profile lacks a field or has a bad value; names the profile.
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"phone looks are not valid TOML: {exc}") from exc
    return {name: _look(name, entry) for name, entry in table.items()}


def _look(name: str, entry: object) -> PhoneLook:
    if not isinstance(entry, Mapping):
        raise ValueError(f"phone look {name!r} must be a table")
    try:
        colour = str(entry["colour"])
        if len(colour) != 7 or not colour.startswith("#"):
            raise ValueError(f"colour must look like #RRGGBB, not {colour!r}")
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        look = PhoneLook(
            name=name,
            length_mm=float(entry["length_mm"]),
            width_mm=float(entry["width_mm"]),
            body_bgr=(blue, green, red),
            corner_mm=float(entry["corner_mm"]),
            bezel_mm=float(entry["bezel_mm"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"phone look {name!r} is malformed: {exc!r}") from exc
    sizes = (look.length_mm, look.width_mm, look.corner_mm, look.bezel_mm)
    if not all(math.isfinite(v) and v >= 0 for v in sizes) or not 0 < look.width_mm <= look.length_mm <= 300:
        raise ValueError(f"phone look {name!r} has impossible dimensions")
    return look


def _half_extent(look: PhoneLook, angle_deg: float) -> tuple[float, float]:
    """Half the width and height (mm) of the box around ``look`` turned by ``angle_deg``."""
    c, s = abs(math.cos(math.radians(angle_deg))), abs(math.sin(math.radians(angle_deg)))
    return (look.width_mm * c + look.length_mm * s) / 2, (look.width_mm * s + look.length_mm * c) / 2


@functools.lru_cache(maxsize=8)
def _tray(width: int, height: int) -> Floats:
    """The empty, lit tray at one size: mid grey, a fine grain and mottling, darker corners.

    The texture is the same in every scene (it is the same tray); it is cached per size and
    returned read-only, so callers copy it.
    """
    rng = np.random.default_rng(20261126)
    mottle = rng.standard_normal((max(height // 40, 2), max(width // 40, 2)), dtype=np.float32) * 2.5
    tray: Floats = np.asarray(cv2.resize(mottle, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)
    tray += rng.standard_normal((height, width), dtype=np.float32) * 2.5
    u = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    v = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    vignette = 1.0 - 0.32 * (u * u + v * v) / 2.0
    lit = (tray[:, :, None] + np.asarray(_TRAY_BGR, np.float32)) * vignette[:, :, None]
    frame: Floats = np.ascontiguousarray(lit, dtype=np.float32)
    frame.setflags(write=False)
    return frame


def _place_phone(frame: Floats, scene: Scene, light: float) -> None:
    """Composite the scene's phone, with its soft shadow, onto ``frame``; then apply ``light``.

    The screen of a phone that is on emits its own light, so darkness does not dim it.
    """
    assert scene.phone is not None
    height, width = frame.shape[:2]
    kx, ky = width / TRAY_WIDTH_MM, height / TRAY_HEIGHT_MM  # output pixels per mm
    px_per_mm = max(kx, ky)
    sprite = draw_phone(
        scene.phone, screen_on=scene.screen_on, cracked=scene.cracked, seed=scene.seed, px_per_mm=px_per_mm
    )
    turn = math.radians(scene.angle_deg)
    linear = np.array([[kx, 0.0], [0.0, ky]]) @ np.array(
        [[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]
    )
    linear /= px_per_mm
    centre = np.array([(TRAY_WIDTH_MM / 2 + scene.x_mm) * kx, (TRAY_HEIGHT_MM / 2 + scene.y_mm) * ky])
    sprite_centre = np.array([(sprite.alpha.shape[1] - 1) / 2, (sprite.alpha.shape[0] - 1) / 2])
    half = np.abs(linear) @ sprite_centre + 8.0 * max(kx, ky)  # room for the shadow too
    x0, y0 = (max(int(c - h), 0) for c, h in zip(centre, half, strict=True))
    x1, y1 = min(int(centre[0] + half[0]) + 2, width), min(int(centre[1] + half[1]) + 2, height)
    if x0 >= x1 or y0 >= y1:
        frame *= light  # the phone lies wholly outside the view
        return
    matrix = np.hstack([linear, (centre - [x0, y0] - linear @ sprite_centre)[:, None]])
    size = (x1 - x0, y1 - y0)
    premultiplied = sprite.bgr.astype(np.float32) * sprite.alpha[:, :, None]
    colour: Floats = np.asarray(cv2.warpAffine(premultiplied, matrix, size), np.float32)
    stacked = np.dstack([sprite.alpha, sprite.screen, sprite.screen])
    masks: Floats = np.asarray(cv2.warpAffine(stacked, matrix, size), np.float32)
    alpha, screen = masks[:, :, 0:1], masks[:, :, 1:2]
    roi = frame[y0:y1, x0:x1]
    roi *= 1.0 - _SHADOW_STRENGTH * _shadow(alpha[:, :, 0], kx, ky)[:, :, None]
    roi *= 1.0 - alpha
    roi += colour
    frame *= light
    if scene.screen_on and light < 1.0:
        roi += colour * screen * (1.0 - light)


def _shadow(alpha: Floats, kx: float, ky: float) -> Floats:
    """A soft shadow of coverage ``alpha``, offset away from the chamber light."""
    shift = np.array([[1, 0, _SHADOW_OFFSET_MM[0] * kx], [0, 1, _SHADOW_OFFSET_MM[1] * ky]], np.float32)
    moved = cv2.warpAffine(alpha, shift, (alpha.shape[1], alpha.shape[0]))
    sigma = 2.0 * max(kx, ky)
    blurred: Floats = np.asarray(cv2.GaussianBlur(moved, (0, 0), sigma), np.float32)
    return blurred


def _glare(scene: Scene, width: int, height: int) -> Floats:
    """A soft elliptical highlight (0..1) where the chamber light reflects; ``seed`` places it."""
    rng = random.Random(scene.seed ^ 0x61A7E)
    if scene.phone is not None:
        cx = scene.x_mm + rng.uniform(-0.3, 0.3) * scene.phone.width_mm
        cy = scene.y_mm + rng.uniform(-0.3, 0.3) * scene.phone.length_mm
    else:
        cx = rng.uniform(-0.35, 0.35) * TRAY_WIDTH_MM
        cy = rng.uniform(-0.35, 0.35) * TRAY_HEIGHT_MM
    axes = (rng.uniform(25.0, 45.0), rng.uniform(8.0, 18.0))
    turn = rng.uniform(0, math.pi)
    # Evaluated on a coarse grid in tray millimetres, then scaled up: the highlight is smooth.
    grid_w, grid_h = max(width // 8, 2), max(height // 8, 2)
    xs = np.linspace(-TRAY_WIDTH_MM / 2, TRAY_WIDTH_MM / 2, grid_w, dtype=np.float32)[None, :] - cx
    ys = np.linspace(-TRAY_HEIGHT_MM / 2, TRAY_HEIGHT_MM / 2, grid_h, dtype=np.float32)[:, None] - cy
    along = xs * math.cos(turn) + ys * math.sin(turn)
    across = -xs * math.sin(turn) + ys * math.cos(turn)
    coarse = np.exp(-2.0 * ((along / axes[0]) ** 2 + (across / axes[1]) ** 2)).astype(np.float32)
    smooth: Floats = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
    return smooth
