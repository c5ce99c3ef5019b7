"""``python -m bench [--quick] [--only NAME[,NAME]]``: runs the benchmarks, prints the report and
writes bench/results/latest.json. Exits 0 when every benchmark ran (missed goals included), 1
when one of them broke, 2 on a bad command line."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import append, camera, fanout, inspection, iphones, latency, memory, peripherals, phones, printer, startup
from bench.context import FULL, QUICK, Context
from bench.daemon import BenchError
from bench.machine import CpuWatch, describe, one_line
from bench.report import Section, render_section, render_summary, write_json

Runner = Callable[[Section, Context], None]
BENCHMARKS: dict[str, tuple[str, Runner]] = {
    m.NAME: (m.TITLE, m.run)
    for m in (latency, fanout, startup, memory, append, peripherals, printer, phones, camera, inspection, iphones)
}
BUSY_NEIGHBOURS_PCT = 10.0  # CPU (% of one core) used outside the benchmark worth a warning
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Runs the hwd benchmarks against a real daemon, prints a report and writes a JSON file.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        default=[],
        help=f"run only this benchmark (repeatable or comma-separated): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--fanout-procs", type=int, default=1, metavar="N", help="subscriber processes in the fan-out (default 1)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (daemon logs, journals)")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.fanout_procs < 1:
        parser.error("--fanout-procs must be at least 1")
    args.names = [n for n in BENCHMARKS if n in names] if names else list(BENCHMARKS)
    return args


def _run_one(name: str, ctx: Context) -> Section:
    title, runner = BENCHMARKS[name]
    section = Section(name, title)
    t0 = time.perf_counter()
    watch = CpuWatch()
    try:
        runner(section, ctx)
    except BenchError as exc:
        section.error = str(exc)
    except Exception as exc:
        section.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    section.seconds = time.perf_counter() - t0
    load = watch.stop()
    section.details["cpu_load"] = load
    if load["outside_pct_of_core"] >= BUSY_NEIGHBOURS_PCT:
        others = ", ".join(load["top_others"]) or "short-lived processes"
        section.notes.append(
            f"machine shared: {load['outside_pct_of_core']:.0f}% of a core went outside the benchmark's "
            f"processes during this benchmark ({others}); figures may be pessimistic"
        )
    return section


def main(argv: list[str] | None = None) -> int:
    """Runs the chosen benchmarks. :returns: the exit code."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    scratch = Path(tempfile.mkdtemp(prefix="hwd-bench-"))
    info = describe(scratch)
    header: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    print(f"hwd benchmarks, {header['mode']} run, {header['started']}")
    print(f"machine: {one_line(info)}")
    print(f"scratch: {scratch} ({info['scratch_fs']})\n", flush=True)
    ctx = Context(QUICK if args.quick else FULL, scratch, args.fanout_procs)
    sections: list[Section] = []
    whole = CpuWatch()
    try:
        for name in args.names:
            section = _run_one(name, ctx)
            sections.append(section)
            print(render_section(section) + "\n", flush=True)
            write_json(args.out, header, sections)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    header["cpu_load"] = load = whole.stop()
    write_json(args.out, header, sections)
    print(render_summary(sections))
    print(
        f"   machine load over the run: {load['system_busy_pct']:.0f}% of all CPUs busy, "
        f"{load['outside_pct_of_core']:.0f}% of a core outside the benchmark's processes, "
        f"{load['steal_pct']:.0f}% stolen by the hypervisor"
    )
    print(f"results: {args.out}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
