"""Leases (exclusive control of one device) and daemon lifecycle phases."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LeaseChange(enum.Enum):
    """Why a lease changed (mirrors hwd.v1.LeaseChange)."""

    ACQUIRED = "ACQUIRED"
    RENEWED = "RENEWED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class LifecyclePhase(enum.Enum):
    """The daemon's lifecycle (mirrors hwd.v1.LifecyclePhase)."""

    STARTED = "STARTED"
    STOPPING = "STOPPING"


@dataclass(frozen=True)
class Lease:
    """A lease held by ``holder`` on ``device`` until ``expires_ns`` (wall clock, ns since epoch)."""

    lease_id: str
    device: str
    holder: str
    expires_ns: int
