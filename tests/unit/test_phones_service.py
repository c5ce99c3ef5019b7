"""PhonesService with a scripted port source and scripted readers: every transition and its event,
unplug at any point, replug, refresh, watchers, and a clean stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hwd.errors import DeviceNotReady, DeviceUnavailable, PhoneError, ShuttingDown, UnknownPort
from hwd.journal import Journal
from hwd.model import DeviceState, PortChanged
from hwd.model.phones import Field, PhoneReport, Platform, PortEvent, PortState, PortStatus
from hwd.services.events import EventBus
from hwd.services.phones import WATCH_BACKLOG, PhonesService
from hwd.services.phones_states import DEBUGGING_HINT, WAITING_DETAIL
from hwd.services.registry import DeviceRegistry

PORT = "1-1.1"
PIXEL = PortEvent(PORT, True, Platform.ANDROID, "PIXEL7", "tcp:127.0.0.1:5555", True, "Google Pixel 7")
PROMPT = "Allow USB debugging? The computer's RSA key fingerprint is: 12:34"
REPORT = PhoneReport(
    Platform.ANDROID,
    model=Field.of("Pixel 7", "adb:getprop ro.product.model"),
    imei=Field.of("358240051111110", "adb:service call iphonesubinfo 1"),
    frp_likely=Field.of(False, "adb:dumpsys account"),
)
FRP_REPORT = PhoneReport(Platform.ANDROID, frp_likely=Field.of(True, "adb:dumpsys account"))


@dataclass
class Script:
    """What one phone does: wait to connect, maybe prompt and wait for the answer, then identify."""

    prompt_s: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: PhoneError | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    read: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    report: PhoneReport = REPORT

    def go(self) -> Script:
        """Lets every step happen at once."""
        for gate in (self.answered, self.connected, self.read):
            gate.set()
        return self


class FakeReader:
    """Plays the script of each serial; counts identifications and the connections still open."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.calls = 0
        self.open = 0
        self.cancelled = 0
        self.released: list[PortEvent] = []
        self.release_error: BaseException | None = None
        self.was_released = asyncio.Event()

    async def release(self, event: PortEvent) -> None:
        """Forgets the phone (an iPhone's pair records); may fail as the test says."""
        self.released.append(event)
        self.was_released.set()
        if self.release_error is not None:
            raise self.release_error

    async def identify(self, event: PortEvent, on_prompt: object, on_identifying: object) -> PhoneReport:
        assert callable(on_prompt)
        assert callable(on_identifying)
        script = self.scripts[event.serial]
        self.calls += 1
        self.open += 1
        try:
            await script.connected.wait()
            if script.prompt_s is not None:
                await on_prompt(PROMPT, script.prompt_s)
                await script.answered.wait()
                if script.refuse is not None:
                    raise script.refuse
            await on_identifying()
            await script.read.wait()
            if script.error is not None:
                raise script.error
            return script.report
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.open -= 1


