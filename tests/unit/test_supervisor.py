"""Supervisor: a crashed task is logged, counted and restarted; a finished one is left alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from hwd.services.supervisor import Supervisor


async def _until(condition: Callable[[], bool]) -> None:
    """Lets the loop run until ``condition()`` holds (a 5 s deadline, not a timing assertion)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - counts loop turns, not time
            await asyncio.sleep(0)


async def test_a_crashing_task_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(backoff=0.001)
    calls = 0
    up = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError(f"crash {calls}")
        up.set()
        await asyncio.Event().wait()

    sup.start("flaky-reader", flaky)
    try:
        await asyncio.wait_for(up.wait(), 5)
        assert sup.restarts["flaky-reader"] == 2
        assert sup.running() == ["flaky-reader"]
    finally:
        await sup.stop()
    crashes = [r for r in caplog.records if r.name == "hwd.services.supervisor" and r.levelno >= logging.ERROR]
    assert len(crashes) == 2
    assert all("flaky-reader" in r.getMessage() and r.exc_info for r in crashes)
    assert [str(r.exc_info[1]) for r in crashes if r.exc_info] == ["crash 1", "crash 2"]


async def test_a_task_that_returns_is_not_restarted() -> None:
    sup = Supervisor(backoff=0.001)
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # yields, so that a wrong restart loop cannot starve the test's deadline

    sup.start("once", once)
    try:
        await _until(lambda: not sup.running())
        assert calls == 1
        assert sup.restarts["once"] == 0
        sup.start("once", once)  # a finished task's name may be used again
        await _until(lambda: not sup.running())
        assert calls == 2
    finally:
        await sup.stop()


async def test_stop_cancels_running_tasks() -> None:
    sup = Supervisor(backoff=0.001)
    cancelled: list[str] = []
    started = asyncio.Event()

    def forever(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return run

    sup.start("a", forever("a"))
    sup.start("b", forever("b"))
    await asyncio.wait_for(started.wait(), 5)
    assert sup.running() == ["a", "b"]
    await sup.stop()
    assert sup.running() == []
    assert sorted(cancelled) == ["a", "b"]


async def test_a_duplicate_name_is_refused() -> None:
    sup = Supervisor(backoff=0.001)

    async def idle() -> None:
        await asyncio.Event().wait()

    sup.start("dup", idle)
    try:
        with pytest.raises(ValueError, match="dup"):
            sup.start("dup", idle)
        assert sup.running() == ["dup"]
    finally:
        await sup.stop()
