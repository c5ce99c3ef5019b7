"""The journal's evidence rows: kept across reopen, listed per session, trimmed oldest first, schema migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hwd.errors import JournalUnavailable
from hwd.journal import Journal
from hwd.journal.store import MIGRATIONS, JournalStore
from hwd.model import ImageFormat
from hwd.model.camera import EvidenceRecord


def _record(n: int, session: str = "s1") -> EvidenceRecord:
    return EvidenceRecord(f"ev{n}", session, "1-4.2", ImageFormat.JPEG, f"ev{n}.jpg", f"{n:064x}", 640, 480, 1000 + n)


def _store(path: Path) -> JournalStore:
    store = JournalStore(path)
    store.open()
    return store


def test_evidence_rows_survive_reopen_and_list_by_session(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    for n, session in enumerate(["s1", "s2", "s1"]):
        store.add_evidence(_record(n, session))
    store.close()
    store = _store(tmp_path / "j.sqlite3")
    assert store.list_evidence("s1") == [_record(0), _record(2)]
    assert [r.evidence_id for r in store.list_evidence()] == ["ev0", "ev1", "ev2"]
    assert store.evidence_count() == 3
    store.close()


def test_evidence_beyond_a_limit_is_the_oldest_and_can_be_deleted(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    for n in range(5):
        store.add_evidence(_record(n))
    assert [r.evidence_id for r in store.evidence_beyond(3)] == ["ev0", "ev1"]
    assert store.evidence_beyond(5) == []
    assert store.delete_evidence(["ev0", "ev1", "missing"]) == 2
    assert [r.evidence_id for r in store.list_evidence()] == ["ev2", "ev3", "ev4"]
    store.close()


def test_a_version_1_journal_gains_the_evidence_columns(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version=1")
    db.close()
    store = _store(path)
    store.add_evidence(_record(7))
    assert store.list_evidence() == [_record(7)]
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


def test_a_damaged_evidence_row_is_an_error_not_a_crash(tmp_path: Path) -> None:
    store = _store(tmp_path / "j.sqlite3")
    store.add_evidence(_record(1))
    store._conn.execute("UPDATE evidence SET metadata = 'garbage'")
    with pytest.raises(JournalUnavailable, match="evidence 'ev1' cannot be read"):
        store.list_evidence()
    store.close()


async def test_the_async_journal_keeps_evidence(journal: Journal) -> None:
    await journal.add_evidence(_record(1))
    await journal.add_evidence(_record(2, "s2"))
    assert await journal.evidence_count() == 2
    assert await journal.list_evidence("s2") == [_record(2, "s2")]
    assert [r.evidence_id for r in await journal.evidence_beyond(1)] == ["ev1"]
    assert await journal.delete_evidence(["ev1"]) == 1
    assert await journal.list_evidence() == [_record(2, "s2")]
