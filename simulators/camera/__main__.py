"""``python -m simulators.camera OUT.avi [--size WxH] [--fps N] [--seed N]``: write a clip of the chamber."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from simulators.camera.frames import SIZES
from simulators.camera.scene import load_looks
from simulators.camera.video import DEFAULT_FPS, demo_scenes, write_video


def main(argv: Sequence[str] | None = None) -> int:
    """Write a 40-frame MJPG clip of a kiosk session (see :func:`demo_scenes`).

    :returns: the exit status: 0 written, 1 not (the reason is on stderr), 2 bad arguments.
    """
    parser = argparse.ArgumentParser(prog="python -m simulators.camera", description=__doc__)
    parser.add_argument("output", type=Path, help="the .avi file to write")
    parser.add_argument("--size", choices=list(SIZES), default="1920x1080")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        scenes = demo_scenes(list(load_looks().values()), args.seed)
        count = write_video(args.output, scenes, size=SIZES[args.size], fps=args.fps)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"wrote {count} frames to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
