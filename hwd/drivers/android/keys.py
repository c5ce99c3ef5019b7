"""The kiosk's ADB key pair: one RSA key kept in a directory, made on first use.

Phones remember the public key once a customer taps "Allow"; the same key must sign every
later connection, so it lives in the state directory, readable by hwd alone (0600).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from adb_shell.auth.keygen import keygen  # type: ignore[import-untyped]
from adb_shell.auth.sign_cryptography import CryptographySigner  # type: ignore[import-untyped]

from hwd.errors import PhoneError

KEY_NAME = "adbkey"
_LOCK = threading.Lock()  # one key pair per directory, even if two phones arrive at once
# Loading the private key costs ~15 ms of CPU (OpenSSL checks the RSA key): once per key file, not
# once per phone. Keyed by the file's identity, so a replaced key is loaded again.
_LOADED: dict[tuple[Path, int, int, int], Any] = {}


def _load_or_create(key_dir: Path) -> Any:
    with _LOCK:
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = key_dir / KEY_NAME
        if not (private.exists() and private.with_name(KEY_NAME + ".pub").exists()):
            staging = key_dir / f".{KEY_NAME}.new"
            for path in (staging, key_dir / f".{KEY_NAME}.new.pub"):
                # made 0600 before keygen writes: its open() truncates and keeps the mode, so the
                # private key is never readable by others, not even for a moment
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
                os.chmod(path, 0o600)
            keygen(str(staging))
            os.replace(f"{staging}.pub", f"{private}.pub")
            os.replace(staging, private)  # the private key last: its presence means the pair is whole
        facts = private.stat()
        key = (private, facts.st_ino, facts.st_mtime_ns, facts.st_size)
        if key not in _LOADED:
            # OpenSSL signs in ~0.3 ms; the pure-Python signer took ~45 ms of CPU per phone, which
            # queued every phone of a busy kiosk behind the one being authorised. Same bytes.
            _LOADED[key] = CryptographySigner(str(private))
        return _LOADED[key]


async def load_signer(key_dir: Path) -> Any:
    """The signer of the kiosk's key pair in ``key_dir``, created (mode 0600) if missing.

    :param key_dir: where ``adbkey`` and ``adbkey.pub`` live.
    :returns: an adb-shell ``CryptographySigner``.
    :raises hwd.errors.PhoneError: ``ADB_KEY_UNAVAILABLE`` when the pair cannot be read or written.
    """
    try:
        return await asyncio.to_thread(_load_or_create, key_dir)  # RSA key generation takes ~0.1 s
    except (OSError, ValueError) as exc:
        raise PhoneError(f"cannot read or create the ADB key in {key_dir}: {exc}", code="ADB_KEY_UNAVAILABLE") from exc
