"""Benchmark 6: the carousel and the bin lock on the simulated RS-485 line.

Select's overhead beyond the simulated travel time (at the default carousel poll period and at
0.02 s), Modbus transactions per second through hwd's RtuLink against pymodbus's own sync client
on a lone simulator's line, and Unlock / Lock latency beyond the simulated bolt travel.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from pymodbus.client import ModbusSerialClient
from pymodbus.framer import FramerType

from bench.context import Context
from bench.daemon import BenchError, HwdDaemon, ServerProcess, clean_env, cpu_seconds
from bench.report import Goal, Section
from bench.stats import Summary
from hwd.drivers.modbus import RtuLink
from hwd.rpc.pb.hwd.v1 import binlock_pb2, binlock_pb2_grpc, carousel_pb2, carousel_pb2_grpc

NAME = "peripherals"
TITLE = "6. Carousel and bin lock (simulated RS-485 line, tech.sock)"
STEP_MS = 150.0  # the simulated carousel's STEP_TIME_MS: one slot step
BOLT_TRAVEL_MS = 300.0  # the simulated bolt's travel, either way
DEFAULT_POLL_S = 0.1  # carousel.poll_s when not configured
FAST_POLL_S = 0.02
RELOCK_AFTER_S = 5
SLOTS = (0, 1)  # alternated: every Select moves one slot step
UNIT = 1  # the carousel controller
READ_ADDRESS, READ_COUNT = 0, 10
BAUDRATE = 115200
LINE_TIMEOUT_S = 0.5
ROUNDS = 3  # hwd and pymodbus take turns on the line, so drift hits both alike
CALL_TIMEOUT_S = 30.0


def _ids(tag: str) -> Callable[[], str]:
    """Fresh request ids ``tag``-0, ``tag``-1, ..."""
    count = itertools.count()
    return lambda: f"{tag}-{next(count)}"


def time_selects(stub: carousel_pb2_grpc.CarouselStub, n: int, next_id: Callable[[], str]) -> list[int]:
    """Homes the carousel, then ``n`` Selects alternating between slots 0 and 1. :returns: their durations in ns."""
    stub.Home(carousel_pb2.HomeRequest(request_id=next_id()), timeout=CALL_TIMEOUT_S)
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        slot = SLOTS[(i + 1) % len(SLOTS)]
        request = carousel_pb2.SelectRequest(request_id=next_id(), slot=slot)
        t0 = clock()
        response = stub.Select(request, timeout=CALL_TIMEOUT_S)
        out[i] = clock() - t0
        if response.slot != slot:
            raise BenchError(f"Select slot {slot} answered slot {response.slot}")
    return out


def time_unlocks(stub: binlock_pb2_grpc.BinLockStub, n: int, next_id: Callable[[], str]) -> tuple[list[int], list[int]]:
    """``n`` Unlock (then Lock) pairs. :returns: the Unlock and the Lock durations in ns."""
    unlocks, locks = [0] * n, [0] * n
    clock = time.perf_counter_ns
    relock = Duration(seconds=RELOCK_AFTER_S)
    for i in range(n):
        unlock = binlock_pb2.UnlockRequest(request_id=next_id(), reason="bench", relock_after=relock)
        t0 = clock()
        response = stub.Unlock(unlock, timeout=CALL_TIMEOUT_S)
        unlocks[i] = clock() - t0
        if response.lock.bolt_extended:
            raise BenchError("Unlock returned with the bolt still extended")
        t0 = clock()
        locked = stub.Lock(binlock_pb2.LockRequest(request_id=next_id()), timeout=CALL_TIMEOUT_S)
        locks[i] = clock() - t0
        if not locked.lock.bolt_extended:
            raise BenchError("Lock returned with the bolt still retracted")
    return unlocks, locks


def run_daemon(root: Path, env: dict[str, str], idle_s: float, selects: int, unlocks: int) -> dict[str, Any]:
    """One ``hwd serve --simulated``: idle for ``idle_s``, the Selects, then (when ``unlocks``) the
    Unlock / Lock pairs.

    :returns: the samples in ns ("select", "unlock", "lock"), the daemon's CPU seconds per call kind
        and its idle CPU share ("idle_cpu_pct", % of a core: the polling of the line).
    """
    tag = uuid.uuid4().hex[:12]
    next_id = _ids(tag)
    out: dict[str, Any] = {}
    with HwdDaemon(root, env, simulated=True) as hwd:
        hwd.start()
        cpu0, t0 = cpu_seconds(hwd.pid), time.perf_counter()
        time.sleep(idle_s)
        out["idle_cpu_pct"] = (cpu_seconds(hwd.pid) - cpu0) / (time.perf_counter() - t0) * 100
        with grpc.insecure_channel(hwd.target("tech")) as channel:
            cpu0 = cpu_seconds(hwd.pid)
            out["select"] = time_selects(carousel_pb2_grpc.CarouselStub(channel), selects, next_id)
            out["select_cpu_s"] = cpu_seconds(hwd.pid) - cpu0
            if unlocks:
                cpu0 = cpu_seconds(hwd.pid)
                out["unlock"], out["lock"] = time_unlocks(binlock_pb2_grpc.BinLockStub(channel), unlocks, next_id)
                out["lock_cpu_s"] = cpu_seconds(hwd.pid) - cpu0
    return out


class Simulator(ServerProcess):
    """``python -m simulators`` alone, its control socket and line in ``directory``."""

    def __init__(self, directory: Path) -> None:
        argv = [sys.executable, "-m", "simulators", "--dir", str(directory), "--parent-pid", str(os.getpid())]
        super().__init__(argv, "{", directory.parent / "simulator.log", clean_env(), "simulator")

    @property
    def line(self) -> str:
        """The path of the simulated RS-485 line (device "rs485" of its ready line)."""
        return str(json.loads(self.ready_line)["devices"]["rs485"]["endpoint"])

    def __enter__(self) -> Simulator:
        return self


async def _hwd_reads(port: str, seconds: float) -> list[int]:
    link = RtuLink(port, baudrate=BAUDRATE, timeout_s=LINE_TIMEOUT_S)
    await link.open()
    try:
        out: list[int] = []
        clock = time.perf_counter_ns
        end = clock() + int(seconds * 1e9)
        while (t0 := clock()) < end:
            await link.read_input(UNIT, READ_ADDRESS, READ_COUNT)
            out.append(clock() - t0)
        return out
    finally:
        await link.close()


def hwd_reads(port: str, seconds: float) -> list[int]:
    """read_input through hwd's RtuLink for ``seconds``. :returns: each transaction's duration in ns."""
    return asyncio.run(_hwd_reads(port, seconds))


def pymodbus_reads(port: str, seconds: float) -> list[int]:
    """The same reads through pymodbus's sync ModbusSerialClient. :returns: durations in ns."""
    client = ModbusSerialClient(port, framer=FramerType.RTU, baudrate=BAUDRATE, timeout=LINE_TIMEOUT_S, retries=0)
    if not client.connect():
        raise BenchError(f"pymodbus cannot open {port}")
    try:
        out: list[int] = []
        clock = time.perf_counter_ns
        end = clock() + int(seconds * 1e9)
        while (t0 := clock()) < end:
            reply = client.read_input_registers(READ_ADDRESS, count=READ_COUNT, device_id=UNIT)
            out.append(clock() - t0)
            if reply.isError():
                raise BenchError(f"pymodbus read failed: {reply}")
        return out
    finally:
        client.close()  # type: ignore[no-untyped-call]  # untyped in pymodbus


