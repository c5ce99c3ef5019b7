"""`hwd config check FILE`: validates a configuration file as the daemon would read it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hwd.cli.exitcodes import ExitCode


def config_check(args: argparse.Namespace) -> int:
    """Loads FILE (plus HWD_* environment) like `hwd serve --config FILE`.

    :returns: OK and prints ``FILE: ok``; or CONFIG and prints the error (file, key, reason) to stderr.
    """
    from hwd.config import load_config  # pydantic is slow to import; only needed here
    from hwd.errors import ConfigError

    path = Path(args.file)
    try:
        load_config(path)
    except ConfigError as exc:
        print(f"hwd: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"file": str(path), "ok": False, "error": exc.message, **exc.metadata}))
        return ExitCode.CONFIG
    print(json.dumps({"file": str(path), "ok": True}) if args.json else f"{path}: ok")
    return ExitCode.OK
