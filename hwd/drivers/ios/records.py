"""Pair records: where the kiosk keeps them while a phone is plugged, and their removal everywhere.

A pair record lets whoever holds it read the phone (and its backups' escrow key) without asking
the customer again, so it lives only as long as the phone is in the kiosk: in the daemon's own
directory (mode 0700, files 0600; never a user's home) and in usbmuxd (as libimobiledevice does).
When the phone leaves, :meth:`PairRecords.forget` deletes it there and from the other places
tools look for one: ``/var/lib/lockdown`` and pymobiledevice3's home folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import plistlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwd.drivers.ios.usbmux import Usbmux
from hwd.errors import PhoneError

log = logging.getLogger(__name__)

#: Where libimobiledevice and usbmuxd keep pair records on Linux.
SYSTEM_RECORD_DIR = Path("/var/lib/lockdown")
#: The largest pair record read back (a real one is about 8 KiB).
MAX_RECORD_BYTES = 256 * 1024
_UDID = re.compile(r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{16}|[0-9A-Fa-f]{40}")


def checked_udid(udid: str) -> str:
    """``udid`` if it has the form of a UDID (24 hex digits with an optional dash, or 40 hex digits).

    :raises hwd.errors.PhoneError: ``INVALID_ENDPOINT`` otherwise (it names files: no paths).
    """
    if not _UDID.fullmatch(udid):
        raise PhoneError(f"not an iOS UDID: {udid[:80]!r}", code="INVALID_ENDPOINT")
    return udid


def pymobiledevice3_dirs() -> list[Path]:
    """pymobiledevice3's pair record folders for this user (without creating them)."""
    home = Path(os.path.expanduser("~"))
    xdg = Path(os.environ.get("XDG_DATA_HOME", "") or home / ".local" / "share")
    return [home / ".pymobiledevice3", xdg / "pymobiledevice3"]


def load_record(data: bytes) -> dict[str, Any] | None:
    """A pair record from its plist bytes; None when they are not a usable record (total)."""
    try:
        record = plistlib.loads(data)
    except Exception:  # plistlib raises assorted errors on garbage
        return None
    needed = ("HostCertificate", "HostPrivateKey", "HostID")
    if not isinstance(record, dict) or not all(key in record for key in needed):
        return None
    return record


class PairRecords:
    """The pair records of the phones in the kiosk.

    :param directory: the daemon's record directory (made on first save, mode 0700).
    :param mux: the usbmuxd that also keeps them.
    :param elsewhere: other folders a record file ``UDID.plist`` is deleted from when present
        and writable; None: ``/var/lib/lockdown`` and pymobiledevice3's home folders.
    """

    def __init__(self, directory: Path, mux: Usbmux, elsewhere: Iterable[Path] | None = None) -> None:
        self._dir = directory
        self._mux = mux
        self._elsewhere = None if elsewhere is None else list(elsewhere)

    @property
    def directory(self) -> Path:
        """The daemon's record directory."""
        return self._dir

    def path(self, udid: str) -> Path:
        """The file of ``udid``'s record in the daemon's directory."""
        return self._dir / f"{checked_udid(udid)}.plist"

    def load(self, udid: str) -> dict[str, Any] | None:
        """The record the daemon keeps for ``udid``; None when none (or an unreadable one)."""
        try:
            with self.path(udid).open("rb") as file:
                data = file.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        return load_record(data) if len(data) <= MAX_RECORD_BYTES else None

    async def save(self, udid: str, devid: int, record: dict[str, Any]) -> None:
        """Keeps ``record`` in the daemon's directory and gives it to usbmuxd.

        :raises hwd.errors.PhoneError: ``PAIR_RECORD_UNWRITABLE`` when the directory cannot take
            it, or usbmuxd's failure code.
        """
        data = plistlib.dumps(record)
        try:
            await asyncio.to_thread(self._write, udid, data)
        except OSError as exc:
            raise PhoneError(
                f"cannot keep the pair record in {self._dir}: {exc}", code="PAIR_RECORD_UNWRITABLE"
            ) from exc
        await self._mux.save_pair_record(udid, devid, data)

    def _write(self, udid: str, data: bytes) -> None:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)  # mkdir's mode is masked by the umask, and the folder may predate us
        descriptor = os.open(self.path(udid), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)

    async def forget(self, udid: str) -> list[str]:
        """Deletes ``udid``'s record everywhere it may be; what cannot be reached is logged and skipped.

        :returns: where a record was deleted (paths, and ``usbmuxd``).
        """
        paths = self._local_paths(udid)
        removed = [str(path) for path in await asyncio.to_thread(_unlink_each, paths)]
        try:
            if await self._mux.delete_pair_record(checked_udid(udid)):
                removed.append("usbmuxd")
        except PhoneError as exc:  # usbmuxd down: it loses its records with its state anyway
            log.warning("could not delete the pair record of %s in usbmuxd: %s", udid, exc)
        if removed:
            log.info("pair record of %s deleted from %s", udid, ", ".join(removed))
        return removed

    def _local_paths(self, udid: str) -> list[Path]:
        elsewhere = self._elsewhere if self._elsewhere is not None else [SYSTEM_RECORD_DIR, *pymobiledevice3_dirs()]
        name = f"{checked_udid(udid)}.plist"
        return [self.path(udid), *(folder / name for folder in elsewhere)]


def _unlink_each(paths: list[Path]) -> list[Path]:
    """The paths of ``paths`` that were there and are deleted now (blocking: run it in a thread)."""
    return [path for path in paths if _unlink(path)]


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:  # e.g. /var/lib/lockdown not writable by the daemon's user
        log.warning("could not delete the pair record %s: %s", path, exc)
        return False
    return True