class FakeSource:
    """Port events pushed by the test; ``end()`` ends discovery."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PortEvent | None] = asyncio.Queue()
        self.closed = False

    async def events(self) -> AsyncGenerator[PortEvent, None]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.closed = True

    def plug(self, event: PortEvent = PIXEL) -> None:
        self.queue.put_nowait(event)

    def unplug(self, port: str = PORT) -> None:
        self.queue.put_nowait(PortEvent(port, False))

    def end(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class Rig:
    service: PhonesService
    source: FakeSource
    reader: FakeReader
    registry: DeviceRegistry
    journal: Journal
    task: asyncio.Task[None]
    watch: AsyncIterator[PortStatus]

    async def until(self, state: PortState, port: str = PORT) -> PortStatus:
        """Reads the watch stream until ``port`` is in ``state`` (a guard ends a hang, not a timing check)."""
        async with asyncio.timeout(10):
            async for status in self.watch:
                if status.port == port and status.state is state:
                    return status
        raise AssertionError("watch ended")

    async def changes(self, port: str = PORT) -> list[PortChanged]:
        events = await self.journal.events_after(0, 10_000)
        return [e.payload for e in events if isinstance(e.payload, PortChanged) and e.payload.port == port]

    async def states(self, port: str = PORT) -> list[str]:
        return [c.state for c in await self.changes(port)]


async def _rig(
    journal: Journal, *, ports: tuple[str, ...] = (), deadline: float | None = None, ios: bool = False, **options: Any
) -> Rig:
    bus = EventBus(journal, queue_size=1000, replay_page=100)
    await bus.start()
    registry = DeviceRegistry(bus)
    source, reader = FakeSource(), FakeReader()
    readers = {Platform.ANDROID: reader, **({Platform.IOS: reader} if ios else {})}
    service = PhonesService(source, readers, registry, bus, ports=ports, identify_deadline_s=deadline, **options)
    task = asyncio.create_task(service.run())
    return Rig(service, source, reader, registry, journal, task, aiter(service.watch()))


@pytest.fixture
async def rig(journal: Journal) -> AsyncIterator[Rig]:
    r = await _rig(journal, ports=("1-1.2",))
    yield r
    r.task.cancel()
    await asyncio.gather(r.task, return_exceptions=True)
    await r.watch.aclose()  # type: ignore[attr-defined]
    assert r.service.running() == []
    assert r.reader.open == 0


# --- the port table -------------------------------------------------------------------------------


async def test_configured_ports_show_absent_and_unknown_ports_are_refused(rig: Rig) -> None:
    empty = await rig.until(PortState.ABSENT, "1-1.2")
    assert (empty.session_id, empty.platform, empty.report) == ("", None, None)
    assert [p.port for p in rig.service.ports()] == ["1-1.2"]
    assert rig.registry.get("port:1-1.2").state is DeviceState.NO_DEVICE
    assert rig.service.session_of("1-1.2") is None
    with pytest.raises(UnknownPort):
        rig.service.get("9-9")
    assert rig.service.session_of("9-9") is None


async def test_a_phone_moves_through_every_state_to_ready_with_an_event_each(rig: Rig) -> None:
    rig.reader.scripts["PIXEL7"] = script = Script(prompt_s=30)
    before = time.time_ns()
    rig.source.plug()

    enumerating = await rig.until(PortState.ENUMERATING)
    assert (enumerating.platform, enumerating.detail) == (Platform.ANDROID, "Google Pixel 7")
    session = enumerating.session_id
    assert len(session) == 32
    assert rig.service.session_of(PORT) == session
    script.connected.set()
    waiting = await rig.until(PortState.AWAITING_TRUST)
    assert (waiting.trust_prompt, waiting.recovery_hint, waiting.detail) == (PROMPT, PROMPT, WAITING_DETAIL)
    assert before + 30 * 10**9 <= waiting.trust_deadline_ns <= time.time_ns() + 30 * 10**9
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.BUSY
    assert rig.registry.get(f"port:{PORT}").reason == "AWAITING_TRUST"
    script.answered.set()
    identifying = await rig.until(PortState.IDENTIFYING)
    assert (identifying.trust_deadline_ns, identifying.trust_prompt, identifying.report) == (0, "", None)
    script.read.set()
    ready = await rig.until(PortState.READY)

    assert (ready.reason, ready.report, ready.session_id, ready.platform) == ("OK", REPORT, session, Platform.ANDROID)
    assert rig.service.get(PORT) == ready
    assert await rig.states() == ["ENUMERATING", "AWAITING_TRUST", "IDENTIFYING", "READY"]
    assert {(c.session_id, c.platform) for c in await rig.changes()} == {(session, "ANDROID")}
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.ONLINE
    assert rig.service.running() == []


async def test_a_phone_with_frp_likely_is_locked(rig: Rig) -> None:
    rig.reader.scripts["PIXEL7"] = Script(report=FRP_REPORT).go()
    rig.source.plug()

    locked = await rig.until(PortState.LOCKED)

    assert (locked.reason, locked.report) == ("FRP_LIKELY", FRP_REPORT)
    assert "Google account" in locked.recovery_hint
    assert await rig.states() == ["ENUMERATING", "IDENTIFYING", "LOCKED"]


@pytest.mark.parametrize("code", ["TRUST_REFUSED", "TRUST_TIMEOUT"])
async def test_a_refused_or_ignored_prompt_is_denied(rig: Rig, code: str) -> None:
    rig.reader.scripts["PIXEL7"] = Script(prompt_s=5, refuse=PhoneError("the customer said no", code=code)).go()
    rig.source.plug()

    denied = await rig.until(PortState.DENIED)

    assert (denied.reason, denied.detail) == (code, "the customer said no")
    assert "plug it in again" in denied.recovery_hint
    assert await rig.states() == ["ENUMERATING", "AWAITING_TRUST", "DENIED"]
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.USER_ERROR


@pytest.mark.parametrize(
    "code", ["PHONE_STALLED", "PHONE_DISCONNECTED", "PHONE_PROTOCOL_ERROR", "PHONE_OUTPUT_TOO_LARGE", "PHONE_TOO_SLOW"]
)
async def test_a_failed_read_is_an_error_with_the_phone_reason(rig: Rig, code: str) -> None:
    rig.reader.scripts["PIXEL7"] = Script(error=PhoneError(f"it went wrong: {code}", code=code)).go()
    rig.source.plug()

    error = await rig.until(PortState.ERROR)

    assert (error.reason, error.detail) == (code, f"it went wrong: {code}")
    assert error.recovery_hint
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.HARDWARE_ERROR
    assert rig.registry.get(f"port:{PORT}").reason == code


async def test_a_reader_bug_is_an_error_not_a_port_stuck_identifying(rig: Rig) -> None:
    rig.reader.scripts["PIXEL7"] = Script(error=KeyError("ro.product.model")).go()
    rig.source.plug()

    assert (await rig.until(PortState.ERROR)).reason == "INTERNAL"


async def test_an_identification_past_the_deadline_is_too_slow(journal: Journal) -> None:
    r = await _rig(journal, deadline=0.05)
    r.reader.scripts["PIXEL7"] = Script()  # never connects
    r.source.plug()

    error = await r.until(PortState.ERROR)

    assert error.reason == "PHONE_TOO_SLOW"
    assert r.reader.open == 0
    r.task.cancel()
    await asyncio.gather(r.task, return_exceptions=True)
    await r.watch.aclose()  # type: ignore[attr-defined]


async def test_usb_debugging_off_is_unsupported_with_how_to_turn_it_on(rig: Rig) -> None:
    rig.source.plug(PortEvent(PORT, True, Platform.ANDROID, "R58M", debuggable=False, description="Samsung"))

    unsupported = await rig.until(PortState.UNSUPPORTED)

    assert (unsupported.reason, unsupported.recovery_hint) == ("USB_DEBUGGING_OFF", DEBUGGING_HINT)
    assert "USB debugging" in DEBUGGING_HINT
    assert rig.reader.calls == 0
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.USER_ERROR


async def test_a_reader_finding_no_adb_interface_is_unsupported(rig: Rig) -> None:
    rig.reader.scripts["PIXEL7"] = Script(error=PhoneError("no ADB interface", code="USB_DEBUGGING_OFF")).go()
    rig.source.plug()

    unsupported = await rig.until(PortState.UNSUPPORTED)

    assert (unsupported.reason, unsupported.recovery_hint) == ("USB_DEBUGGING_OFF", DEBUGGING_HINT)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (PortEvent(PORT, True, None, description="SanDisk Cruzer"), "NOT_A_PHONE"),
        (PortEvent(PORT, True, Platform.IOS, "00008110-0001", "usbmux:00008110-0001"), "PLATFORM_NOT_SUPPORTED"),
    ],
)
async def test_a_device_without_a_reader_is_unsupported(rig: Rig, event: PortEvent, reason: str) -> None:
    rig.source.plug(event)

    unsupported = await rig.until(PortState.UNSUPPORTED)

    assert unsupported.reason == reason
    assert unsupported.recovery_hint
    assert rig.reader.calls == 0


# --- unplug, replug, the same device again ------------------------------------------------------


async def _to(rig: Rig, state: PortState) -> Script:
    """Plugs the Pixel and holds it in ``state``."""
    script = rig.reader.scripts["PIXEL7"] = Script(prompt_s=30)
    rig.source.plug()
    gates = {
        PortState.ENUMERATING: [],
        PortState.AWAITING_TRUST: [script.connected],
        PortState.IDENTIFYING: [script.connected, script.answered],
        PortState.READY: [script.connected, script.answered, script.read],
    }
    for gate in gates[state]:
        gate.set()
    await rig.until(state)
    return script


@pytest.mark.parametrize(
    "state", [PortState.ENUMERATING, PortState.AWAITING_TRUST, PortState.IDENTIFYING, PortState.READY]
)
async def test_unplug_at_any_state_is_absent_at_once_and_leaves_nothing(rig: Rig, state: PortState) -> None:
    await _to(rig, state)

    rig.source.unplug()
    absent = await rig.until(PortState.ABSENT)

    assert (absent.session_id, absent.platform, absent.report, absent.trust_prompt) == ("", None, None, "")
    assert rig.service.session_of(PORT) is None
    assert rig.service.running() == []
    assert rig.reader.open == 0
    assert rig.reader.cancelled == (0 if state is PortState.READY else 1)
    assert (await rig.states())[-1] == "ABSENT"
    assert rig.registry.get(f"port:{PORT}").state is DeviceState.NO_DEVICE


async def test_a_replug_starts_a_fresh_session(rig: Rig) -> None:
    await _to(rig, PortState.READY)
    first = rig.service.get(PORT).session_id
    rig.source.unplug()
    await rig.until(PortState.ABSENT)

    rig.reader.scripts["PIXEL7"] = Script().go()
    rig.source.plug()
    again = await rig.until(PortState.READY)

    assert again.session_id not in ("", first)
    assert rig.reader.calls == 2
    sessions = [c.session_id for c in await rig.changes() if c.state == "ENUMERATING"]
    assert sessions == [first, again.session_id]


async def test_the_same_device_announced_again_keeps_its_session(rig: Rig) -> None:
    await _to(rig, PortState.READY)
    ready = rig.service.get(PORT)

    rig.source.plug()  # e.g. discovery restarted and lists what is present
    rig.source.plug(PortEvent("1-1.2", True, None, description="a hub"))
    await rig.until(PortState.UNSUPPORTED, "1-1.2")

    assert rig.service.get(PORT) == ready
    assert rig.reader.calls == 1


async def test_another_device_on_a_taken_port_replaces_the_session(rig: Rig) -> None:
    await _to(rig, PortState.IDENTIFYING)
    first = rig.service.get(PORT).session_id

    rig.source.plug(PortEvent(PORT, True, None, description="a keyboard"))
    unsupported = await rig.until(PortState.UNSUPPORTED)

    assert unsupported.session_id not in ("", first)
    assert rig.reader.open == 0
    assert (await rig.states())[-3:] == ["ABSENT", "ENUMERATING", "UNSUPPORTED"]


# --- refresh ------------------------------------------------------------------------------------


async def test_refresh_reads_the_phone_again_in_the_same_session(rig: Rig) -> None:
    await _to(rig, PortState.READY)
    session = rig.service.get(PORT).session_id
    newer = PhoneReport(Platform.ANDROID, model=Field.of("Pixel 7", "adb:getprop ro.product.model"))
    rig.reader.scripts["PIXEL7"] = Script(report=newer).go()

    refreshed = await rig.service.refresh(PORT)

    assert (refreshed.state, refreshed.report, refreshed.session_id) == (PortState.READY, newer, session)
    assert rig.reader.calls == 2
    assert (await rig.states())[-2:] == ["IDENTIFYING", "READY"]


async def test_two_refreshes_at_once_read_the_phone_once(rig: Rig) -> None:
    await _to(rig, PortState.READY)
    rig.reader.scripts["PIXEL7"] = script = Script()
    script.connected.set()
    first = asyncio.create_task(rig.service.refresh(PORT))
    await rig.until(PortState.IDENTIFYING)
    second = asyncio.create_task(rig.service.refresh(PORT))
    script.read.set()

    assert (await first).state is (await second).state is PortState.READY
    assert rig.reader.calls == 2


async def test_refresh_after_an_error_can_reach_ready(rig: Rig) -> None:
    rig.reader.scripts["PIXEL7"] = Script(error=PhoneError("stalled", code="PHONE_STALLED")).go()
    rig.source.plug()
    await rig.until(PortState.ERROR)
    rig.reader.scripts["PIXEL7"] = Script().go()

    assert (await rig.service.refresh(PORT)).state is PortState.READY


@pytest.mark.parametrize("state", [PortState.ENUMERATING, PortState.AWAITING_TRUST])
async def test_refresh_before_the_phone_is_connected_is_refused(rig: Rig, state: PortState) -> None:
    await _to(rig, state)
    with pytest.raises(DeviceNotReady):
        await rig.service.refresh(PORT)
    with pytest.raises(DeviceNotReady):
        await rig.service.refresh("1-1.2")  # configured, empty
    with pytest.raises(UnknownPort):
        await rig.service.refresh("9-9")


async def test_unplug_during_refresh_returns_the_absent_port(rig: Rig) -> None:
    await _to(rig, PortState.READY)
    rig.reader.scripts["PIXEL7"] = Script()
    refreshing = asyncio.create_task(rig.service.refresh(PORT))
    await rig.until(PortState.IDENTIFYING)

    rig.source.unplug()

    assert (await refreshing).state is PortState.ABSENT
    assert rig.reader.open == 0


# --- watchers, stop, discovery ------------------------------------------------------------------


async def test_a_slow_watcher_loses_intermediate_states_but_gets_the_latest(rig: Rig) -> None:
    slow = aiter(rig.service.watch())
    assert (await anext(slow)).port == "1-1.2"  # subscribed, then it stops reading
    for n in range(WATCH_BACKLOG):
        rig.reader.scripts[f"S{n}"] = Script().go()
        rig.source.plug(PortEvent(f"2-{n}", True, Platform.ANDROID, f"S{n}"))
    for n in range(WATCH_BACKLOG):
        await rig.until(PortState.READY, f"2-{n}")
    rig.source.plug(PortEvent("3-1", True, None))
    await rig.until(PortState.UNSUPPORTED, "3-1")

    seen: list[PortStatus] = []
    while not seen or seen[-1].port != "3-1" or seen[-1].state is not PortState.UNSUPPORTED:
        seen.append(await anext(slow))

    assert len(seen) < 3 * WATCH_BACKLOG, "the backlog was compacted"
    latest = {s.port: s for s in seen}
    assert all(latest[f"2-{n}"].state is PortState.READY for n in range(WATCH_BACKLOG))
    assert latest["3-1"] == rig.service.get("3-1")


async def _drain(watcher: AsyncIterator[PortStatus]) -> None:
    async for _ in watcher:
        pass


async def test_stop_ends_sessions_and_watchers_and_ignores_later_arrivals(rig: Rig) -> None:
    await _to(rig, PortState.IDENTIFYING)
    watcher = aiter(rig.service.watch())

    await rig.service.stop()

    assert rig.service.running() == []
    assert rig.reader.open == 0
    with pytest.raises(ShuttingDown):
        await _drain(watcher)
    rig.source.plug(PortEvent("1-1.3", True, None))
    rig.source.end()
    await asyncio.gather(rig.task, return_exceptions=True)
    assert "1-1.3" not in [p.port for p in rig.service.ports()]


async def test_when_discovery_ends_every_port_is_absent_and_run_fails(rig: Rig) -> None:
    await _to(rig, PortState.IDENTIFYING)

    rig.source.end()

    with pytest.raises(DeviceUnavailable):
        await rig.task
    assert rig.service.get(PORT).state is PortState.ABSENT
    assert rig.source.closed
    assert rig.reader.open == 0


# --- iPhones: the USB reset after Trust, LOCKED, pair records released ---------------------------

UDID = "00008110-001A2D3E0C12801E"
IPHONE = PortEvent(PORT, True, Platform.IOS, UDID, f"usbmux:{UDID}", True, "simulated iphone-13")
IOS_REPORT = PhoneReport(
    Platform.IOS,
    imei=Field.of("356789101234567", "lockdown:InternationalMobileEquipmentIdentity"),
    activation_state=Field.of("Activated", "lockdown:ActivationState"),
)


def ios_lock(report: PhoneReport) -> tuple[bool, str]:
    """The rule under test's stand-in: locked unless the activation state was read and is Activated."""
    state = report.activation_state
    if not state.available:
        return True, "the activation lock state could not be read"
    return state.value != "Activated", "ACTIVATION_LOCK"


