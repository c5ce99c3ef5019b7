"""LeaseTable: one holder per device, secret lease ids, expiry on a clock, every change published."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from hwd.errors import InvalidArgument, LeaseHeld, UnknownDevice, UnknownLease
from hwd.journal import Journal
from hwd.model import LeaseChange, LeaseChanged, payload_to_json
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable

DEFAULT_TTL = 30.0
MAX_TTL = 300.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0


@pytest.fixture
async def bus(journal: Journal) -> EventBus:
    b = EventBus(journal, queue_size=64, replay_page=16)
    await b.start()
    return b


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def table(bus: EventBus, clock: FakeClock) -> LeaseTable:
    return LeaseTable(bus, {"printer", "carousel"}, DEFAULT_TTL, MAX_TTL, clock=lambda: clock.now)


async def _changes(journal: Journal) -> list[LeaseChanged]:
    events = await journal.events_after(0, 100)
    assert all(isinstance(e.payload, LeaseChanged) for e in events)
    return [e.payload for e in events if isinstance(e.payload, LeaseChanged)]


async def test_acquire_grants_a_lease_with_a_secret_id(table: LeaseTable) -> None:
    lease = await table.acquire("printer", "ui", 10)
    other = await table.acquire("carousel", "ui", 10)
    assert (lease.device, lease.holder) == ("printer", "ui")
    assert len(lease.lease_id) >= 16
    assert lease.lease_id != other.lease_id


async def test_a_held_device_is_refused_even_to_its_holder(table: LeaseTable) -> None:
    await table.acquire("printer", "kiosk-ui", 10)
    for holder in ("kiosk-ui", "tech"):
        with pytest.raises(LeaseHeld, match="kiosk-ui") as err:
            await table.acquire("printer", holder, 10)
        assert err.value.device == "printer"


async def test_an_unknown_device_is_refused(table: LeaseTable) -> None:
    with pytest.raises(UnknownDevice):
        await table.acquire("toaster", "ui", 10)


@pytest.mark.parametrize("holder", ["", "h" * 65, "a\x00b", "a\tb", "ui\n", " ui", "üi"])
async def test_a_bad_holder_is_refused(table: LeaseTable, holder: str) -> None:
    with pytest.raises(InvalidArgument):
        await table.acquire("printer", holder, 10)
    assert table.held() == []


async def test_a_64_character_holder_with_spaces_is_accepted(table: LeaseTable) -> None:
    holder = "tech " + "x" * 59
    assert (await table.acquire("printer", holder, 10)).holder == holder


async def test_a_negative_ttl_is_refused(table: LeaseTable) -> None:
    with pytest.raises(InvalidArgument):
        await table.acquire("printer", "ui", -1)
    assert table.held() == []


@pytest.mark.parametrize(("asked", "granted"), [(0, DEFAULT_TTL), (10, 10), (MAX_TTL * 10, MAX_TTL)])
async def test_the_ttl_defaults_and_is_capped(
    table: LeaseTable, clock: FakeClock, asked: float, granted: float
) -> None:
    before = time.time_ns()
    lease = await table.acquire("printer", "ui", asked)
    after = time.time_ns()
    ttl_ns = int(granted * 1e9)
    assert before + ttl_ns <= lease.expires_ns <= after + ttl_ns
    clock.now += granted - 0.001
    assert table.held() == [lease]
    clock.now += 0.002
    assert table.held() == []


async def test_check_refuses_others_only_while_the_lease_holds(table: LeaseTable, clock: FakeClock) -> None:
    table.check("printer", None)  # free
    lease = await table.acquire("printer", "ui", 10)
    with pytest.raises(LeaseHeld, match="ui"):
        table.check("printer", None)
    with pytest.raises(LeaseHeld):
        table.check("printer", "not-the-lease")
    table.check("printer", lease.lease_id)
    table.check("carousel", None)
    clock.now += 10
    table.check("printer", None)  # expired


async def test_renew_extends_the_lease_from_now(table: LeaseTable, clock: FakeClock) -> None:
    lease = await table.acquire("printer", "ui", 10)
    clock.now += 5
    renewed = await table.renew(lease.lease_id, 20)
    assert renewed.lease_id == lease.lease_id
    assert renewed.expires_ns > lease.expires_ns
    clock.now += 15  # past the first deadline, before the new one
    assert table.held() == [renewed]
    with pytest.raises(LeaseHeld):
        table.check("printer", None)


@pytest.mark.parametrize("how", ["expired", "released", "unknown", "non-ascii"])
async def test_renew_and_release_of_a_lease_not_held_fail(table: LeaseTable, clock: FakeClock, how: str) -> None:
    lease = await table.acquire("printer", "ui", 10)
    lease_id = lease.lease_id
    if how == "expired":
        clock.now += 10
    elif how == "released":
        await table.release(lease_id)
    elif how == "unknown":
        lease_id = "x" + lease_id[1:]
    else:
        lease_id = "é" + lease_id[1:]
    with pytest.raises(UnknownLease):
        await table.renew(lease_id, 10)
    with pytest.raises(UnknownLease):
        await table.release(lease_id)


async def test_release_frees_the_device(table: LeaseTable) -> None:
    lease = await table.acquire("printer", "ui", 10)
    await table.release(lease.lease_id)
    assert table.held() == []
    table.check("printer", None)
    assert (await table.acquire("printer", "tech", 10)).holder == "tech"


async def test_held_lists_unexpired_leases_only(table: LeaseTable, clock: FakeClock) -> None:
    await table.acquire("printer", "ui", 5)
    carousel = await table.acquire("carousel", "tech", 20)
    clock.now += 5
    assert table.held() == [carousel]


async def test_expire_due_drops_expired_leases_and_says_when_the_next_one_ends(
    table: LeaseTable, clock: FakeClock, journal: Journal
) -> None:
    assert await table.expire_due() is None
    await table.acquire("printer", "ui", 5)
    await table.acquire("carousel", "tech", 20)
    assert await table.expire_due() == pytest.approx(5)
    clock.now += 5
    assert await table.expire_due() == pytest.approx(15)
    assert (await _changes(journal))[-1] == LeaseChanged(LeaseChange.EXPIRED, "printer", "ui")
    assert await table.acquire("printer", "tech", 10)


async def test_concurrent_expiry_drops_and_announces_each_lease_once(
    table: LeaseTable, clock: FakeClock, journal: Journal
) -> None:
    await table.acquire("carousel", "ui", 5)
    await table.acquire("printer", "tech", 5)
    clock.now += 5
    await asyncio.gather(table.expire_due(), table.expire_due())
    expired = [c for c in await _changes(journal) if c.change is LeaseChange.EXPIRED]
    assert sorted((c.device, c.holder) for c in expired) == [("carousel", "ui"), ("printer", "tech")]


async def test_every_change_is_published_with_holder_and_device_never_the_lease_id(
    table: LeaseTable, clock: FakeClock, journal: Journal
) -> None:
    first = await table.acquire("printer", "ui", 10)
    await table.renew(first.lease_id, 10)
    await table.release(first.lease_id)
    second = await table.acquire("printer", "tech", 10)
    clock.now += 10
    await table.expire_due()
    assert await _changes(journal) == [
        LeaseChanged(LeaseChange.ACQUIRED, "printer", "ui"),
        LeaseChanged(LeaseChange.RENEWED, "printer", "ui"),
        LeaseChanged(LeaseChange.RELEASED, "printer", "ui"),
        LeaseChanged(LeaseChange.ACQUIRED, "printer", "tech"),
        LeaseChanged(LeaseChange.EXPIRED, "printer", "tech"),
    ]
    for event in await journal.events_after(0, 100):
        _, text = payload_to_json(event.payload)
        assert first.lease_id not in text
        assert second.lease_id not in text


async def _next_expired(bus: EventBus, after: int) -> LeaseChanged:
    async with contextlib.aclosing(bus.watch(after)) as stream:
        async for event in stream:
            if isinstance(event.payload, LeaseChanged) and event.payload.change is LeaseChange.EXPIRED:
                return event.payload
    raise AssertionError("the event stream ended")


@pytest.fixture
async def expiring(bus: EventBus) -> AsyncIterator[LeaseTable]:
    """A table on the real monotonic clock with its expiry task running."""
    table = LeaseTable(bus, {"printer", "carousel"}, DEFAULT_TTL, MAX_TTL)
    task = asyncio.create_task(table.run_expiry(), name="lease-expiry")
    yield table
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_run_expiry_announces_an_expiry_on_its_own(expiring: LeaseTable, bus: EventBus) -> None:
    after = bus.last_sequence
    await expiring.acquire("printer", "ui", 0.05)
    expired = await asyncio.wait_for(_next_expired(bus, after), 5)
    assert expired == LeaseChanged(LeaseChange.EXPIRED, "printer", "ui")
    assert expiring.held() == []


async def test_run_expiry_rearms_for_an_earlier_new_deadline(expiring: LeaseTable, bus: EventBus) -> None:
    await expiring.acquire("printer", "ui", MAX_TTL)
    for _ in range(5):  # loop turns (not time): let run_expiry arm itself for the long lease
        await asyncio.sleep(0)
    after = bus.last_sequence
    await expiring.acquire("carousel", "tech", 0.05)
    expired = await asyncio.wait_for(_next_expired(bus, after), 5)
    assert expired == LeaseChanged(LeaseChange.EXPIRED, "carousel", "tech")
