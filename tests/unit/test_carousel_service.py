"""CarouselService over the in-memory FakeCarousel: status, selection, idempotency, motion events, polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from hwd.errors import DeviceNotReady, DeviceUnavailable, HardwareFault, InvalidArgument, LeaseHeld
from hwd.journal import Journal
from hwd.model import (
    CableTest,
    CarouselMotion,
    CarouselState,
    Connector,
    DeviceState,
    DeviceStatusChanged,
    EventPayload,
    MotionPhase,
)
from hwd.services.carousel import CarouselService
from hwd.services.commands import CommandRunner
from hwd.services.controllers import FakeCarousel
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable
from hwd.services.registry import DeviceRegistry

T = TypeVar("T")
USB_C, LIGHTNING, MICRO_USB = Connector.USB_C, Connector.LIGHTNING, Connector.MICRO_USB
MIXED = (USB_C, LIGHTNING, MICRO_USB, LIGHTNING, USB_C, LIGHTNING)


@dataclass
class Rig:
    svc: CarouselService
    fake: FakeCarousel
    registry: DeviceRegistry
    bus: EventBus
    leases: LeaseTable
    journal: Journal

    async def payloads(self) -> list[EventPayload]:
        return [e.payload for e in await self.journal.events_after(0, 10_000)]

    async def motions(self) -> list[CarouselMotion]:
        return [p for p in await self.payloads() if isinstance(p, CarouselMotion)]


async def _rig(
    journal: Journal, fake: FakeCarousel | None = None, slots: tuple[Connector, ...] = (), **kwargs: Any
) -> Rig:
    bus = EventBus(journal, queue_size=256, replay_page=64)
    await bus.start()
    registry = DeviceRegistry(bus)
    leases = LeaseTable(bus, {"carousel", "lock"}, default_ttl=30, max_ttl=60)
    fake = fake if fake is not None else FakeCarousel(MIXED)
    svc = CarouselService(
        fake, registry, bus, CommandRunner(journal, bus), leases,
        slots=slots, poll_s=0.001, move_timeout_s=kwargs.pop("move_timeout_s", 0.5), **kwargs,
    )  # fmt: skip
    return Rig(svc, fake, registry, bus, leases, journal)


async def _homed(journal: Journal, fake: FakeCarousel | None = None, **kwargs: Any) -> Rig:
    rig = await _rig(journal, fake, **kwargs)
    await rig.svc.home("home-0", "ui", None)
    return rig


def _slot(rig: Rig) -> int | None:
    """The slot in position at the service's last reading."""
    assert rig.svc.current is not None
    return rig.svc.current.current_slot