@pytest.fixture
async def ios(journal: Journal) -> AsyncIterator[Rig]:
    r = await _rig(journal, ios=True, reset_grace_s=30.0, lock_rules={Platform.IOS: ios_lock})
    yield r
    r.task.cancel()
    await asyncio.gather(r.task, return_exceptions=True)
    await r.watch.aclose()  # type: ignore[attr-defined]
    assert r.service.running() == []
    assert r.reader.open == 0


async def _trusting(rig: Rig, report: PhoneReport = IOS_REPORT) -> Script:
    script = rig.reader.scripts[UDID] = Script(prompt_s=30, report=report)
    script.connected.set()
    rig.source.plug(IPHONE)
    await rig.until(PortState.AWAITING_TRUST)
    return script


async def test_an_iphone_resetting_its_usb_after_trust_keeps_its_session(ios: Rig) -> None:
    script = await _trusting(ios)
    session = ios.service.get(PORT).session_id

    ios.source.unplug()  # Trust tapped: the phone leaves the bus and comes back
    ios.source.plug(IPHONE)
    script.answered.set()
    script.read.set()
    ready = await ios.until(PortState.READY)

    assert ready.session_id == session
    assert ios.reader.calls == 1  # the same identification went on
    assert ios.reader.cancelled == 0
    details = [c.detail for c in await ios.changes()]
    assert "the phone is restarting its USB connection after Trust" in details
    assert "the phone is back after restarting its USB connection" in details
    assert "ABSENT" not in (await ios.states())[1:]


