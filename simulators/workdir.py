"""The simulator's private directory: creation, exclusive ownership, and its control socket."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
from pathlib import Path

from simulators.errors import StartupRefused

log = logging.getLogger(__name__)

#: Longest Unix socket path Linux accepts (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH = 107


def claim_workdir(directory: Path) -> int:
    """Create ``directory`` (mode 0700) if missing and lock it for this process.

    The lock (``flock`` on the directory itself) closes the race between two simulators that
    start at the same instant; it is released when the returned descriptor is closed or the
    process dies.

    :returns: the descriptor holding the lock; the caller closes it last.
    :raises StartupRefused: the directory is unusable or another simulator holds it.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as exc:
        raise StartupRefused(f"cannot create simulator directory {directory}: {exc.strerror}") from exc
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StartupRefused(f"cannot open simulator directory {directory}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            raise StartupRefused(f"simulator directory {directory} is in use by another running simulator") from None
        raise StartupRefused(f"cannot lock simulator directory {directory}: {exc.strerror}") from exc
    return fd


def clear_control_socket(path: Path) -> None:
    """Make ``path`` free for the control socket.

    A stale socket left by a crashed simulator is removed.

    :raises StartupRefused: the path is too long, is not a socket, or a live server answers on it.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise StartupRefused(f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; use a shorter --dir")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupRefused(f"{path} exists and is not a socket; remove it or use another --dir")
    if _answers(path):
        raise StartupRefused(f"{path} is in use by a live simulator")
    log.warning("removing stale control socket %s", path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            raise StartupRefused(f"cannot probe control socket {path}: {exc}") from exc
        return True