async def _eventually(check: Callable[[], bool]) -> None:
    """Waits (bounded) until ``check`` holds."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - the poller's next reading, not a timed wait
            await asyncio.sleep(0.001)


class JamOnMove(FakeCarousel):
    """Jams between slots on the next ``jams`` moves instead of arriving."""

    def __init__(self, connectors: tuple[Connector, ...] = MIXED, jams: int = 1) -> None:
        super().__init__(connectors)
        self.jams = jams

    async def move(self, slot: int) -> int:
        if self.jams == 0:
            return await super().move(slot)
        self.jams -= 1
        counter = self._accept()
        self.jam()
        return counter


class GatedMove(FakeCarousel):
    """Each move waits for ``gate``; records how many moves were in progress at once."""

    def __init__(self) -> None:
        super().__init__(MIXED)
        self.gate = asyncio.Event()
        self.active = 0
        self.most_active = 0
        self.moves = 0

    async def move(self, slot: int) -> int:
        self.active += 1
        self.moves += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await self.gate.wait()
            return await super().move(slot)
        finally:
            self.active -= 1


class Unreachable(FakeCarousel):
    """A carousel that can be taken off the bus: while ``reachable`` is False it cannot be opened."""

    def __init__(self) -> None:
        super().__init__(MIXED)
        self.reachable = True

    async def open(self) -> None:
        if not self.reachable:
            raise DeviceUnavailable("no answer on the bus", device="fake")
        await super().open()

    async def state(self) -> CarouselState:
        if not self.reachable:
            await self.close()
        return await super().state()


# -- status --------------------------------------------------------------------------------------


async def test_a_carousel_not_homed_is_online_not_homed_with_a_hint(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.refresh()
    status = rig.registry.get("carousel")
    assert (status.state, status.reason) == (DeviceState.ONLINE, "NOT_HOMED")
    assert "home" in status.recovery_hint.lower()


async def test_a_jam_is_a_hardware_error_whose_hint_says_to_home(journal: Journal) -> None:
    rig = await _homed(journal)
    rig.fake.jam()
    await rig.svc.refresh()
    status = rig.registry.get("carousel")
    assert (status.state, status.reason) == (DeviceState.HARDWARE_ERROR, "JAM")
    assert "home" in status.recovery_hint.lower()


async def test_configured_slots_that_differ_from_the_controller_name_the_slot(journal: Journal) -> None:
    configured = (USB_C, USB_C, MICRO_USB, LIGHTNING, USB_C, LIGHTNING)  # slot 1 differs from MIXED
    rig = await _homed(journal, slots=configured)
    status = rig.registry.get("carousel")
    assert (status.state, status.reason) == (DeviceState.HARDWARE_ERROR, "SLOT_MAP_MISMATCH")
    assert "slot 1" in status.detail
    assert "slot 0" not in status.detail
    assert status.recovery_hint


async def test_a_configured_slot_count_that_differs_from_the_controller_is_a_mismatch(journal: Journal) -> None:
    rig = await _homed(journal, slots=MIXED[:4])
    status = rig.registry.get("carousel")
    assert (status.state, status.reason) == (DeviceState.HARDWARE_ERROR, "SLOT_MAP_MISMATCH")
    assert "configured 4 slots" in status.detail
    assert "6" in status.detail


async def test_a_homed_carousel_matching_its_configuration_is_online_ok(journal: Journal) -> None:
    rig = await _homed(journal, slots=MIXED)
    status = rig.registry.get("carousel")
    assert (status.state, status.reason) == (DeviceState.ONLINE, "OK")


async def test_refresh_publishes_the_status_change_through_the_registry(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.refresh()
    await rig.svc.refresh()  # the same condition again: no second event
    changes = [p for p in await rig.payloads() if isinstance(p, DeviceStatusChanged)]
    assert [(c.status.device, c.status.state, c.status.reason) for c in changes] == [
        ("carousel", DeviceState.ONLINE, "NOT_HOMED")
    ]
    assert rig.svc.current is not None
    assert rig.svc.identity.startswith("HW 0x0c01")


# -- select --------------------------------------------------------------------------------------


async def test_select_by_connector_presents_the_first_slot_holding_it(journal: Journal) -> None:
    rig = await _homed(journal)
    assert await rig.svc.select("s1", "ui", None, connector=LIGHTNING, slot=None) == {
        "slot": 1,
        "connector": "LIGHTNING",
    }
    assert _slot(rig) == 1


@pytest.mark.parametrize("bad", [CableTest.OPEN, CableTest.SHORT])
async def test_select_by_connector_skips_a_slot_whose_cable_failed_its_test(journal: Journal, bad: CableTest) -> None:
    rig = await _homed(journal)
    rig.fake.cable_results[1] = bad
    assert await rig.svc.test_cable("t1", "tech", None, 1) == {"result": bad.name}
    await rig.svc.home("home-1", "tech", None)  # a short faults the controller; homing clears it
    outcome = await rig.svc.select("s1", "ui", None, connector=LIGHTNING, slot=None)
    assert outcome == {"slot": 3, "connector": "LIGHTNING"}


async def test_select_by_connector_after_a_passing_test_keeps_the_first_slot(journal: Journal) -> None:
    rig = await _homed(journal)
    await rig.svc.test_cable("t1", "tech", None, 1)
    assert (await rig.svc.select("s1", "ui", None, connector=LIGHTNING, slot=None))["slot"] == 1


async def test_select_by_connector_with_no_working_cable_names_the_connector(journal: Journal) -> None:
    rig = await _homed(journal)
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.select("s1", "ui", None, connector=Connector.USB_A, slot=None)
    assert caught.value.metadata["field"] == "connector"


@pytest.mark.parametrize("slot", [-1, 6, 99])
async def test_select_by_slot_out_of_range_names_the_slot_field(journal: Journal, slot: int) -> None:
    rig = await _homed(journal)
    before = rig.fake.counter
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.select("s1", "ui", None, connector=None, slot=slot)
    assert caught.value.metadata["field"] == "slot"
    assert rig.fake.counter == before


@pytest.mark.parametrize("connector", [None, Connector.EMPTY])
async def test_select_without_a_target_names_the_target_field(journal: Journal, connector: Connector | None) -> None:
    rig = await _homed(journal)
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.select("s1", "ui", None, connector=connector, slot=None)
    assert caught.value.metadata["field"] == "target"


async def test_select_while_not_homed_is_device_not_ready(journal: Journal) -> None:
    rig = await _rig(journal)
    await rig.svc.refresh()
    with pytest.raises(DeviceNotReady):
        await rig.svc.select("s1", "ui", None, connector=None, slot=2)
    assert rig.fake.counter == 0
    assert await rig.motions() == []


async def test_select_before_the_first_poll_reads_the_controller_instead_of_rejecting_the_slot(
    journal: Journal,
) -> None:
    rig = await _rig(journal)
    await rig.fake.open()
    await rig.fake.home()
    assert (await rig.svc.select("s1", "ui", None, connector=None, slot=2))["slot"] == 2


async def test_select_while_the_poller_has_the_controller_offline_is_device_unavailable(journal: Journal) -> None:
    fake = Unreachable()
    rig = await _homed(journal, fake)
    fake.reachable = False
    task = asyncio.create_task(rig.svc.run())
    try:
        await _eventually(lambda: rig.registry.get("carousel").state is DeviceState.OFFLINE)
        with pytest.raises(DeviceUnavailable):
            await rig.svc.select("s1", "ui", None, connector=None, slot=2)
        with pytest.raises(DeviceUnavailable):
            await rig.svc.select("s2", "ui", None, connector=LIGHTNING, slot=None)
        with pytest.raises(DeviceUnavailable):
            await rig.svc.test_cable("t1", "tech", None, 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_lease_held_by_someone_else_refuses_select_and_its_lease_id_lets_it_through(
    journal: Journal,
) -> None:
    rig = await _homed(journal)
    lease = await rig.leases.acquire("carousel", "kiosk-ui", ttl=30)
    before = rig.fake.counter
    for other in (None, "not-the-lease"):
        with pytest.raises(LeaseHeld):
            await rig.svc.select("s1", "ui", other, connector=None, slot=2)
    assert rig.fake.counter == before
    assert (await rig.svc.select("s1", "ui", lease.lease_id, connector=None, slot=2))["slot"] == 2


async def test_a_repeated_request_id_does_not_move_again(journal: Journal) -> None:
    rig = await _homed(journal)
    first = await rig.svc.select("s1", "ui", None, connector=None, slot=4)
    after_first = rig.fake.counter
    await rig.svc.select("s2", "ui", None, connector=None, slot=0)  # moves away
    after_second = rig.fake.counter
    again = await rig.svc.select("s1", "ui", None, connector=None, slot=4)
    assert again == first
    assert after_second == after_first + 1
    assert rig.fake.counter == after_second
    assert _slot(rig) == 0


async def test_a_move_publishes_started_then_arrived(journal: Journal) -> None:
    rig = await _homed(journal)
    await rig.svc.select("s1", "ui", None, connector=None, slot=3)
    assert [(m.phase, m.target_slot) for m in await rig.motions()][-2:] == [
        (MotionPhase.STARTED, 3),
        (MotionPhase.ARRIVED, 3),
    ]
    started = (await rig.motions())[-2]
    assert started.current_slot == 0  # where it came from: home is slot 0


async def test_a_jam_during_a_move_is_a_hardware_fault_with_a_failed_motion(journal: Journal) -> None:
    rig = await _homed(journal, JamOnMove())
    with pytest.raises(HardwareFault) as caught:
        await rig.svc.select("s1", "ui", None, connector=None, slot=3)
    assert "home" in caught.value.hint.lower()
    phases = [m.phase for m in await rig.motions()]
    assert phases[-2:] == [MotionPhase.STARTED, MotionPhase.FAILED]
    assert MotionPhase.ARRIVED not in phases[phases.index(MotionPhase.STARTED, 1) :]
    assert rig.registry.get("carousel").reason == "JAM"
    with pytest.raises(HardwareFault):  # the failure is the recorded outcome of that request id
        await rig.svc.select("s1", "ui", None, connector=None, slot=3)


async def test_homing_after_a_jam_recovers(journal: Journal) -> None:
    rig = await _homed(journal, JamOnMove())
    with pytest.raises(HardwareFault):
        await rig.svc.select("s1", "ui", None, connector=None, slot=3)
    with pytest.raises(DeviceNotReady):
        await rig.svc.select("s2", "ui", None, connector=None, slot=3)
    assert await rig.svc.home("home-1", "tech", None) == {"slot": 0}
    assert (rig.registry.get("carousel").state, rig.registry.get("carousel").reason) == (DeviceState.ONLINE, "OK")
    assert (await rig.svc.select("s3", "ui", None, connector=None, slot=3))["slot"] == 3


async def test_test_cable_returns_the_controllers_result_and_remembers_it(journal: Journal) -> None:
    fake = FakeCarousel(MIXED, cable_results={2: CableTest.OPEN})
    rig = await _homed(journal, fake)
    assert await rig.svc.test_cable("t2", "tech", None, 2) == {"result": "OPEN"}
    assert await rig.svc.test_cable("t4", "tech", None, 4) == {"result": "PASS"}
    assert rig.svc.cable_tests == {2: CableTest.OPEN, 4: CableTest.PASS}
    assert _slot(rig) == 4


async def test_test_cable_of_a_slot_out_of_range_names_the_slot_field(journal: Journal) -> None:
    rig = await _homed(journal)
    with pytest.raises(InvalidArgument) as caught:
        await rig.svc.test_cable("t9", "tech", None, 9)
    assert caught.value.metadata["field"] == "slot"


async def test_two_concurrent_selects_run_one_after_the_other(journal: Journal) -> None:
    fake = GatedMove()
    rig = await _rig(journal, fake)
    await rig.svc.home("home-0", "ui", None)
    arrived = 0
    plain = rig.svc.one_at_a_time

    async def counting(action: Callable[[], Awaitable[T]]) -> T:
        nonlocal arrived
        arrived += 1
        return await plain(action)

    rig.svc.one_at_a_time = counting  # type: ignore[method-assign]
    first = asyncio.create_task(rig.svc.select("s1", "ui", None, connector=None, slot=2))
    second = asyncio.create_task(rig.svc.select("s2", "ui", None, connector=None, slot=4))
    await _eventually(lambda: arrived == 2 and fake.moves == 1)
    await asyncio.sleep(0.05)  # room for a second move to start, were it allowed to
    assert fake.active == 1
    fake.gate.set()
    assert {(await first)["slot"], (await second)["slot"]} == {2, 4}
    assert fake.moves == 2
    assert fake.most_active == 1


# -- polling -------------------------------------------------------------------------------------


async def test_run_marks_a_silent_controller_offline_and_online_again_without_restarting(
    journal: Journal,
) -> None:
    fake = Unreachable()
    rig = await _rig(journal, fake)
    task = asyncio.create_task(rig.svc.run())
    try:
        await _eventually(lambda: "carousel" in rig.registry and rig.registry.get("carousel").reason == "NOT_HOMED")
        fake.reachable = False
        await _eventually(lambda: rig.registry.get("carousel").state is DeviceState.OFFLINE)
        status = rig.registry.get("carousel")
        assert status.reason == DeviceUnavailable.reason
        assert "no answer" in status.detail or "not open" in status.detail
        assert rig.svc.current is None
        fake.reachable = True
        await _eventually(lambda: rig.registry.get("carousel").state is DeviceState.ONLINE)
        assert rig.registry.get("carousel").reason == "NOT_HOMED"
        assert rig.svc.current is not None
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    states = [p.status.state for p in await rig.payloads() if isinstance(p, DeviceStatusChanged)]
    assert states == [DeviceState.ONLINE, DeviceState.OFFLINE, DeviceState.ONLINE]


async def test_watch_yields_none_while_offline_then_the_state_again(journal: Journal) -> None:
    fake = Unreachable()
    rig = await _rig(journal, fake)
    await rig.svc.refresh()
    seen: list[CarouselState | None] = []
    task = asyncio.create_task(rig.svc.run())
    try:
        async with asyncio.timeout(5), contextlib.aclosing(rig.svc.watch()) as states:
            async for state in states:
                seen.append(state)
                if len(seen) == 1:
                    fake.reachable = False
                elif state is None:
                    fake.reachable = True
                else:
                    break
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen[0] is not None
    assert seen[1] is None
    assert seen[-1] is not None
