"""The journal's SQLite store: events, commands and evidence, in one file.

WAL mode with synchronous=FULL and ``BEGIN IMMEDIATE`` per write: a commit that returned is on
disk, so a daemon killed at any instant loses no committed event or command. The store is
synchronous and single-threaded on purpose; :class:`hwd.journal.Journal` runs it on one thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hwd.errors import JournalUnavailable
from hwd.model import CommandRecord, CommandState, Event, EventPayload, payload_from_json, payload_to_json
from hwd.model.camera import EvidenceRecord, ImageFormat

# Each entry moves the schema from version N to N+1 (PRAGMA user_version). Only ever append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ns  INTEGER NOT NULL,
        source   TEXT NOT NULL,
        kind     TEXT NOT NULL,
        payload  TEXT NOT NULL
    );
    CREATE TABLE commands (
        request_id  TEXT PRIMARY KEY,
        method      TEXT NOT NULL,
        params_hash TEXT NOT NULL,
        state       TEXT NOT NULL,
        role        TEXT NOT NULL,
        started_ns  INTEGER NOT NULL,
        finished_ns INTEGER,
        outcome     TEXT,
        error       TEXT
    );
    CREATE INDEX commands_by_state ON commands(state);
    CREATE TABLE evidence (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        session    TEXT NOT NULL,
        kind       TEXT NOT NULL,
        path       TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        metadata   TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    );
    """,
    # Evidence is looked up by its public id and listed by phone port.
    """
    ALTER TABLE evidence ADD COLUMN evidence_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE evidence ADD COLUMN port TEXT NOT NULL DEFAULT '';
    CREATE INDEX evidence_by_evidence_id ON evidence(evidence_id);
    """,
)


