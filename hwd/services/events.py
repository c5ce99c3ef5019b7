"""The event bus: every event is journaled first, then fanned out to live subscribers in order."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from hwd.errors import InvalidArgument, ShuttingDown, SubscriberTooSlow
from hwd.journal import Journal
from hwd.model import Event, EventPayload

log = logging.getLogger(__name__)


class _Subscriber:
    """A live subscriber's bounded backlog; past ``cap`` it is cut off instead of growing."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: deque[Event] = deque()
        self.wake = asyncio.Event()
        self.cut: type[Exception] | None = None

    def offer(self, event: Event) -> bool:
        if len(self.items) >= self.cap:
            self.end(SubscriberTooSlow)
            return False
        self.items.append(event)
        self.wake.set()
        return True

    def end(self, why: type[Exception]) -> None:
        self.cut = why
        self.wake.set()

    async def next(self) -> Event | None:
        """The next event, or None once cut off (``cut`` says why)."""
        while not self.items and self.cut is None:
            self.wake.clear()
            await self.wake.wait()
        if self.cut is not None:
            return None
        return self.items.popleft()


class EventBus:
    """Journals events and streams them to subscribers.

    :param journal: where events are committed before anyone sees them.
    :param queue_size: how many undelivered events a live subscriber may lag before it is cut off.
    :param replay_page: how many events one journal read fetches while replaying.
    """

    def __init__(self, journal: Journal, queue_size: int, replay_page: int) -> None:
        self._journal = journal
        self._queue_size = queue_size
        self._replay_page = replay_page
        self._subscribers: set[_Subscriber] = set()
        self._delivered = 0  # newest sequence handed to live subscribers
        self._held: dict[int, Event] = {}  # committed but waiting for an older one to be delivered
        self._closed = False

    async def start(self) -> None:
        """Reads where the journal stands; call once before publishing."""
        self._delivered = await self._journal.last_sequence()

    @property
    def last_sequence(self) -> int:
        """The newest event delivered live (everything up to it is committed)."""
        return self._delivered

    @property
    def subscriber_count(self) -> int:
        """How many live subscribers there are."""
        return len(self._subscribers)

    async def publish(self, source: str, payload: EventPayload) -> Event:
        """Commits an event, then delivers it to live subscribers, always in sequence order.

        :raises JournalUnavailable: when it could not be committed (nobody sees it then).
        """
        # Shielded: a caller cancelled mid-commit (a client hanging up) must not leave a committed
        # event undelivered, which would hold back every later event of every subscriber.
        return await asyncio.shield(self._commit_and_deliver(source, payload))

    async def _commit_and_deliver(self, source: str, payload: EventPayload) -> Event:
        event = await self._journal.append_event(source, payload)
        self._held[event.sequence] = event
        while (ready := self._held.pop(self._delivered + 1, None)) is not None:
            self._delivered = ready.sequence
            for sub in tuple(self._subscribers):
                if not sub.offer(ready):
                    self._subscribers.discard(sub)
                    log.warning("event subscriber cut off at sequence %s: too slow", ready.sequence)
        return event

    def close(self) -> None:
        """Ends every live subscription with SHUTTING_DOWN; later watchers are refused."""
        self._closed = True
        for sub in self._subscribers:
            sub.end(ShuttingDown)
        self._subscribers.clear()

    async def watch(self, after: int) -> AsyncIterator[Event]:
        """Every event after sequence ``after``: first from the journal, then live.

        Nothing is skipped or repeated at the seam: the switch to live happens, without
        yielding to the loop, only once the replay has reached the newest delivered event;
        live events already replayed are dropped by sequence.

        :raises InvalidArgument: when ``after`` is beyond the newest event (a reset journal).
        :raises SubscriberTooSlow: with metadata ``last_sequence`` when the backlog overflows.
        :raises ShuttingDown: when the daemon stops.
        """
        if after > self._delivered:
            raise InvalidArgument(
                f"after_sequence {after} is beyond the newest event {self._delivered}",
                hint="The journal may have been reset: start again from 0.",
            )
        last = after
        while True:
            for event in await self._journal.events_after(last, self._replay_page):
                yield event
                last = event.sequence
            if last >= self._delivered:
                break
        if self._closed:
            raise ShuttingDown("the daemon is stopping")
        sub = _Subscriber(self._queue_size)
        self._subscribers.add(sub)
        try:
            while (live := await sub.next()) is not None:
                if live.sequence > last:
                    yield live
                    last = live.sequence
            _raise_cut(sub.cut, last)
        finally:
            self._subscribers.discard(sub)


def _raise_cut(why: type[Exception] | None, last: int) -> None:
    """Raises the error that ended a subscription, carrying the last sequence sent."""
    if why is SubscriberTooSlow:
        raise SubscriberTooSlow(
            f"subscriber fell more than its queue behind; last sequence sent was {last}",
            metadata={"last_sequence": str(last)},
        )
    raise ShuttingDown("the daemon is stopping", metadata={"last_sequence": str(last)})
