"""What the camera's scene-changing faults do to the chamber; pure functions of the scene and parameters."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping

from simulators.camera.scene import TRAY_HEIGHT_MM, TRAY_WIDTH_MM, PhoneLook, Scene, random_scene
from simulators.device import check_params, int_param

SCENE_ACTIONS = ("place", "remove", "crack", "screen-on", "screen-off", "lights-off", "lights-on")
PLACE_PARAMS = ("profile", "cracked", "screen", "angle", "x", "y", "glare", "noise", "seed")
MAX_NOISE = 50.0
MAX_SEED = 2**31 - 1


def apply(scene: Scene, name: str, params: Mapping[str, str], looks: Mapping[str, PhoneLook], seed: int) -> Scene:
    """The scene after action ``name`` (one of :data:`SCENE_ACTIONS`).

    :param seed: where the random choices of ``place`` come from when ``params`` has no ``seed``.
    :raises ValueError: an unknown action or parameter, a bad value, or an action that needs a
        phone when the tray is empty.
    """
    check_params(name, params, PLACE_PARAMS if name == "place" else ())
    if name == "place":
        return place(scene, params, looks, seed)
    if name in ("lights-off", "lights-on"):
        return dataclasses.replace(scene, lights_on=name == "lights-on")
    if name == "remove":
        return Scene(lights_on=scene.lights_on, seed=scene.seed)
    if name not in SCENE_ACTIONS:
        raise ValueError(f"unknown camera action {name!r}")
    if scene.phone is None:
        raise ValueError(f"{name!r} needs a phone on the tray; 'place' one first")
    if name == "crack":
        return dataclasses.replace(scene, cracked=True)
    return dataclasses.replace(scene, screen_on=name == "screen-on")


def place(scene: Scene, params: Mapping[str, str], looks: Mapping[str, PhoneLook], seed: int) -> Scene:
    """A phone put on the tray (replacing any other); what ``params`` leaves out is random.

    :raises ValueError: an unknown profile or a bad value.
    """
    rng = random.Random(int_param(params, "seed", seed, 0, MAX_SEED))
    profile = params.get("profile")
    if profile is not None and profile not in looks:
        raise ValueError(f"unknown phone profile {profile!r}; known: {', '.join(looks)}")
    chosen = [looks[profile]] if profile is not None else list(looks.values())
    drawn = random_scene(rng, chosen, phone_probability=1.0)
    screen = params.get("screen")
    if screen not in (None, "on", "off"):
        raise ValueError(f"screen must be 'on' or 'off', not {screen!r}")
    return dataclasses.replace(
        drawn,
        lights_on=scene.lights_on,
        cracked=bool(int_param(params, "cracked", int(drawn.cracked), 0, 1)),
        screen_on=drawn.screen_on if screen is None else screen == "on",
        angle_deg=_number(params, "angle", drawn.angle_deg, 360.0),
        x_mm=_number(params, "x", drawn.x_mm, TRAY_WIDTH_MM / 2),
        y_mm=_number(params, "y", drawn.y_mm, TRAY_HEIGHT_MM / 2),
        glare=_number(params, "glare", drawn.glare, 1.0, low=0.0),
        noise=_number(params, "noise", drawn.noise, MAX_NOISE, low=0.0),
    )


def _number(params: Mapping[str, str], key: str, default: float, high: float, low: float | None = None) -> float:
    """Parameter ``key`` as a number from ``low`` (default ``-high``) to ``high``.

    :raises ValueError: not such a number.
    """
    text = params.get(key)
    if text is None:
        return default
    low = -high if low is None else low
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise ValueError(f"{key} must be a number from {low:g} to {high:g}, not {text!r}")
    return value
