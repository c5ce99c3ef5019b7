"""The event bus: replay then live with no gap or duplicate, and slow subscribers cut off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hwd.errors import InvalidArgument, ShuttingDown, SubscriberTooSlow
from hwd.journal import Journal
from hwd.model import Event, NoteAdded
from hwd.services.events import EventBus


async def _bus(journal: Journal, queue: int = 64, page: int = 7) -> EventBus:
    bus = EventBus(journal, queue_size=queue, replay_page=page)
    await bus.start()
    return bus


async def _until_live(bus: EventBus, count: int) -> None:
    """Lets the loop run until ``count`` subscribers have finished replaying and gone live."""
    async with asyncio.timeout(5):
        while bus.subscriber_count < count:  # noqa: ASYNC110 - counts loop turns, not time
            await asyncio.sleep(0)


async def _collect(stream: AsyncIterator[Event], count: int) -> list[int]:
    seqs = []
    async for event in stream:
        seqs.append(event.sequence)
        if len(seqs) == count:
            break
    return seqs


async def test_replay_then_live_has_no_gap_and_no_duplicate(journal: Journal) -> None:
    bus = await _bus(journal)
    for i in range(40):
        await bus.publish("notes", NoteAdded(str(i), ""))

    async def publisher() -> None:
        for i in range(60):
            await bus.publish("notes", NoteAdded(f"live{i}", ""))

    # Subscribers join at different points while publishers run concurrently with the replay.
    watchers = [asyncio.create_task(_collect(bus.watch(after), 100 - after)) for after in (0, 5, 39)]
    await asyncio.gather(publisher(), publisher())
    more = 60  # the second publisher doubles the live events
    results = await asyncio.wait_for(asyncio.gather(*(_collect(bus.watch(a), 100 + more - a) for a in (0, 99))), 10)
    for after, seqs in zip((0, 99), results, strict=True):
        assert seqs == list(range(after + 1, 161))
    for after, task in zip((0, 5, 39), watchers, strict=True):
        assert await asyncio.wait_for(task, 10) == list(range(after + 1, 101))


async def test_a_slow_subscriber_is_cut_off_with_its_last_sequence_and_can_resume(journal: Journal) -> None:
    bus = await _bus(journal, queue=16)
    stream = bus.watch(0)
    first = asyncio.create_task(anext(stream))  # nothing to replay: it goes live and waits
    await _until_live(bus, 1)
    await bus.publish("notes", NoteAdded("first", ""))
    got = [(await asyncio.wait_for(first, 5)).sequence]  # then the subscriber stops reading
    for i in range(100):
        await bus.publish("notes", NoteAdded(str(i), ""))
    assert bus.subscriber_count == 0, "the overflowing subscriber must be dropped, not buffered"

    async def drain() -> None:
        async for event in stream:
            got.append(event.sequence)

    with pytest.raises(SubscriberTooSlow) as cut:
        await asyncio.wait_for(drain(), 5)
    last = int(cut.value.metadata["last_sequence"])
    assert last == got[-1] == 1
    resumed = await _collect(bus.watch(last), 100)
    assert got + resumed == list(range(1, 102))


async def test_after_beyond_the_newest_event_is_refused(journal: Journal) -> None:
    bus = await _bus(journal)
    await bus.publish("notes", NoteAdded("x", ""))
    with pytest.raises(InvalidArgument, match="beyond the newest event 1"):
        await anext(bus.watch(2))


async def test_close_ends_live_subscribers(journal: Journal) -> None:
    bus = await _bus(journal)
    stream = bus.watch(0)
    waiting = asyncio.create_task(anext(stream))
    await _until_live(bus, 1)
    bus.close()
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(waiting, 5)


async def test_a_publisher_cancelled_mid_commit_does_not_hold_back_later_events(journal: Journal) -> None:
    bus = await _bus(journal)
    stream = bus.watch(0)
    first = asyncio.create_task(anext(stream))
    await _until_live(bus, 1)
    cancelled = asyncio.create_task(bus.publish("leases", NoteAdded("client hung up", "")))
    await asyncio.sleep(0)  # the commit is under way on the journal thread
    cancelled.cancel()
    await bus.publish("notes", NoteAdded("next", ""))
    got = [(await asyncio.wait_for(first, 5)).sequence, (await asyncio.wait_for(anext(stream), 5)).sequence]
    assert got == [1, 2]
    assert cancelled.cancelled()
