"""CommandRunner: one action per request id, the first outcome on repeat, crashes become OUTCOME_UNKNOWN."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from hwd.errors import DeviceNotReady, InvalidArgument, OutcomeUnknown, RequestIdReused
from hwd.journal import Journal, JournalStore
from hwd.model import CommandOutcomeUnknown, CommandRecord, CommandState, Event
from hwd.services.commands import CommandRunner, Outcome, params_hash
from hwd.services.events import EventBus

PRINT = "/hwd.v1.Printer/Print"


async def _runner(journal: Journal) -> tuple[CommandRunner, EventBus]:
    bus = EventBus(journal, queue_size=64, replay_page=16)
    await bus.start()
    return CommandRunner(journal, bus), bus


class Action:
    """Counts its calls and returns ``{"n": <call number>}``."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Outcome:
        self.calls += 1
        return {"n": self.calls}


class GatedAction(Action):
    """Blocks each call until ``gate`` is set; ``entered`` is set once a call is running."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self) -> Outcome:
        self.entered.set()
        await self.gate.wait()
        return await super().__call__()


async def _first_events(bus: EventBus, count: int) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(5), contextlib.aclosing(bus.watch(0)) as stream:
        async for event in stream:
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_the_same_request_id_returns_the_first_outcome_without_acting_again(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    action = Action()
    first = await runner.run("r1", PRINT, {"text": "hi"}, "ui", action)
    again = await runner.run("r1", PRINT, {"text": "hi"}, "ui", action)
    assert first == again == {"n": 1}
    assert action.calls == 1


async def test_another_request_id_acts_again(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    action = Action()
    await runner.run("r1", PRINT, {"text": "hi"}, "ui", action)
    assert await runner.run("r2", PRINT, {"text": "hi"}, "ui", action) == {"n": 2}


@pytest.mark.parametrize(
    ("method", "params"),
    [(PRINT, {"text": "other"}), ("/hwd.v1.BinLock/Unlock", {"text": "hi"})],
    ids=["other-params", "other-method"],
)
async def test_the_same_request_id_for_another_command_is_rejected(
    journal: Journal, method: str, params: dict[str, Any]
) -> None:
    runner, _ = await _runner(journal)
    action = Action()
    await runner.run("r1", PRINT, {"text": "hi"}, "ui", action)
    with pytest.raises(RequestIdReused):
        await runner.run("r1", method, params, "ui", action)
    assert action.calls == 1


async def test_concurrent_calls_with_one_request_id_act_once_and_share_the_outcome(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    action = GatedAction()
    calls = [asyncio.create_task(runner.run("r1", PRINT, {"text": "hi"}, "ui", action)) for _ in range(3)]
    await asyncio.wait_for(action.entered.wait(), 5)
    action.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [{"n": 1}] * 3
    assert action.calls == 1


async def test_a_concurrent_call_with_the_same_id_and_other_params_is_rejected(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    action = GatedAction()
    first = asyncio.create_task(runner.run("r1", PRINT, {"text": "hi"}, "ui", action))
    await asyncio.wait_for(action.entered.wait(), 5)
    with pytest.raises(RequestIdReused):
        await runner.run("r1", PRINT, {"text": "other"}, "ui", action)
    action.gate.set()
    assert await asyncio.wait_for(first, 5) == {"n": 1}
    assert action.calls == 1


async def test_a_failed_command_repeats_its_error_without_acting_again(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    calls = 0

    async def fails() -> Outcome:
        nonlocal calls
        calls += 1
        raise DeviceNotReady("paper out", device="printer", hint="load paper", metadata={"sensor": "paper"})

    for _ in range(2):
        with pytest.raises(DeviceNotReady) as err:
            await runner.run("r1", PRINT, {}, "ui", fails)
        assert (err.value.message, err.value.device, err.value.hint) == ("paper out", "printer", "load paper")
        assert err.value.metadata == {"sensor": "paper"}
    assert calls == 1


@pytest.mark.parametrize("request_id", ["", "a" * 129, "a b", "a/b", "abc\n", "é"])
async def test_a_malformed_request_id_is_refused_before_acting(journal: Journal, request_id: str) -> None:
    runner, _ = await _runner(journal)
    action = Action()
    with pytest.raises(InvalidArgument):
        await runner.run(request_id, PRINT, {}, "ui", action)
    assert action.calls == 0


async def test_the_longest_request_id_with_every_allowed_character_is_accepted(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    request_id = ("Az09._:-" * 16)[:128]
    assert await runner.run(request_id, PRINT, {}, "ui", Action()) == {"n": 1}


async def test_an_outcome_survives_a_journal_reopen(tmp_path: Path) -> None:
    action = Action()
    for _ in range(2):
        journal = Journal(tmp_path / "j.sqlite3")
        await journal.open()
        try:
            runner, _ = await _runner(journal)
            assert await runner.run("r1", PRINT, {"text": "hi"}, "ui", action) == {"n": 1}
        finally:
            await journal.close()
    assert action.calls == 1


async def test_a_command_left_pending_by_a_crash_becomes_outcome_unknown_and_is_never_redone(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    store = JournalStore(path)
    store.open()
    digest = params_hash(PRINT, {"text": "hi"})
    store.begin_command(CommandRecord("r1", PRINT, digest, CommandState.PENDING, "ui", 1234))
    store.close()

    journal = Journal(path)
    await journal.open()
    try:
        runner, bus = await _runner(journal)
        recovered = await runner.recover()
        assert [(r.request_id, r.state) for r in recovered] == [("r1", CommandState.OUTCOME_UNKNOWN)]
        [event] = await _first_events(bus, 1)
        assert event.payload == CommandOutcomeUnknown("r1", PRINT, 1234)
        action = Action()
        with pytest.raises(OutcomeUnknown):
            await runner.run("r1", PRINT, {"text": "hi"}, "ui", action)
        assert action.calls == 0
        assert await runner.recover() == [], "recovery must not report the same command twice"
    finally:
        await journal.close()


async def test_a_cancelled_caller_does_not_cut_the_action(journal: Journal) -> None:
    runner, _ = await _runner(journal)
    action = GatedAction()
    caller = asyncio.create_task(runner.run("r1", PRINT, {}, "ui", action))
    await asyncio.wait_for(action.entered.wait(), 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    action.gate.set()
    assert await asyncio.wait_for(runner.run("r1", PRINT, {}, "ui", action), 5) == {"n": 1}
    assert action.calls == 1
    stored = journal.store.get_command("r1")
    assert stored is not None
    assert (stored.state, stored.outcome) == (CommandState.SUCCEEDED, {"n": 1})


async def test_an_unexpected_exception_leaves_the_outcome_unknown_and_says_so(journal: Journal) -> None:
    runner, bus = await _runner(journal)

    async def breaks() -> Outcome:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await runner.run("r1", PRINT, {}, "ui", breaks)
    stored = journal.store.get_command("r1")
    assert stored is not None
    assert stored.state is CommandState.OUTCOME_UNKNOWN
    [event] = await _first_events(bus, 1)
    assert event.payload == CommandOutcomeUnknown("r1", PRINT, stored.started_ns)
    with pytest.raises(OutcomeUnknown):
        await runner.run("r1", PRINT, {}, "ui", breaks)
