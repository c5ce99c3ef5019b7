"""sd_notify in pure Python: READY=1, STATUS=..., STOPPING=1 to systemd when NOTIFY_SOCKET is set."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*fields: str) -> bool:
    """Sends ``KEY=VALUE`` lines to systemd's notify socket.

    :returns: False when not run by systemd (NOTIFY_SOCKET unset) or the send failed (logged).
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", address, exc)
        return False
    return True
