"""BinLockService over the in-memory FakeBinLock: validation, journaled intent, alarms, sensors, fail-secure stop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from hwd.errors import DeviceUnavailable, HardwareFault, InvalidArgument, LeaseHeld
from hwd.journal import Journal
from hwd.model import Alarm, DeviceState, EventPayload, LockCommanded, LockSensors, LockState
from hwd.services import binlock
from hwd.services.binlock import BinLockService
from hwd.services.commands import CommandRunner
from hwd.services.controllers import FakeBinLock
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable
from hwd.services.registry import DeviceRegistry

REASON = "collect the phones bought today"


@dataclass
class Rig:
    svc: BinLockService
    fake: FakeBinLock
    registry: DeviceRegistry
    leases: LeaseTable
    journal: Journal

    async def payloads(self) -> list[EventPayload]:
        return [e.payload for e in await self.journal.events_after(0, 10_000)]

    async def alarms(self) -> list[str]:
        return [p.code for p in await self.payloads() if isinstance(p, Alarm)]

    async def sensors(self) -> list[LockSensors]:
        return [p for p in await self.payloads() if isinstance(p, LockSensors)]

    async def commanded(self) -> list[LockCommanded]:
        return [p for p in await self.payloads() if isinstance(p, LockCommanded)]

    async def status(self) -> tuple[DeviceState, str]:
        await self.svc.refresh()
        status = self.registry.get("lock")
        return status.state, status.reason


async def _rig(journal: Journal, fake: FakeBinLock | None = None, **kwargs: Any) -> Rig:
    bus = EventBus(journal, queue_size=256, replay_page=64)
    await bus.start()
    registry = DeviceRegistry(bus)
    leases = LeaseTable(bus, {"carousel", "lock"}, default_ttl=30, max_ttl=60)
    fake = fake if fake is not None else FakeBinLock()
    svc = BinLockService(fake, registry, bus, CommandRunner(journal, bus), leases, poll_s=0.001, **kwargs)
    await svc.refresh()
    return Rig(svc, fake, registry, leases, journal)


class SeesTheJournal(FakeBinLock):
    """Notes the newest journaled event at the moment the unlock output is written."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.last_before_unlock: EventPayload | None = None

    async def unlock(self, relock_after_s: int) -> int:
        self.last_before_unlock = (await self.journal.events_after(0, 10_000))[-1].payload
        return await super().unlock(relock_after_s)


class SlowBolt(FakeBinLock):
    """The bolt sensor reports the bolt still out for the first ``lag`` readings after an unlock."""

    def __init__(self, lag: int = 3) -> None:
        super().__init__()
        self.lag = lag
        self.reads_after_unlock = 0

    async def unlock(self, relock_after_s: int) -> int:
        self.reads_after_unlock = 0
        return await super().unlock(relock_after_s)

    async def state(self) -> LockState:
        st = await super().state()
        if st.unlock_output:
            self.reads_after_unlock += 1
            if self.reads_after_unlock <= self.lag:
                return dataclasses.replace(st, bolt_extended=True)
        return st


class JammedBolt(FakeBinLock):
    """The bolt stays out when unlocked; with ``reports`` the controller raises BOLT_JAMMED."""

    def __init__(self, *, reports: bool) -> None:
        super().__init__()
        self.reports = reports

    async def state(self) -> LockState:
        st = await super().state()
        if st.unlock_output:
            st = dataclasses.replace(st, bolt_extended=True, fault=self.reports, fault_code=int(self.reports))
        return st


