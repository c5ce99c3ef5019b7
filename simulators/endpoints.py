"""The endpoints file: where the simulated kiosk's control socket and devices listen.

Format (version 1)::

    {"version": 1, "pid": 1234, "started": "2026-01-02T03:04:05.678Z",
     "control": "unix:/abs/dir/control.sock",
     "devices": {"<name>": {"kind": "<kind>", "endpoint": "<endpoint>"}}}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulators.device import DeviceView

FORMAT_VERSION = 1


def iso_utc(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds and a ``Z`` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoints_document(pid: int, started: datetime, control: str, devices: Iterable[DeviceView]) -> dict[str, Any]:
    """Build the endpoints document (version 1).

    :param started: an aware UTC datetime.
    :param control: the control service's gRPC target, ``unix:/abs/path``.
    """
    return {
        "version": FORMAT_VERSION,
        "pid": pid,
        "started": iso_utc(started),
        "control": control,
        "devices": {device.name: {"kind": device.kind, "endpoint": device.endpoint} for device in devices},
    }


def compact_line(document: dict[str, Any]) -> str:
    """The document as compact JSON on one line, with the trailing newline."""
    return json.dumps(document, separators=(",", ":")) + "\n"


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` so a reader sees the old file or the whole new one.

    A temporary file in the same directory is written, fsynced and renamed over ``path``; the
    directory is fsynced too, so the file survives a crash once this returns.

    :raises OSError: the directory is missing or not writable.
    """
    text = json.dumps(document, indent=2) + "\n"
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
