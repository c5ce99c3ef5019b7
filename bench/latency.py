"""Benchmark 1: GetStatus latency over ui.sock, against Health.Check on the same daemon and socket
and against Health.Check on a bare grpc.aio server (the floor)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.context import Context
from bench.daemon import SERVING, BenchError, FloorServer, HwdDaemon, cpu_seconds
from bench.report import Goal, Section
from bench.stats import Summary
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc

NAME = "getstatus"
TITLE = "1. GetStatus latency (ui.sock, sync grpc client)"
ROUNDS = 5
CALL_TIMEOUT_S = 5.0


@dataclass
class Target:
    """One kind of call, its samples and the server CPU it cost."""

    call: Callable[[], object]
    pid: int
    samples: list[int] = field(default_factory=list)
    server_cpu_s: float = 0.0


def time_calls(call: Callable[[], object], n: int) -> list[int]:
    """Makes ``n`` calls one after the other. :returns: each one's duration in ns."""
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        call()
        out[i] = clock() - t0
    return out


def measure(targets: dict[str, Target], warmup: int, calls: int) -> None:
    """Warms every target up, then measures them in interleaved blocks so drift hits all alike."""
    for t in targets.values():
        time_calls(t.call, warmup)
    block = max(1, calls // ROUNDS)
    for r in range(ROUNDS):
        n = block if r < ROUNDS - 1 else calls - block * (ROUNDS - 1)
        for t in targets.values():
            cpu0 = cpu_seconds(t.pid)
            t.samples += time_calls(t.call, n)
            t.server_cpu_s += cpu_seconds(t.pid) - cpu0


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 1 and records its figures in ``section``."""
    c = ctx.counts
    root = ctx.dir(NAME)
    (root / "floor").mkdir()
    with HwdDaemon(root / "hwd") as hwd, FloorServer(root / "floor" / "floor.sock") as floor:
        hwd.start()
        floor.start()
        with grpc.insecure_channel(hwd.target("ui")) as ui, grpc.insecure_channel(floor.target) as bare:
            status = kiosk_pb2_grpc.KioskStub(ui).GetStatus
            check = health_pb2_grpc.HealthStub(ui).Check
            floor_check = health_pb2_grpc.HealthStub(bare).Check
            response = status(kiosk_pb2.GetStatusRequest(), timeout=CALL_TIMEOUT_S)
            if check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S).status != SERVING:
                raise BenchError("hwd is not SERVING")
            targets = {
                "GetStatus": Target(partial(status, kiosk_pb2.GetStatusRequest(), timeout=CALL_TIMEOUT_S), hwd.pid),
                "Health.Check": Target(
                    partial(check, health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S), hwd.pid
                ),
                "floor": Target(
                    partial(floor_check, health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S), floor.pid
                ),
            }
            measure(targets, c.latency_warmup, c.latency_calls)
    _record(section, targets, c.latency_warmup, c.latency_calls)
    section.details["getstatus_response_bytes"] = response.ByteSize()
    section.details["devices_in_status"] = len(response.devices) + 1


def _record(section: Section, targets: dict[str, Target], warmup: int, calls: int) -> None:
    s = {name: Summary.of_ns(t.samples) for name, t in targets.items()}
    gs, hc, fl = s["GetStatus"], s["Health.Check"], s["floor"]
    section.add("getstatus_p50_ms", "GetStatus p50", gs.p50, "ms", Goal(1.0))
    section.add("getstatus_p99_ms", "GetStatus p99", gs.p99, "ms", Goal(5.0))
    section.add("getstatus_mean_ms", "GetStatus mean", gs.mean, "ms")
    section.add("health_p50_ms", "Health.Check on hwd ui.sock p50", hc.p50, "ms")
    section.add("health_p99_ms", "Health.Check on hwd ui.sock p99", hc.p99, "ms")
    section.add("health_mean_ms", "Health.Check on hwd ui.sock mean", hc.mean, "ms")
    section.add("floor_p50_ms", "Health.Check on bare grpc.aio p50", fl.p50, "ms")
    section.add("floor_p99_ms", "Health.Check on bare grpc.aio p99", fl.p99, "ms")
    section.add("floor_mean_ms", "Health.Check on bare grpc.aio mean", fl.mean, "ms")
    section.add("ratio_getstatus_health", "ratio GetStatus / Health.Check (p50)", gs.p50 / hc.p50, "x")
    section.add("ratio_getstatus_floor", "ratio GetStatus / bare floor (p50)", gs.p50 / fl.p50, "x")
    section.add("ratio_health_floor", "ratio hwd Health.Check / bare floor (p50)", hc.p50 / fl.p50, "x")
    for name, t in targets.items():
        us = t.server_cpu_s / len(t.samples) * 1e6
        section.add(f"server_cpu_us_{name.lower().replace('.', '_')}", f"server CPU per call, {name}", us, "us")
    section.notes.append(
        f"{warmup} warm-up then {calls} calls of each kind, interleaved in {ROUNDS} blocks; one channel per server"
    )
    section.notes.append("floor = a grpc.aio server in its own process serving Health.Check only (bench/floor.py)")
    section.details["summaries_ms"] = {name: vars(v) for name, v in s.items()}
