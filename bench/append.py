"""Benchmark 5: journal append throughput through Kiosk.AddNote, one client, one call at a time,
against the floor: JournalStore.append_event called directly (one synchronous=FULL commit)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc

from bench.context import Context
from bench.daemon import HwdDaemon, cpu_seconds
from bench.report import Section
from bench.stats import Summary
from hwd.journal.store import JournalStore
from hwd.model import NoteAdded
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc

NAME = "append"
TITLE = "5. Journal append throughput (AddNote on tech.sock, sequential, synchronous=FULL)"
CALL_TIMEOUT_S = 10.0


def add_notes(stub: kiosk_pb2_grpc.KioskStub, n: int, tag: str) -> list[int]:
    """``n`` AddNote calls one after the other, each with its own request id. :returns: durations in ns."""
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        request = kiosk_pb2.AddNoteRequest(request_id=f"{tag}-{i}", text=f"bench note {i}", author="bench")
        t0 = clock()
        stub.AddNote(request, timeout=CALL_TIMEOUT_S)
        out[i] = clock() - t0
    return out


def raw_appends(path: Path, n: int) -> list[int]:
    """``n`` JournalStore.append_event calls on a fresh journal at ``path``. :returns: durations in ns."""
    store = JournalStore(path)
    store.open()
    try:
        out = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            store.append_event("notes", NoteAdded(f"bench note {i}", "bench"))
            out[i] = clock() - t0
        return out
    finally:
        store.close()


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 5 and records its figures in ``section``."""
    c = ctx.counts
    root = ctx.dir(NAME)
    tag = uuid.uuid4().hex[:12]
    with HwdDaemon(root / "hwd") as hwd:
        hwd.start()
        with grpc.insecure_channel(hwd.target("tech")) as channel:
            stub = kiosk_pb2_grpc.KioskStub(channel)
            add_notes(stub, c.append_warmup, f"{tag}-warm")
            cpu0 = cpu_seconds(hwd.pid)
            t0 = time.perf_counter_ns()
            samples = add_notes(stub, c.append_notes, tag)
            elapsed_s = (time.perf_counter_ns() - t0) / 1e9
            cpu_s = cpu_seconds(hwd.pid) - cpu0
    raw = Summary.of_ns(raw_appends(root / "raw" / "journal.sqlite3", c.append_notes))
    s = Summary.of_ns(samples)
    section.add("addnote_per_s", "AddNote committed per second (1 client)", c.append_notes / elapsed_s, "events/s")
    section.add("addnote_p50_ms", "AddNote p50", s.p50, "ms")
    section.add("addnote_p99_ms", "AddNote p99", s.p99, "ms")
    section.add("addnote_mean_ms", "AddNote mean", s.mean, "ms")
    section.add("raw_append_p50_ms", "floor: JournalStore.append_event p50", raw.p50, "ms")
    section.add("raw_append_per_s", "floor: JournalStore.append_event per second", 1e3 / raw.mean, "events/s")
    section.add("ratio_addnote_raw", "ratio AddNote / raw append (p50)", s.p50 / raw.p50, "x")
    section.add("server_cpu_us", "daemon CPU per AddNote", cpu_s / c.append_notes * 1e6, "us")
    section.notes.append(
        f"{c.append_warmup} warm-up then {c.append_notes} notes, each with a new request id; "
        "the floor is one synchronous=FULL commit in this process, on the same file system"
    )
    section.details["addnote_ms"] = vars(s)
    section.details["raw_append_ms"] = vars(raw)