def measure_line(directory: Path, seconds: float) -> dict[str, list[int]]:
    """Both clients on a lone simulator's line, taking turns in ROUNDS blocks. :returns: samples in ns."""
    samples: dict[str, list[int]] = {"hwd": [], "pymodbus": []}
    with Simulator(directory) as sim:
        sim.start()
        port = sim.line
        hwd_reads(port, min(0.2, seconds))  # warm-up: imports, first open
        pymodbus_reads(port, min(0.2, seconds))
        for _ in range(ROUNDS):
            samples["hwd"] += hwd_reads(port, seconds / ROUNDS)
            samples["pymodbus"] += pymodbus_reads(port, seconds / ROUNDS)
    return samples


def _minus(samples: list[int], ms: float) -> list[int]:
    return [s - int(ms * 1e6) for s in samples]


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 6 and records its figures in ``section``."""
    c = ctx.counts
    root = ctx.dir(NAME)
    default = run_daemon(root / "default", {}, c.idle_seconds, c.select_calls, c.unlock_cycles)
    fast_env = {"HWD_CAROUSEL__POLL_S": str(FAST_POLL_S)}
    fast = run_daemon(root / "fast", fast_env, c.idle_seconds, c.select_calls, 0)
    line = measure_line(root / "sim", c.modbus_seconds)
    _record_select(section, default, fast, c.select_calls)
    _record_line(section, line, c.modbus_seconds)
    _record_lock(section, default, c.unlock_cycles)


def _record_select(section: Section, default: dict[str, Any], fast: dict[str, Any], calls: int) -> None:
    for key, label, sample in (("", f"{DEFAULT_POLL_S:g} s (default)", default), ("fast_", f"{FAST_POLL_S:g} s", fast)):
        raw, over = Summary.of_ns(sample["select"]), Summary.of_ns(_minus(sample["select"], STEP_MS))
        goal = Goal(20.0) if sample is default else None
        section.add(f"select_{key}overhead_p50_ms", f"Select beyond travel, poll {label} p50", over.p50, "ms", goal)
        section.add(f"select_{key}overhead_p99_ms", f"Select beyond travel, poll {label} p99", over.p99, "ms")
        section.add(f"select_{key}p50_ms", f"Select of one step, poll {label} p50", raw.p50, "ms")
        section.add(f"select_{key}p99_ms", f"Select of one step, poll {label} p99", raw.p99, "ms")
        cpu_ms = sample["select_cpu_s"] / calls * 1e3
        section.add(f"select_{key}cpu_ms", f"daemon CPU per Select, poll {label}", cpu_ms, "ms")
        section.add(f"idle_{key}cpu_pct", f"daemon CPU idle (polling), poll {label}", sample["idle_cpu_pct"], "% core")
        section.details[f"select_{key}ms"] = vars(raw)
    section.notes.append(
        f"Home, then {calls} Selects alternating slots 0 and 1 (one {STEP_MS:g} ms step each) on tech.sock; "
        f"once with the default carousel.poll_s {DEFAULT_POLL_S:g} s, once with HWD_CAROUSEL__POLL_S={FAST_POLL_S:g}"
    )
    section.notes.append(
        "the overhead is the wait for the next poll after the move ends (up to one poll period), the "
        "Modbus reads and the command write on the line, and the journal commits of the command and its events"
    )


def _record_line(section: Section, line: dict[str, list[int]], seconds: float) -> None:
    hwd, pym = Summary.of_ns(line["hwd"]), Summary.of_ns(line["pymodbus"])
    hwd_rate = len(line["hwd"]) / (sum(line["hwd"]) / 1e9)
    pym_rate = len(line["pymodbus"]) / (sum(line["pymodbus"]) / 1e9)
    section.add("modbus_hwd_per_s", "RtuLink.read_input(1, 0, 10) per second", hwd_rate, "tx/s")
    section.add("modbus_hwd_p50_ms", "RtuLink transaction p50", hwd.p50, "ms")
    section.add("modbus_hwd_p99_ms", "RtuLink transaction p99", hwd.p99, "ms")
    section.add("modbus_pymodbus_per_s", "pymodbus sync client, same reads, per second", pym_rate, "tx/s")
    section.add("modbus_pymodbus_p50_ms", "pymodbus sync transaction p50", pym.p50, "ms")
    section.add("modbus_pymodbus_p99_ms", "pymodbus sync transaction p99", pym.p99, "ms")
    section.add("modbus_ratio", "ratio hwd / pymodbus (transactions per second)", hwd_rate / pym_rate, "x")
    section.notes.append(
        f"Modbus: a lone `python -m simulators`, hwd's RtuLink and pymodbus's sync ModbusSerialClient taking "
        f"turns in {ROUNDS} blocks, {seconds:g} s each in all"
    )
    section.notes.append(
        "pymodbus's sync client ends a reply by polling the port every 1 ms until no byte has come for one poll, "
        "so each of its transactions takes at least 2 ms; RtuLink (pymodbus's asyncio client) parses as bytes arrive"
    )
    section.details["modbus_hwd_ms"] = vars(hwd)
    section.details["modbus_pymodbus_ms"] = vars(pym)


def _record_lock(section: Section, default: dict[str, Any], cycles: int) -> None:
    unl, lck = Summary.of_ns(default["unlock"]), Summary.of_ns(default["lock"])
    unl_share = Summary.of_ns(_minus(default["unlock"], BOLT_TRAVEL_MS))
    lck_share = Summary.of_ns(_minus(default["lock"], BOLT_TRAVEL_MS))
    section.add("unlock_p50_ms", "Unlock p50", unl.p50, "ms")
    section.add("unlock_p99_ms", "Unlock p99", unl.p99, "ms")
    section.add("unlock_daemon_p50_ms", "Unlock beyond the 300 ms bolt travel p50", unl_share.p50, "ms")
    section.add("unlock_daemon_p99_ms", "Unlock beyond the 300 ms bolt travel p99", unl_share.p99, "ms")
    section.add("lock_p50_ms", "Lock p50", lck.p50, "ms")
    section.add("lock_p99_ms", "Lock p99", lck.p99, "ms")
    section.add("lock_daemon_p50_ms", "Lock beyond the 300 ms bolt travel p50", lck_share.p50, "ms")
    section.add("lock_cpu_ms", "daemon CPU per Unlock + Lock pair", default["lock_cpu_s"] / cycles * 1e3, "ms")
    section.notes.append(
        f"{cycles} Unlock (reason bench, relock_after {RELOCK_AFTER_S} s) then Lock pairs, door closed, on the "
        "default daemon; both return once the bolt sensor shows the bolt moved, and the bin lock is read every "
        "10 ms while waiting"
    )
    section.details["unlock_ms"] = vars(unl)
    section.details["lock_ms"] = vars(lck)
