"""Forgetting a phone that left: the reader's ``release`` (an iPhone's pair records deleted), each on
a task of its own with a deadline, so that a slow one never stalls discovery and none outlives the
service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hwd.model.phones import PortEvent

log = logging.getLogger(__name__)

Release = Callable[[PortEvent], Awaitable[None]]


class Releases:
    """The releases under way.

    :param deadline_s: how long one release may take; past it, it is cancelled and logged.
    """

    def __init__(self, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, reader: object, event: PortEvent) -> None:
        """Calls ``reader.release(event)`` on a task, when the reader has one (errors logged, never raised)."""
        release: Any = getattr(reader, "release", None)
        if release is None:
            return
        task = asyncio.create_task(self._run(release, event), name=f"phone-release:{event.port}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Waits for the releases under way (each ends within its deadline)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, release: Release, event: PortEvent) -> None:
        try:
            async with asyncio.timeout(self._deadline_s):
                await release(event)
        except TimeoutError:
            log.error("forgetting the phone %s of port %s took more than %.1f s", event.serial, event.port,
                      self._deadline_s)  # fmt: skip
        except Exception:  # the port is ABSENT whatever happens here
            log.exception("forgetting the phone %s of port %s failed", event.serial, event.port)
