"""One port source made of several: udev for Android phones and usbmuxd for iPhones on a real kiosk.

Each source runs on its own task. When one fails (usbmuxd stopped, say) its ports are announced
detached and it is restarted with a growing backoff, while the others go on: an iPhone problem
does not take the Android ports down. :func:`without` drops one platform from a source, so that a
phone two sources see is announced once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from hwd.model.phones import Platform, PortEvent

log = logging.getLogger(__name__)

BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
QUEUE = 256

#: Opens a source's event stream (e.g. ``watcher.events``).
Opener = Callable[[], AsyncIterator[PortEvent]]


async def without(events: AsyncIterator[PortEvent], platform: Platform) -> AsyncGenerator[PortEvent, None]:
    """``events`` but the arrivals of ``platform`` phones and the removals of their ports."""
    hidden: set[str] = set()
    try:
        async for event in events:
            if event.attached and event.platform is platform:
                hidden.add(event.port)
            elif not event.attached and event.port in hidden:
                hidden.discard(event.port)
            else:
                if event.attached:
                    hidden.discard(event.port)  # another device on a port whose hidden one left unsaid
                yield event
    finally:
        await _close(events)


class MergedSource:
    """The events of several sources as one stream.

    :param openers: how to open each source's stream; a failed one is opened again after a backoff.
    :param names: names for the logs, one per opener.
    """

    def __init__(self, openers: tuple[Opener, ...], names: tuple[str, ...], *, backoff_s: float = BACKOFF_S) -> None:
        self._openers = openers
        self._names = names
        self._backoff_s = backoff_s

    async def events(self) -> AsyncGenerator[PortEvent, None]:
        """Every source's events, interleaved as they come, until cancelled or closed."""
        queue: asyncio.Queue[PortEvent] = asyncio.Queue(QUEUE)
        tasks = [
            asyncio.create_task(self._feed(opener, name, queue), name=f"port-source:{name}")
            for opener, name in zip(self._openers, self._names, strict=True)
        ]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, opener: Opener, name: str, queue: asyncio.Queue[PortEvent]) -> None:
        """Copies one source into ``queue`` for ever; after a failure, its ports leave, then it restarts."""
        delay = self._backoff_s
        while True:
            ports: set[str] = set()
            try:
                if await self._copy(opener(), ports, queue):
                    delay = self._backoff_s  # it worked for a while: a fresh failure starts the backoff again
                log.warning("port source %s ended; opening it again", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("port source %s failed (again in %.1f s): %s", name, delay, exc)
            for port in sorted(ports):  # nothing it announced can be trusted to be there
                await queue.put(PortEvent(port, attached=False))
            await asyncio.sleep(delay)  # backoff before the restart, not a polling loop
            delay = min(delay * 2, MAX_BACKOFF_S)

    @staticmethod
    async def _copy(events: AsyncIterator[PortEvent], ports: set[str], queue: asyncio.Queue[PortEvent]) -> int:
        """Copies ``events`` into ``queue``, keeping the ports attached; returns how many it copied."""
        count = 0
        try:
            async for event in events:
                count += 1
                (ports.add if event.attached else ports.discard)(event.port)
                await queue.put(event)
        finally:
            await _close(events)
        return count


async def _close(events: AsyncIterator[PortEvent]) -> None:
    close: Any = getattr(events, "aclose", None)  # an async generator may hold a socket or a thread
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
