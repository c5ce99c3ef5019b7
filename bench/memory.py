"""Benchmark 4: the daemon's resident memory after start and an idle pause, next to the bare
grpc.aio floor server's. (The RSS after the fan-out is reported by the fan-out benchmark.)"""

from __future__ import annotations

import time

from bench.context import Context
from bench.daemon import FloorServer, HwdDaemon
from bench.report import Goal, Section

NAME = "rss"
TITLE = "4. Idle RSS of the daemon (VmRSS after start + idle)"


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 4 and records its figures in ``section``."""
    root = ctx.dir(NAME)
    (root / "floor").mkdir()
    idle = ctx.counts.idle_seconds
    with HwdDaemon(root / "hwd") as hwd, FloorServer(root / "floor" / "floor.sock") as floor:
        hwd.start()
        floor.start()
        time.sleep(idle)  # the idle period being measured, not a wait for a condition
        rss, peak = hwd.rss_mb(), hwd.peak_rss_mb()
        floor_rss = floor.rss_mb()
    section.add("idle_rss_mb", f"hwd RSS after start + {idle:g} s idle", rss, "MiB", Goal(120.0))
    section.add("idle_peak_rss_mb", "hwd peak RSS (VmHWM) so far", peak, "MiB")
    section.add("floor_rss_mb", "bare grpc.aio server RSS (floor)", floor_rss, "MiB")
    section.add("ratio_rss_floor", "ratio hwd / floor", rss / floor_rss, "x")
    section.notes.append("the RSS after the fan-out is in the fan-out section (fanout.rss_after_mb)")
