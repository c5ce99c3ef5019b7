"""`hwd` and `python -m hwd`: `hwd serve ...` runs the daemon, every other command is the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Runs `hwd` with `argv` (default: sys.argv[1:]) and returns the exit code.

    `serve` must be the first argument; its options are parsed by the daemon itself.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["serve"]:
        from hwd.daemon import main as serve_main  # only the daemon pays for importing the daemon

        return serve_main(args[1:])
    from hwd.cli.main import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