async def test_an_iphone_not_back_within_the_grace_is_absent_and_released(journal: Journal) -> None:
    rig = await _rig(journal, ios=True, reset_grace_s=0.05)
    try:
        await _trusting(rig)
        rig.source.unplug()
        absent = await rig.until(PortState.ABSENT)
        assert absent.session_id == ""
        await _released(rig)
        assert rig.reader.released == [IPHONE]
        assert rig.reader.cancelled == 1
    finally:
        await rig.service.stop()
        rig.task.cancel()
        await asyncio.gather(rig.task, return_exceptions=True)


async def _released(rig: Rig) -> None:
    async with asyncio.timeout(10):  # a guard against a hang: the release runs on a task of its own
        await rig.reader.was_released.wait()


async def test_another_phone_on_the_port_during_the_reset_is_a_new_session(ios: Rig) -> None:
    await _trusting(ios)
    session = ios.service.get(PORT).session_id
    ios.source.unplug()
    ios.reader.scripts["PIXEL7"] = Script().go()
    ios.source.plug(PIXEL)
    ready = await ios.until(PortState.READY)
    assert ready.session_id != session
    assert ready.platform is Platform.ANDROID
    await _released(ios)
    assert ios.reader.released == [IPHONE]


async def test_an_android_phone_leaving_while_prompting_is_absent_at_once(ios: Rig) -> None:
    ios.reader.scripts["PIXEL7"] = Script(prompt_s=30)
    ios.reader.scripts["PIXEL7"].connected.set()
    ios.source.plug(PIXEL)
    await ios.until(PortState.AWAITING_TRUST)
    ios.source.unplug()
    await ios.until(PortState.ABSENT)
    assert ios.reader.cancelled == 1


