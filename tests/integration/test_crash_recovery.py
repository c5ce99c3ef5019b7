"""A daemon killed at any instant loses no committed event, and a watcher resumes exactly once."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from hwd.journal.store import JournalStore
from hwd.model import CommandRecord, CommandState
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc
from hwd.services.commands import params_hash
from tests.helpers import DaemonProcess, error_info


def _watch(daemon: DaemonProcess, after: int, seen: list[int], stop_after: int | None = None) -> None:
    """Appends every event sequence received to ``seen`` until the stream breaks (or enough arrived)."""
    with daemon.channel("ui") as ui:
        try:
            for event in kiosk_pb2_grpc.KioskStub(ui).WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=after)):
                seen.append(event.sequence)
                if stop_after is not None and event.sequence >= stop_after:
                    return
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise


def _write_notes(
    daemon: DaemonProcess, acked: list[int], prefix: str, count: int, milestone: threading.Event | None = None
) -> None:
    with daemon.channel("tech") as tech:
        stub = kiosk_pb2_grpc.KioskStub(tech)
        for i in range(count):
            try:
                reply = stub.AddNote(kiosk_pb2.AddNoteRequest(request_id=f"{prefix}-{i}", text=f"note {i}"), timeout=5)
            except grpc.RpcError:
                return  # the daemon was killed under us
            acked.append(reply.sequence)
            if milestone is not None and len(acked) == 150:
                milestone.set()


def test_sigkill_while_writing_then_resume_delivers_every_committed_event_once_in_order(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    seen: list[int] = []
    acked: list[int] = []
    watcher = threading.Thread(target=_watch, args=(daemon, 0, seen))
    watcher.start()
    milestone = threading.Event()
    writer = threading.Thread(target=_write_notes, args=(daemon, acked, "before", 100_000, milestone))
    writer.start()
    try:
        assert milestone.wait(60), "the daemon did not take 150 notes"
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        writer.join(30)
        watcher.join(30)
        daemon.kill()
    assert len(acked) >= 150

    daemon.start()
    try:
        _write_notes(daemon, acked, "after", 20)
        with sqlite3.connect(daemon.state_dir / "journal.sqlite3") as db:
            newest = db.execute("SELECT max(sequence) FROM events").fetchone()[0]
        db.close()
        _watch(daemon, seen[-1], seen, stop_after=newest)
    finally:
        daemon.stop()
    with sqlite3.connect(daemon.state_dir / "journal.sqlite3") as db:
        committed = [
            s for (s,) in db.execute("SELECT sequence FROM events WHERE sequence <= ? ORDER BY sequence", (newest,))
        ]
    db.close()
    assert seen == committed, "every committed event exactly once, in order"
    assert committed == list(range(1, newest + 1)), "no gap in the journal"
    assert set(acked) <= set(committed), "an acknowledged note was lost"


def test_a_command_cut_by_a_crash_is_reported_and_never_redone(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    store = JournalStore(daemon.state_dir / "journal.sqlite3")
    store.open()
    params = {"text": "voucher printed?", "author": "t"}
    digest = params_hash("/hwd.v1.Kiosk/AddNote", params)
    store.begin_command(CommandRecord("cut-1", "/hwd.v1.Kiosk/AddNote", digest, CommandState.PENDING, "tech", 1))
    store.close()
    daemon.start()
    try:
        with daemon.channel("tech") as tech:
            stub = kiosk_pb2_grpc.KioskStub(tech)
            events = []
            status = stub.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=5)
            stream = stub.WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=0), timeout=10)
            for event in stream:
                events.append(event)
                if event.sequence >= status.last_sequence:
                    break
            stream.cancel()
            unknown = [e.command_outcome_unknown for e in events if e.HasField("command_outcome_unknown")]
            assert [(u.request_id, u.method) for u in unknown] == [("cut-1", "/hwd.v1.Kiosk/AddNote")]
            with pytest.raises(grpc.RpcError) as refused:
                stub.AddNote(kiosk_pb2.AddNoteRequest(request_id="cut-1", **params), timeout=5)
            assert refused.value.code() == grpc.StatusCode.ABORTED
            assert error_info(refused.value).reason == "OUTCOME_UNKNOWN"
            notes = [e for e in events if e.HasField("note_added")]
            assert notes == []
    finally:
        daemon.stop()
