"""Named, supervised tasks: a crash is logged, counted and restarted with backoff, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Supervisor:
    """Runs long-lived coroutines and restarts them when they crash.

    :param backoff: seconds before the first restart; doubles per crash up to ``max_backoff``.
    """

    def __init__(self, backoff: float = 0.2, max_backoff: float = 30.0) -> None:
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Runs ``factory()`` as task ``name``; a crash restarts it, a normal return ends it."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} already runs")
        self.restarts[name] = 0
        self._tasks[name] = asyncio.create_task(self._guard(name, factory), name=name)

    async def _guard(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = self._backoff
        while True:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts[name] += 1
                log.exception("task %s crashed (restart %s in %.1f s)", name, self.restarts[name], delay)
                await asyncio.sleep(delay)  # backoff before the restart, not a polling loop
                delay = min(delay * 2, self._max_backoff)
            else:
                log.info("task %s finished", name)
                self._tasks.pop(name, None)  # the name may be started again
                return

    def running(self) -> list[str]:
        """Names of the tasks still running."""
        return sorted(name for name, task in self._tasks.items() if not task.done())

    async def stop(self) -> None:
        """Cancels every task and waits for them to end."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
