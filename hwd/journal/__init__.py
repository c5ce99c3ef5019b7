"""The journal: an async front for :class:`JournalStore`, which runs on one dedicated thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hwd.errors import HwdError, JournalUnavailable
from hwd.journal.store import JournalStore
from hwd.model import CommandRecord, CommandState, Event, EventPayload
from hwd.model.camera import EvidenceRecord

__all__ = ["Journal", "JournalStore"]

T = TypeVar("T")
_Pending = tuple[str, EventPayload, "asyncio.Future[Event]"]


def _unavailable(exc: Exception) -> HwdError:
    """The error a caller sees when the journal failed with ``exc``."""
    return exc if isinstance(exc, HwdError) else JournalUnavailable(f"journal write failed: {exc}", device="journal")


class Journal:
    """Async access to the journal file; every call runs on the journal's one thread, in order.

    :param path: the SQLite file (``journal.sqlite3`` in the state directory).
    """

    def __init__(self, path: Path) -> None:
        self.store = JournalStore(path)
        self._thread: ThreadPoolExecutor | None = None
        # Events waiting for the next group commit; shared with the journal thread, under the lock.
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._batches: set[asyncio.Future[None]] = set()

    async def open(self) -> None:
        """Starts the journal thread and opens the file. :raises JournalUnavailable:"""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        await self._run(self.store.open)

    async def close(self) -> None:
        """Closes the file and stops the thread, after every call already queued."""
        if self._thread is not None:
            await self._run(self.store.close)
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise JournalUnavailable("journal is not open", device="journal")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn)
        except HwdError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from exc

    async def append_event(self, source: str, payload: EventPayload) -> Event:
        """Commits one event. :returns: it, with its sequence number, once it is on disk.

        Group commit: the events appended while the journal thread is busy are committed together
        in one transaction (one fsync) when it is free, in the order they were appended. Under load
        that turns one fsync per event into one per batch; alone, an event waits for nothing.

        :raises JournalUnavailable: the event could not be committed.
        """
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        with self._pending_lock:
            self._pending.append((source, payload, future))
            first = len(self._pending) == 1
        if first:  # later events join this batch until the journal thread takes it
            task = asyncio.ensure_future(self._commit_batch())
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        return await asyncio.shield(future)

    async def _commit_batch(self) -> None:
        def take_and_commit() -> tuple[list[_Pending], list[Event] | Exception]:
            # Taken on the journal thread, as late as possible: the batch holds every event appended
            # while the thread was busy with the write before.
            with self._pending_lock:
                batch, self._pending = self._pending, []
            try:
                return batch, self.store.append_events([(source, payload) for source, payload, _ in batch])
            except (HwdError, sqlite3.Error, OSError) as exc:
                return batch, exc

        try:
            batch, outcome = await self._run(take_and_commit)
        except HwdError as exc:  # the journal is not open: the batch was never taken
            with self._pending_lock:
                batch, self._pending = self._pending, []
            outcome = exc
        for index, (*_, future) in enumerate(batch):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(_unavailable(outcome))
            else:
                future.set_result(outcome[index])

    async def events_after(self, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` committed events after sequence ``after``, oldest first."""
        return await self._run(lambda: self.store.events_after(after, limit))

    async def last_sequence(self) -> int:
        """The newest sequence handed out (0 when none)."""
        return await self._run(self.store.last_sequence)

    async def begin_command(self, record: CommandRecord) -> CommandRecord:
        """Journals a PENDING command, or returns the first one with its request id."""
        return await self._run(lambda: self.store.begin_command(record))

    async def finish_command(
        self, request_id: str, state: CommandState, outcome: object = None, error: object = None
    ) -> None:
        """Records how a command ended."""
        await self._run(lambda: self.store.finish_command(request_id, state, outcome, error))

    async def get_command(self, request_id: str) -> CommandRecord | None:
        """The command journaled under ``request_id``, if any."""
        return await self._run(lambda: self.store.get_command(request_id))

    async def mark_unfinished_unknown(self) -> list[CommandRecord]:
        """Turns commands left PENDING by a crash into OUTCOME_UNKNOWN and returns them."""
        return await self._run(self.store.mark_unfinished_unknown)

    async def add_evidence(self, record: EvidenceRecord) -> None:
        """Commits one evidence row (write its file first)."""
        await self._run(lambda: self.store.add_evidence(record))

    async def list_evidence(self, session_id: str | None = None) -> list[EvidenceRecord]:
        """Evidence rows, oldest first: all, or those of one phone session."""
        return await self._run(lambda: self.store.list_evidence(session_id))

    async def evidence_count(self) -> int:
        """How many evidence rows there are."""
        return await self._run(self.store.evidence_count)

    async def evidence_beyond(self, keep: int) -> list[EvidenceRecord]:
        """The evidence rows past the newest ``keep``, oldest first."""
        return await self._run(lambda: self.store.evidence_beyond(keep))

    async def delete_evidence(self, evidence_ids: list[str]) -> int:
        """Deletes these evidence rows. :returns: how many went."""
        return await self._run(lambda: self.store.delete_evidence(evidence_ids))
