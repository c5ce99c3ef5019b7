"""Stop the simulator when the process that started it is gone, without polling."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from simulators.errors import StartupRefused

log = logging.getLogger(__name__)


def open_pidfd(pid: int) -> int:
    """Open a pidfd for ``pid``; it becomes readable when that process exits.

    :returns: the descriptor; the caller closes it.
    :raises StartupRefused: the process does not exist, or this kernel has no pidfd_open (Linux >= 5.3).
    """
    if not hasattr(os, "pidfd_open"):
        raise StartupRefused("--parent-pid needs os.pidfd_open (Linux 5.3 or later)")
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise StartupRefused(f"--parent-pid {pid}: no such process") from None
    except OSError as exc:
        raise StartupRefused(f"--parent-pid {pid}: cannot watch it: {exc.strerror}") from exc


def watch_pidfd(loop: asyncio.AbstractEventLoop, pidfd: int, pid: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once, from ``loop``, when the process behind ``pidfd`` exits.

    The reader is removed when it fires; call ``loop.remove_reader(pidfd)`` to stop watching
    earlier (before closing ``pidfd``).
    """

    def fired() -> None:
        loop.remove_reader(pidfd)
        log.info("parent process %d is gone; stopping", pid)
        on_gone()

    loop.add_reader(pidfd, fired)
