"""What the figures were measured on: cores, CPU model, memory, Python and library versions."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def filesystem(path: Path) -> str:
    """The file system holding ``path`` (type and device), from /proc/self/mounts."""
    best, found = "", "unknown"
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
            if inside and len(mount) >= len(best):
                best, found = mount, f"{fstype} on {device}"
    except OSError:
        pass
    return found


def describe(scratch: Path) -> dict[str, Any]:
    """The machine and software the run measured; ``scratch`` holds the journals."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "hwd": _version("hwd"),
        "scratch_fs": filesystem(scratch.resolve()),
    }


def one_line(info: dict[str, Any]) -> str:
    """The machine in one line of the report."""
    return (
        f"nproc {info['nproc']}, {info['cpu_model']}, {info['mem_total_mb']} MB RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}"
    )


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every process now: pid -> (parent pid, CPU ticks used, name)."""
    out: dict[int, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rpartition(")")[2].split()
        out[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), name)
    return out


def cpu_ticks() -> tuple[int, int, int]:
    """(all, idle + iowait, steal) ticks of every CPU since boot, from /proc/stat.

    The guest columns are left out: they are already counted in user time.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values), values[3] + values[4], values[7]


def busy_pct(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """How busy all CPUs were between two :func:`cpu_ticks` readings, in % (stolen time excluded)."""
    total = max(after[0] - before[0], 1)
    return (total - (after[1] - before[1]) - (after[2] - before[2])) / total * 100


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class CpuWatch:
    """How busy the machine was over an interval, and how much of it was not the benchmark.

    The benchmark's own CPU is this process and its (waited-for) children; the rest of the busy
    time is other processes and kernel threads. On a shared machine that load skews the figures,
    and the report says so.
    """

    def __init__(self) -> None:
        self._ticks = cpu_ticks()
        self._own = _own_cpu_s()
        self._procs = _processes()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """The interval's figures: busy and stolen (by the hypervisor) % of all CPUs, and % of one
        core spent outside the benchmark's processes."""
        total, idle, steal = cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        all_ticks = max(total - self._ticks[0], 1)
        busy_ticks = all_ticks - (idle - self._ticks[1]) - (steal - self._ticks[2])
        outside_s = max(0.0, busy_ticks / hz - (_own_cpu_s() - self._own))
        return {
            "system_busy_pct": round(busy_ticks / all_ticks * 100, 1),
            "steal_pct": round((steal - self._ticks[2]) / all_ticks * 100, 1),
            "outside_pct_of_core": round(outside_s / elapsed * 100, 1),
            "top_others": self._top_others(_processes(), elapsed, hz),
        }

    def _top_others(self, procs: dict[int, tuple[int, int, str]], elapsed: float, hz: int) -> list[str]:
        ours = {os.getpid()}
        grew = True
        while grew:
            grew = False
            for table in (self._procs, procs):
                for pid, (ppid, _, _) in table.items():
                    if ppid in ours and pid not in ours:
                        ours.add(pid)
                        grew = True
        others = []
        for pid, (_, ticks, name) in procs.items():
            before = self._procs.get(pid)
            if pid not in ours and before is not None and ticks - before[1] >= hz // 10:
                others.append(((ticks - before[1]) / hz / elapsed * 100, name))
        return [f"{name} {pct:.0f}%" for pct, name in sorted(others, reverse=True)[:3]]
