"""The simulated usbmuxd's files: pair records by UDID and the host's stable SystemBUID.

Every method blocks (file I/O): call them in a thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

#: The largest pair record file read back (real ones are a few KiB).
MAX_RECORD = 256 * 1024


class PairRecords:
    """Pair records under ``DIR/pair_records/UDID.plist`` and the SystemBUID in ``DIR/SystemBUID``."""

    def __init__(self, directory: Path) -> None:
        """:param directory: where the files go; made when first needed."""
        self.directory = directory
        self.records = directory / "pair_records"

    def buid(self, make: Callable[[], str]) -> str:
        """The SystemBUID kept in the directory; made with ``make`` and saved the first time."""
        self.records.mkdir(parents=True, exist_ok=True)
        path = self.directory / "SystemBUID"
        with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
            text = path.read_bytes()[:128].decode().strip()
            if text:
                return text
        value = make()
        path.write_text(value + "\n")
        return value

    def path(self, udid: str) -> Path:
        """Where the record of ``udid`` lives (the caller checked ``udid`` is a plain name)."""
        return self.records / f"{udid}.plist"

    def read(self, udid: str) -> bytes | None:
        """The record of ``udid``, or None when there is none (or it is oversized)."""
        try:
            with self.path(udid).open("rb") as handle:
                data = handle.read(MAX_RECORD + 1)
        except FileNotFoundError:
            return None
        return data if len(data) <= MAX_RECORD else None

    def save(self, udid: str, data: bytes) -> None:
        """Save the record of ``udid`` (atomically, private to the owner)."""
        self.records.mkdir(parents=True, exist_ok=True)
        final = self.path(udid)
        partial = final.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        partial.replace(final)

    def delete(self, udid: str) -> bool:
        """Delete the record of ``udid``; whether there was one."""
        try:
            self.path(udid).unlink()
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> None:
        """Delete every record."""
        if self.records.is_dir():
            for path in self.records.glob("*.plist"):
                path.unlink(missing_ok=True)