async def test_a_ready_iphone_leaving_is_absent_at_once_and_its_records_released(ios: Rig) -> None:
    script = await _trusting(ios)
    script.go()
    await ios.until(PortState.READY)
    ios.source.unplug()
    await ios.until(PortState.ABSENT)
    await _released(ios)
    assert ios.reader.released == [IPHONE]


async def test_a_failing_release_is_logged_and_the_port_stays_usable(ios: Rig) -> None:
    ios.reader.release_error = PhoneError("usbmuxd refused DeletePairRecord", code="PHONE_FAILED")
    script = await _trusting(ios)
    script.go()
    await ios.until(PortState.READY)
    ios.source.unplug()
    await ios.until(PortState.ABSENT)
    await _released(ios)
    ios.source.plug(IPHONE)
    assert (await ios.until(PortState.READY)).report == IOS_REPORT


@pytest.mark.parametrize(
    ("activation", "state", "reason"),
    [
        (Field.of("Activated", "lockdown:ActivationState"), PortState.READY, "OK"),
        (Field.of("Unactivated", "lockdown:ActivationState"), PortState.LOCKED, "ACTIVATION_LOCK"),
        (Field.unknown("lockdown:ActivationState", "no reply"), PortState.LOCKED, "ACTIVATION_LOCK"),
    ],
)
async def test_an_iphone_is_locked_unless_its_lock_state_is_known_clear(
    ios: Rig, activation: Field, state: PortState, reason: str
) -> None:
    script = await _trusting(ios, PhoneReport(Platform.IOS, activation_state=activation))
    script.go()
    final = await ios.until(state)
    assert final.reason == reason
    if state is PortState.LOCKED:
        assert "Find My" in final.recovery_hint


async def test_a_lock_rule_that_fails_counts_as_locked(journal: Journal) -> None:
    def broken(report: PhoneReport) -> tuple[bool, str]:
        raise KeyError("ActivationState")

    rig = await _rig(journal, ios=True, lock_rules={Platform.IOS: broken})
    try:
        rig.reader.scripts[UDID] = Script(report=IOS_REPORT).go()
        rig.source.plug(IPHONE)
        locked = await rig.until(PortState.LOCKED)
        assert "could not be decided" in locked.detail
    finally:
        await rig.service.stop()
        rig.task.cancel()
        await asyncio.gather(rig.task, return_exceptions=True)
