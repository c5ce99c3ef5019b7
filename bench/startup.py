"""Benchmark 3: from spawning ``hwd serve`` to Health.Check SERVING on both sockets, with a fresh
state directory and with a journal of many events; and how fast the `hwd` CLI starts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc

from bench.context import Context, Counts
from bench.daemon import ROOT, SERVING, BenchError, HwdDaemon, clean_env, health_check
from bench.report import Goal, Section
from bench.stats import median
from hwd.journal.store import JournalStore
from hwd.model import NoteAdded
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc

NAME = "startup"
TITLE = "3. Start-to-serving time (spawn to Health.Check SERVING on ui.sock and tech.sock)"
GOAL_S = 1.5


def build_journal(path: Path, events: int) -> float:
    """Writes ``events`` notes into a new journal at ``path`` with JournalStore.append_event.

    :returns: seconds it took.
    """
    t0 = time.perf_counter()
    store = JournalStore(path)
    store.open()
    try:
        # A fixture, not a record: a per-commit fsync would make this take a minute, and nothing
        # here needs surviving a crash. The daemon reopens the file with synchronous=FULL.
        store._conn.execute("PRAGMA synchronous=OFF")
        base = time.time_ns()
        for i in range(events):
            store.append_event("notes", NoteAdded(f"prefilled note {i}", "bench"), time_ns=base + i)
    finally:
        store.close()
    return time.perf_counter() - t0


def start_once(root: Path) -> dict[str, float]:
    """Starts a daemon on ``root``, checks both sockets, stops it. :returns: its timings in s."""
    with HwdDaemon(root) as hwd:
        line_s = hwd.start()
        for role in ("ui", "tech"):
            if health_check(hwd.target(role)) != SERVING:
                raise BenchError(f"{role}.sock is not SERVING after the ready line")
        serving_s = (time.perf_counter_ns() - hwd.spawned_ns) / 1e9
        with grpc.insecure_channel(hwd.target("ui")) as channel:
            last = kiosk_pb2_grpc.KioskStub(channel).GetStatus(kiosk_pb2.GetStatusRequest(), timeout=5).last_sequence
        rss = hwd.rss_mb()
        stop_s = hwd.stop()
    return {"ready_line_s": line_s, "serving_s": serving_s, "stop_s": stop_s, "last_sequence": last, "rss_mb": rss}


def time_command(argv: list[str], runs: int) -> list[float]:
    """Runs ``argv`` ``runs`` times. :returns: each run's wall time in s."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        done = subprocess.run(
            argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(), cwd=ROOT
        )
        out.append((time.perf_counter_ns() - t0) / 1e9)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr[-300:]!r}")
    return out


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 3 and records its figures in ``section``."""
    root = ctx.dir(NAME)
    _daemon_starts(section, ctx.counts, root)
    _cli_starts(section, ctx.counts)


def _daemon_starts(section: Section, c: Counts, root: Path) -> None:
    fresh = [start_once(root / f"fresh{i}") for i in range(c.startup_runs)]
    serving = [r["serving_s"] for r in fresh]
    section.add("fresh_median_s", f"fresh state dir, median of {c.startup_runs}", median(serving), "s", Goal(GOAL_S))
    section.add("fresh_max_s", "fresh state dir, slowest run", max(serving), "s")
    ready = median(r["ready_line_s"] for r in fresh)
    section.add("ready_line_median_s", "spawn to the 'hwd ' ready line, median", ready, "s")

    events = c.startup_journal_events
    build_s = build_journal(root / "big" / "state" / "journal.sqlite3", events)
    loaded = start_once(root / "big")
    if loaded["last_sequence"] < events:
        raise BenchError(f"the prefilled journal shows last_sequence {loaded['last_sequence']}")
    section.add("journal_s", f"existing journal of {events:,} events", loaded["serving_s"], "s", Goal(GOAL_S))
    section.add("stop_median_s", "SIGTERM to exit, median", median(r["stop_s"] for r in fresh), "s")
    section.notes.append(
        f"serving = spawn to Health.Check SERVING on both sockets (checked after the ready line); "
        f"journal of {events:,} events built in {build_s:.1f} s with JournalStore.append_event"
    )
    section.details["fresh_runs"] = fresh
    section.details["journal_run"] = loaded
    section.details["journal_build_s"] = build_s


def _cli_starts(section: Section, c: Counts) -> None:
    hwd_script = Path(sys.executable).with_name("hwd")
    cli = [str(hwd_script)] if hwd_script.exists() else [sys.executable, "-m", "hwd"]
    help_s = time_command([*cli, "--help"], c.cli_runs)
    python_s = time_command([sys.executable, "-c", "pass"], c.cli_runs)
    grpc_s = time_command([sys.executable, "-c", "import grpc"], c.cli_runs)
    section.add("cli_help_median_s", f"`hwd --help`, median of {c.cli_runs}", median(help_s), "s")
    section.add("python_floor_s", "floor: `python -c pass`, median", median(python_s), "s")
    section.add("import_grpc_s", "floor: `python -c 'import grpc'`, median", median(grpc_s), "s")
    section.add("ratio_cli_python", "ratio `hwd --help` / `python -c pass`", median(help_s) / median(python_s), "x")
    section.details["cli_help_s"] = help_s
    section.details["cli_argv"] = [*cli, "--help"]
