"""Roles by socket: each socket has a deny-by-default allow-list of full method names.

Python grpcio exposes no peer credentials per call, so the role is the socket the call came in on
(one server per socket); who may connect to which socket is decided by file permissions.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from typing import Any

UI = "ui"
TECH = "tech"

HEALTH = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
REFLECTION = frozenset(
    {
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)
KIOSK_UI = frozenset(
    f"/hwd.v1.Kiosk/{m}" for m in ("GetStatus", "WatchEvents", "AcquireLease", "RenewLease", "ReleaseLease")
)
KIOSK_TECH = KIOSK_UI | {"/hwd.v1.Kiosk/AddNote"}
CAROUSEL = frozenset(f"/hwd.v1.Carousel/{m}" for m in ("GetStatus", "Home", "Select", "TestCable", "WatchStatus"))
# The kiosk flow locks the bin and watches it; opening it is a technician's act.
LOCK_UI = frozenset(f"/hwd.v1.BinLock/{m}" for m in ("GetStatus", "WatchStatus", "Lock"))
LOCK_TECH = LOCK_UI | {"/hwd.v1.BinLock/Unlock"}

PRINTER = frozenset(f"/hwd.v1.Printer/{m}" for m in ("GetStatus", "Print", "GetJob", "WatchJobs"))
# The kiosk UI follows the phone ports and re-reads a phone; so does a technician.
PHONES = frozenset(f"/hwd.v1.Phones/{m}" for m in ("ListPorts", "GetPort", "WatchPorts", "Refresh"))
# The kiosk UI takes stills and shows the preview; so does a technician.
CAMERA = frozenset(f"/hwd.v1.Camera/{m}" for m in ("GetStatus", "Capture", "Preview", "Inspect"))

ALLOWED: dict[str, frozenset[str]] = {
    UI: HEALTH | KIOSK_UI | CAROUSEL | LOCK_UI | PRINTER | CAMERA | PHONES,
    TECH: HEALTH | REFLECTION | KIOSK_TECH | CAROUSEL | LOCK_TECH | PRINTER | CAMERA | PHONES,
}

# The role of the socket the current call came in on (set per call by the edge interceptor).
current_role: contextvars.ContextVar[str] = contextvars.ContextVar("hwd_role", default="")

# Device commands on a leased device carry the lease id in this request metadata key.
LEASE_METADATA = "hwd-lease-id"


def lease_id(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The lease id a call presents (``context.invocation_metadata()``), or None."""
    for key, value in metadata or ():
        if key == LEASE_METADATA:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None
