"""The journal keeps events and commands across restarts and refuses what it cannot read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hwd.errors import JournalUnavailable
from hwd.journal import Journal
from hwd.journal.store import MIGRATIONS, JournalStore
from hwd.model import CommandRecord, CommandState, Event, EventPayload, NoteAdded


def _store(path: Path) -> JournalStore:
    store = JournalStore(path)
    store.open()
    return store


def test_sequences_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    store = _store(path)
    assert [store.append_event("notes", NoteAdded(f"n{i}", "t")).sequence for i in range(3)] == [1, 2, 3]
    store.close()
    store = _store(path)
    assert store.last_sequence() == 3
    assert store.append_event("notes", NoteAdded("after", "t")).sequence == 4
    events = store.events_after(2, 10)
    assert [(e.sequence, e.payload) for e in events] == [(3, NoteAdded("n2", "t")), (4, NoteAdded("after", "t"))]
    store.close()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    db = store._conn
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(JournalUnavailable, match="newer than this hwd"):
        JournalStore(path).open()


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalUnavailable, match="cannot open journal"):
        JournalStore(path).open()


def test_commands_keep_their_first_record_and_crash_leftovers_become_unknown(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    first = CommandRecord("r1", "/m", "h1", CommandState.PENDING, "tech", 1)
    assert store.begin_command(first) is first
    again = store.begin_command(CommandRecord("r1", "/m", "h2", CommandState.PENDING, "ui", 2))
    assert (again.params_hash, again.role) == ("h1", "tech")
    store.begin_command(CommandRecord("r2", "/m", "h", CommandState.PENDING, "tech", 3))
    store.finish_command("r2", CommandState.SUCCEEDED, outcome={"sequence": 7})
    unknown = store.mark_unfinished_unknown()
    assert [(r.request_id, r.state) for r in unknown] == [("r1", CommandState.OUTCOME_UNKNOWN)]
    r2 = store.get_command("r2")
    assert r2 is not None
    assert (r2.state, r2.outcome) == (CommandState.SUCCEEDED, {"sequence": 7})
    assert store.mark_unfinished_unknown() == []
    store.close()


def test_an_unreadable_event_is_a_journal_error_naming_it(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    store.append_event("notes", NoteAdded("fine", "t"))
    store._conn.execute("INSERT INTO events(time_ns, source, kind, payload) VALUES (1, 'x', 'FromTheFuture', '{}')")
    with pytest.raises(JournalUnavailable, match="journal event 2 cannot be read"):
        store.events_after(0, 10)
    assert [e.sequence for e in store.events_after(0, 1)] == [1]
    store.close()


async def test_events_appended_together_share_commits_and_keep_their_order(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    commit = journal.store.append_events

    def counted(items: list[tuple[str, EventPayload]], time_ns: int | None = None) -> list[Event]:
        batches.append(len(items))
        return commit(items, time_ns)

    monkeypatch.setattr(journal.store, "append_events", counted)
    events = await asyncio.gather(*(journal.append_event("notes", NoteAdded(f"n{i}", "t")) for i in range(50)))
    assert [e.sequence for e in events] == list(range(1, 51))
    assert [e.payload for e in events] == [NoteAdded(f"n{i}", "t") for i in range(50)]
    assert sum(batches) == 50
    assert len(batches) < 50, "events waiting while the thread was busy went in one transaction"
    assert [e.sequence for e in await journal.events_after(0, 100)] == list(range(1, 51))


async def test_a_failed_group_commit_fails_every_event_of_it_and_the_next_one_works(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = journal.store.append_events

    def full_disk(items: list[tuple[str, EventPayload]], time_ns: int | None = None) -> list[Event]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(journal.store, "append_events", full_disk)
    outcomes = await asyncio.gather(
        *(journal.append_event("notes", NoteAdded(f"n{i}", "t")) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, JournalUnavailable) and "disk is full" in o.message for o in outcomes)
    monkeypatch.setattr(journal.store, "append_events", commit)
    assert (await journal.append_event("notes", NoteAdded("after", "t"))).sequence == 1