class OpenDoorClock(FakeBinLock):
    """Reports ``open_s`` as how long the door has been open (the fake itself never counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.open_s = 0

    async def state(self) -> LockState:
        st = await super().state()
        return dataclasses.replace(st, door_open_s=0 if st.door_closed else self.open_s)


# -- unlock --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "x" * 257])
async def test_unlock_needs_a_reason_of_1_to_256_characters(journal: Journal, reason: str) -> None:
    rig = await _rig(journal)
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.unlock("u1", "tech", None, reason, 30)
    assert caught.value.metadata["field"] == "reason"
    assert rig.fake.counter == 0
    assert await rig.commanded() == []


@pytest.mark.parametrize("relock", [-1, 601])
async def test_unlock_relock_delay_out_of_range_names_the_field(journal: Journal, relock: int) -> None:
    rig = await _rig(journal)
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.unlock("u1", "tech", None, REASON, relock)
    assert caught.value.metadata["field"] == "relock_after"
    assert rig.fake.counter == 0


async def test_unlock_accepts_the_limits(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.unlock("u1", "tech", None, "x" * 256, 600)
    await rig.svc.lock("l1", "tech", None, clear_alarm=False)
    await rig.svc.unlock("u2", "tech", None, "x", 0)
    assert [c.relock_after_s for c in await rig.commanded() if c.action == "unlock"] == [600, 0]


async def test_unlock_journals_its_intent_before_the_output_moves(journal: Journal) -> None:
    fake = SeesTheJournal(journal)
    rig = await _rig(journal, fake)
    await rig.svc.unlock("u1", "ui", None, REASON, 45)
    assert fake.last_before_unlock == LockCommanded("unlock", REASON, "ui", "u1", 45)


async def test_unlock_returns_once_the_bolt_is_in(journal: Journal) -> None:
    fake = SlowBolt(lag=3)
    rig = await _rig(journal, fake)
    outcome = await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert fake.reads_after_unlock > 3
    assert rig.svc.current is not None
    assert not rig.svc.current.bolt_extended
    assert outcome == {"counter": fake.counter}


async def test_a_repeated_request_id_unlocks_once(journal: Journal) -> None:
    rig = await _rig(journal)
    first = await rig.svc.unlock("u1", "tech", None, REASON, 30)
    await rig.svc.lock("l1", "tech", None, clear_alarm=False)
    again = await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert again == first
    assert rig.fake.counter == 2  # one unlock, one lock
    assert (await rig.status())[1] == "LOCKED"
    assert [c.action for c in await rig.commanded()] == ["unlock", "lock"]


async def test_a_lease_held_by_someone_else_refuses_unlock(journal: Journal) -> None:
    rig = await _rig(journal)
    lease = await rig.leases.acquire("lock", "kiosk-ui", ttl=30)
    with pytest.raises(LeaseHeld):
        await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert rig.fake.counter == 0
    await rig.svc.unlock("u1", "tech", lease.lease_id, REASON, 30)
    assert rig.fake.counter == 1


async def test_a_jammed_bolt_reported_by_the_controller_is_a_hardware_fault(journal: Journal) -> None:
    rig = await _rig(journal, JammedBolt(reports=True))
    with pytest.raises(HardwareFault) as caught:
        await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert "BOLT_JAMMED" in caught.value.message
    assert (await rig.status())[0] is DeviceState.HARDWARE_ERROR


async def test_a_bolt_that_silently_stays_out_is_a_hardware_fault(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binlock, "BOLT_TIMEOUT_S", 0.02)
    rig = await _rig(journal, JammedBolt(reports=False))
    with pytest.raises(HardwareFault) as caught:
        await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert "still locked" in caught.value.message


# -- lock and alarms -----------------------------------------------------------------------------


async def test_lock_with_clear_alarm_clears_a_latched_forced_door(journal: Journal) -> None:
    rig = await _rig(journal)
    rig.fake.set_door(closed=False)  # opened with the bolt out
    rig.fake.set_door(closed=True)
    assert await rig.status() == (DeviceState.TAMPERED, "DOOR_FORCED")
    await rig.svc.lock("l1", "tech", None, clear_alarm=True)
    assert await rig.status() == (DeviceState.ONLINE, "LOCKED")


async def test_lock_with_clear_alarm_clears_a_tamper_the_poller_has_not_read_yet(journal: Journal) -> None:
    rig = await _rig(journal)
    rig.fake.set_door(closed=False)
    rig.fake.set_door(closed=True)
    await rig.svc.lock("l1", "tech", None, clear_alarm=True)
    assert await rig.status() == (DeviceState.ONLINE, "LOCKED")


async def test_lock_without_clear_alarm_leaves_the_alarm_latched(journal: Journal) -> None:
    rig = await _rig(journal)
    rig.fake.set_door(closed=False)
    rig.fake.set_door(closed=True)
    await rig.svc.refresh()
    await rig.svc.lock("l1", "ui", None, clear_alarm=False)
    assert await rig.status() == (DeviceState.TAMPERED, "DOOR_FORCED")


async def test_lock_after_an_unlock_waits_for_the_bolt_and_journals_the_intent(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.unlock("u1", "tech", None, REASON, 30)
    assert (await rig.status())[1] == "UNLOCKED"
    await rig.svc.lock("l1", "tech", None, clear_alarm=False)
    assert rig.svc.current is not None
    assert rig.svc.current.locked
    assert (await rig.commanded())[-1] == LockCommanded("lock", "", "tech", "l1", 0)


async def test_a_forced_door_is_tampered_with_a_hint(journal: Journal) -> None:
    rig = await _rig(journal)
    rig.fake.set_door(closed=False)
    await rig.svc.refresh()
    status = rig.registry.get("lock")
    assert (status.state, status.reason) == (DeviceState.TAMPERED, "DOOR_FORCED")
    assert "clear the alarm" in status.recovery_hint


async def test_a_door_open_too_long_is_a_user_error(journal: Journal) -> None:
    fake = OpenDoorClock()
    rig = await _rig(journal, fake, door_alarm_s=120)
    await rig.svc.unlock("u1", "ui", None, REASON, 300)
    fake.set_door(closed=False)
    fake.open_s = 119
    assert await rig.status() == (DeviceState.ONLINE, "UNLOCKED")
    fake.open_s = 120
    assert await rig.status() == (DeviceState.USER_ERROR, "DOOR_LEFT_OPEN")
    assert rig.registry.get("lock").recovery_hint


async def test_a_forced_door_alarms_once_however_often_it_is_read(journal: Journal) -> None:
    rig = await _rig(journal)
    rig.fake.set_door(closed=False)
    for _ in range(5):
        await rig.svc.refresh()
    assert await rig.alarms() == ["DOOR_FORCED"]


async def test_a_door_left_open_alarms_again_after_it_was_closed(journal: Journal) -> None:
    fake = OpenDoorClock()
    rig = await _rig(journal, fake, door_alarm_s=120)
    await rig.svc.unlock("u1", "ui", None, REASON, 300)
    fake.set_door(closed=False)
    fake.open_s = 150
    for _ in range(3):
        await rig.svc.refresh()
    assert await rig.alarms() == ["DOOR_LEFT_OPEN"]
    fake.set_door(closed=True)
    await rig.svc.refresh()
    fake.set_door(closed=False)  # the bolt is still in: not forced
    for _ in range(3):
        await rig.svc.refresh()
    assert await rig.alarms() == ["DOOR_LEFT_OPEN", "DOOR_LEFT_OPEN"]


async def test_sensor_events_only_on_change(journal: Journal) -> None:
    rig = await _rig(journal)
    for _ in range(3):
        await rig.svc.refresh()
    await rig.svc.unlock("u1", "tech", None, REASON, 30)
    for _ in range(3):
        await rig.svc.refresh()
    assert await rig.sensors() == [
        LockSensors(bolt_extended=True, door_closed=True, unlocked=False, tamper=False, forced=False),
        LockSensors(bolt_extended=False, door_closed=True, unlocked=True, tamper=False, forced=False),
    ]


# -- stop ----------------------------------------------------------------------------------------


async def test_safe_stop_locks(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.unlock("u1", "tech", None, REASON, 300)
    await rig.svc.safe_stop()
    assert await rig.status() == (DeviceState.ONLINE, "LOCKED")


async def test_safe_stop_does_not_raise_when_the_controller_is_unavailable(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.fake.close()
    await rig.svc.safe_stop()
    with pytest.raises(DeviceUnavailable):
        await rig.fake.lock()
