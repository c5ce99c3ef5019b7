"""Leases: exclusive control of one device by one client, until released or expired."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable, Container
from dataclasses import dataclass

from hwd.errors import InvalidArgument, LeaseHeld, UnknownDevice, UnknownLease
from hwd.model import Lease, LeaseChange, LeaseChanged
from hwd.services.events import EventBus

HOLDER = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,63}")


@dataclass
class _Held:
    lease: Lease
    deadline: float  # on the monotonic clock


class LeaseTable:
    """Who holds which device.

    :param bus: where lease changes are published.
    :param devices: the names that may be leased (the device registry).
    :param default_ttl: seconds a lease lasts when the client asks for 0.
    :param max_ttl: the longest lease granted.
    :param clock: the monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        bus: EventBus,
        devices: Container[str],
        default_ttl: float,
        max_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._devices = devices
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self._by_device: dict[str, _Held] = {}
        self._changed = asyncio.Event()

    def _ttl(self, ttl: float) -> float:
        if ttl < 0:
            raise InvalidArgument("ttl must not be negative")
        return min(ttl or self._default_ttl, self._max_ttl)

    def _grant(self, lease_id: str, device: str, holder: str, ttl: float) -> _Held:
        expires_ns = time.time_ns() + int(ttl * 1e9)
        held = _Held(Lease(lease_id, device, holder, expires_ns), self._clock() + ttl)
        self._by_device[device] = held
        self._changed.set()
        return held

    def _find(self, lease_id: str) -> _Held:
        for held in self._by_device.values():
            if _same_id(held.lease.lease_id, lease_id) and held.deadline > self._clock():
                return held
        raise UnknownLease("no such lease: it expired, was released, or never existed")

    async def acquire(self, device: str, holder: str, ttl: float) -> Lease:
        """Grants ``device`` to ``holder``.

        :raises UnknownDevice: for a device the kiosk does not have.
        :raises LeaseHeld: when someone holds it (even the same holder: the lease id is the proof).
        """
        if not HOLDER.fullmatch(holder):
            raise InvalidArgument("holder must be 1 to 64 printable ASCII characters")
        if device not in self._devices:
            raise UnknownDevice(f"no device named {device!r}", device=device)
        await self.expire_due()
        current = self._by_device.get(device)
        if current is not None:
            raise LeaseHeld(f"{device} is leased by {current.lease.holder!r}", device=device)
        held = self._grant(secrets.token_urlsafe(18), device, holder, self._ttl(ttl))
        await self._bus.publish("leases", LeaseChanged(LeaseChange.ACQUIRED, device, holder))
        return held.lease

    async def renew(self, lease_id: str, ttl: float) -> Lease:
        """Extends a held lease from now. :raises UnknownLease: once it expired or was released."""
        old = self._find(lease_id).lease
        held = self._grant(lease_id, old.device, old.holder, self._ttl(ttl))
        await self._bus.publish("leases", LeaseChanged(LeaseChange.RENEWED, old.device, old.holder))
        return held.lease

    async def release(self, lease_id: str) -> None:
        """Gives a lease back. :raises UnknownLease:"""
        lease = self._find(lease_id).lease
        del self._by_device[lease.device]
        self._changed.set()
        await self._bus.publish("leases", LeaseChanged(LeaseChange.RELEASED, lease.device, lease.holder))

    def check(self, device: str, lease_id: str | None) -> None:
        """Lets a command on ``device`` proceed only if the device is free or ``lease_id`` holds it.

        :raises LeaseHeld: when another client holds an unexpired lease on it.
        """
        held = self._by_device.get(device)
        if held is None or held.deadline <= self._clock():
            return
        if lease_id is None or not _same_id(held.lease.lease_id, lease_id):
            raise LeaseHeld(f"{device} is leased by {held.lease.holder!r}", device=device)

    def held(self) -> list[Lease]:
        """Unexpired leases, by device name."""
        now = self._clock()
        return [h.lease for _, h in sorted(self._by_device.items()) if h.deadline > now]

    async def expire_due(self) -> float | None:
        """Drops expired leases with an EXPIRED event each.

        :returns: seconds until the next expiry, or None when nothing is held.
        """
        now = self._clock()
        # Drop every expired lease before the first await: a concurrent call (acquire's, or
        # run_expiry's) must not see, drop or announce the same lease again, nor a new one.
        expired = [(device, held) for device, held in sorted(self._by_device.items()) if held.deadline <= now]
        for device, _ in expired:
            del self._by_device[device]
        for device, held in expired:
            await self._bus.publish("leases", LeaseChanged(LeaseChange.EXPIRED, device, held.lease.holder))
        deadlines = [h.deadline for h in self._by_device.values()]
        return min(deadlines) - now if deadlines else None

    async def run_expiry(self) -> None:
        """Publishes EXPIRED exactly when leases run out (a supervised task; runs until cancelled)."""
        while True:
            self._changed.clear()
            wait = await self.expire_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)


def _same_id(held: str, given: str) -> bool:
    """Compares lease ids in constant time; any text is accepted (compare_digest refuses non-ASCII str)."""
    return secrets.compare_digest(held.encode(), given.encode())
