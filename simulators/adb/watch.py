"""Plugged phones as the control service reports them, and a bounded feed of plugs and unplugs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

#: How many changes a watcher may fall behind before its watch is ended.
WATCH_CAPACITY = 256


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """One plugged phone at one instant."""

    port: str
    profile: str
    serial: str
    endpoint: str
    state: str
    platform: str = "android"


@dataclass(frozen=True, slots=True)
class PhoneChange:
    """A phone was plugged in (``attached``) or unplugged (the phone as it was)."""

    attached: bool
    phone: PhoneInfo


class PhoneWatch:
    """The changes one watcher has not read yet; bounded, so a stuck watcher cannot eat memory."""

    def __init__(self, capacity: int = WATCH_CAPACITY) -> None:
        """:param capacity: how many unread changes it holds before it overflows."""
        self._capacity = capacity
        # One slot more than the capacity, for the end marker.
        self._queue: asyncio.Queue[PhoneChange | None] = asyncio.Queue(capacity + 1)
        self._ended = False
        self.overflowed = False

    def push(self, change: PhoneChange) -> None:
        """Add a change; past the capacity the watch ends, overflowed."""
        if self._ended:
            return
        if self._queue.qsize() >= self._capacity:
            self.overflowed = True
            self.end()
            return
        self._queue.put_nowait(change)

    def end(self) -> None:
        """End the watch: :meth:`next` returns None once the changes before are read."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)

    async def next(self) -> PhoneChange | None:
        """The next change, waiting for one; None when the watch has ended."""
        change = await self._queue.get()
        if change is None:
            self._queue.put_nowait(None)  # later calls see the end too
        return change
