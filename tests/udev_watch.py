"""Prints what :class:`hwd.discovery.UdevWatcher` sees, one JSON object per line, for the udev tests.

``python tests/udev_watch.py --list``: the phones present, then exits.
``python tests/udev_watch.py``: every event until stdin closes, then ``{"closed": ..., "udev_threads": N}``
(N: udev threads still alive after the stream was closed; 0 when closing stopped it).
Run it under umockdev (``umockdev-run`` or a ``UMockdev.Testbed``) to see mocked devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import threading
from collections.abc import AsyncIterator

from hwd.discovery.udev import THREAD_NAME, UdevWatcher
from hwd.errors import HwdError
from hwd.model.phones import PortEvent


def emit(document: dict[str, object]) -> None:
    print(json.dumps(document), flush=True)


def as_json(event: PortEvent) -> dict[str, object]:
    doc = dataclasses.asdict(event)
    doc["platform"] = event.platform.value if event.platform else None
    return doc


async def follow(stream: AsyncIterator[PortEvent]) -> None:
    async for event in stream:
        emit({"event": as_json(event)})


async def main(list_only: bool) -> int:
    watcher = UdevWatcher()
    if list_only:
        for event in await watcher.present():
            emit({"event": as_json(event)})
        return 0
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stream = watcher.events()
    watching = asyncio.create_task(follow(stream))
    eof = asyncio.create_task(stdin.read())
    try:
        await asyncio.wait({watching, eof}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            watching.result()  # raises the watcher's error
    except HwdError as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        for task in (watching, eof):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, HwdError):
                await task
        await stream.aclose()
        transport.close()
    alive = sum(1 for t in threading.enumerate() if t.name == THREAD_NAME)
    emit({"closed": True, "udev_threads": alive})
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main("--list" in sys.argv[1:])))