class JournalStore:
    """Synchronous access to the journal file. Not thread-safe: one owner thread.

    :param path: the SQLite file; created with its directory when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        """Opens the file, sets WAL + synchronous=FULL and applies pending migrations.

        :raises JournalUnavailable: when the file cannot be opened, is not a journal, or is newer.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._db = db
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise JournalUnavailable(f"cannot open journal {self.path}: {exc}", device="journal") from exc

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise JournalUnavailable(
                f"journal {self.path} has schema {version}, newer than this hwd ({len(MIGRATIONS)})",
                device="journal",
                hint="Run the hwd version that wrote it, or move the file aside.",
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._write() as db:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={target}")

    def close(self) -> None:
        """Closes the file; safe to call twice."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalUnavailable("journal is closed", device="journal")
        return self._db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # also when COMMIT itself failed (disk full): the next write starts clean
                db.execute("ROLLBACK")
            raise

    # -- events ------------------------------------------------------------------------------

    def append_event(self, source: str, payload: EventPayload, time_ns: int | None = None) -> Event:
        """Commits one event and returns it with its sequence number."""
        now = time.time_ns() if time_ns is None else time_ns
        return self.append_events([(source, payload)], now)[0]

    def append_events(self, items: list[tuple[str, EventPayload]], time_ns: int | None = None) -> list[Event]:
        """Commits several events in one transaction (one fsync), in order.

        :returns: them with their sequence numbers, in the same order.
        """
        now = time.time_ns() if time_ns is None else time_ns
        events = []
        with self._write() as db:
            for source, payload in items:
                kind, text = payload_to_json(payload)
                cur = db.execute(
                    "INSERT INTO events(time_ns, source, kind, payload) VALUES (?, ?, ?, ?)", (now, source, kind, text)
                )
                assert cur.lastrowid is not None
                events.append(Event(cur.lastrowid, now, source, payload))
        return events

    def events_after(self, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with a sequence greater than ``after``, oldest first."""
        rows = self._conn.execute(
            "SELECT sequence, time_ns, source, kind, payload FROM events WHERE sequence > ? ORDER BY sequence LIMIT ?",
            (after, limit),
        ).fetchall()
        return [_event(*row) for row in rows]

    def last_sequence(self) -> int:
        """The newest sequence ever handed out, 0 when none (AUTOINCREMENT never reuses one)."""
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    # -- commands ----------------------------------------------------------------------------

    def begin_command(self, record: CommandRecord) -> CommandRecord:
        """Journals a PENDING command unless its request id exists.

        :returns: the stored record: ``record`` itself when new, else the first one.
        """
        with self._write() as db:
            existing = self._get_command(db, record.request_id)
            if existing is not None:
                return existing
            db.execute(
                "INSERT INTO commands(request_id, method, params_hash, state, role, started_ns)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.request_id,
                    record.method,
                    record.params_hash,
                    record.state.value,
                    record.role,
                    record.started_ns,
                ),
            )
        return record

    def finish_command(
        self, request_id: str, state: CommandState, outcome: object = None, error: object = None
    ) -> None:
        """Records how a PENDING command ended."""
        with self._write() as db:
            db.execute(
                "UPDATE commands SET state = ?, finished_ns = ?, outcome = ?, error = ? WHERE request_id = ?",
                (state.value, time.time_ns(), _json_or_none(outcome), _json_or_none(error), request_id),
            )

    def get_command(self, request_id: str) -> CommandRecord | None:
        """The command journaled under ``request_id``, if any."""
        return self._get_command(self._conn, request_id)

    def mark_unfinished_unknown(self) -> list[CommandRecord]:
        """Turns every PENDING command into OUTCOME_UNKNOWN (call once at start-up).

        :returns: the commands changed, as they now stand.
        """
        with self._write() as db:
            ids = [r[0] for r in db.execute("SELECT request_id FROM commands WHERE state = 'PENDING'")]
            db.execute(
                "UPDATE commands SET state = 'OUTCOME_UNKNOWN', finished_ns = ? WHERE state = 'PENDING'",
                (time.time_ns(),),
            )
            return [rec for rid in ids if (rec := self._get_command(db, rid)) is not None]

    @staticmethod
    def _get_command(db: sqlite3.Connection, request_id: str) -> CommandRecord | None:
        row = db.execute(
            "SELECT request_id, method, params_hash, state, role, started_ns, finished_ns, outcome, error "
            "FROM commands WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            return None
        rid, method, params_hash, state, role, started, finished, outcome, error = row
        return CommandRecord(
            rid,
            method,
            params_hash,
            CommandState(state),
            role,
            started,
            finished,
            json.loads(outcome) if outcome else None,
            json.loads(error) if error else None,
        )

    # -- evidence ----------------------------------------------------------------------------

    def add_evidence(self, record: EvidenceRecord) -> None:
        """Commits one evidence row (its file is already on disk)."""
        metadata = json.dumps({"width": record.width, "height": record.height}, separators=(",", ":"))
        with self._write() as db:
            db.execute(
                "INSERT INTO evidence(evidence_id, session, port, kind, path, sha256, metadata, created_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.evidence_id, record.session_id, record.port, record.format.value, record.file,
                 record.sha256, metadata, record.captured_ns),
            )  # fmt: skip

    def list_evidence(self, session_id: str | None = None) -> list[EvidenceRecord]:
        """Evidence rows, oldest first: all of them, or those of one phone session."""
        where, args = ("WHERE session = ?", (session_id,)) if session_id is not None else ("", ())
        rows = self._conn.execute(f"{_EVIDENCE_SELECT} {where} ORDER BY id", args).fetchall()
        return [_evidence(*row) for row in rows]

    def evidence_count(self) -> int:
        """How many evidence rows there are."""
        return int(self._conn.execute("SELECT COUNT(*) FROM evidence").fetchone()[0])

    def evidence_beyond(self, keep: int) -> list[EvidenceRecord]:
        """The rows past the newest ``keep``, oldest first (what a retention limit of ``keep`` removes)."""
        rows = self._conn.execute(
            f"{_EVIDENCE_SELECT} WHERE id NOT IN (SELECT id FROM evidence ORDER BY id DESC LIMIT ?) ORDER BY id",
            (max(keep, 0),),
        ).fetchall()
        return [_evidence(*row) for row in rows]

    def delete_evidence(self, evidence_ids: list[str]) -> int:
        """Deletes the rows of these evidence ids. :returns: how many rows went."""
        with self._write() as db:
            return sum(
                db.execute("DELETE FROM evidence WHERE evidence_id = ?", (eid,)).rowcount for eid in evidence_ids
            )


_EVIDENCE_SELECT = "SELECT evidence_id, session, port, kind, path, sha256, metadata, created_ns FROM evidence"


def _evidence(
    evidence_id: str, session: str, port: str, kind: str, path: str, sha256: str, metadata: str, created_ns: int
) -> EvidenceRecord:
    try:
        size = json.loads(metadata)
        return EvidenceRecord(
            evidence_id, session, port, ImageFormat(kind), path, sha256, int(size["width"]), int(size["height"]),
            created_ns,
        )  # fmt: skip
    except (ValueError, TypeError, KeyError) as exc:  # damaged on disk, or written by another hwd version
        raise JournalUnavailable(
            f"journal evidence {evidence_id!r} cannot be read: {exc}",
            device="journal",
            hint="Run the hwd version that wrote it, or restore the journal from a backup.",
        ) from exc


def _event(seq: int, time_ns: int, source: str, kind: str, text: str) -> Event:
    try:
        return Event(seq, time_ns, source, payload_from_json(kind, text))
    except ValueError as exc:  # a row written by another hwd version, or damaged on disk
        raise JournalUnavailable(
            f"journal event {seq} cannot be read: {exc}",
            device="journal",
            hint="Run the hwd version that wrote it, or restore the journal from a backup.",
        ) from exc


def _json_or_none(value: object) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)
