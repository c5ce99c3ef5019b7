"""Benchmark 2: event fan-out. Subscribers watch Kiosk.WatchEvents on ui.sock (in
:mod:`bench.subscribers` processes) while notes are added on tech.sock.

Two phases on the same subscribers: "burst", a few writers keeping AddNote calls in flight
back to back (the saturation throughput; its latency is the queue that builds when writers
outpace delivery, so it has no goal), then "paced", 1,000 notes at a fixed sustained rate below
that throughput (the delivery latency goal: a latency figure means something only at a stated load).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from bench.context import Context, Counts
from bench.daemon import ROOT, BenchError, HwdDaemon, clean_env, cpu_seconds, read_line
from bench.machine import busy_pct, cpu_ticks
from bench.report import Goal, Section
from bench.stats import Summary
from bench.subscribers import MARK
from hwd.config import load_config
from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc

NAME = "fanout"
TITLE = "2. Event fan-out (WatchEvents on ui.sock, AddNote writers on tech.sock)"
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 30.0


@dataclass
class Writes:
    """What the writers of one phase did: each note's sequence and AddNote latency, and when."""

    sequences: list[int] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)
    first_send_ns: int = 0  # wall clock, comparable with the subscribers' receive times
    elapsed_s: float = 0.0
    cpu_s: dict[int, float] = field(default_factory=dict)  # CPU each watched process used meanwhile
    busy_pct: float = 0.0  # how busy all CPUs were meanwhile


class Producer:
    """Adds timed notes on tech.sock.

    :param stub: a Kiosk stub on tech.sock.
    :param tag: makes this run's request ids unique.
    """

    def __init__(self, stub: kiosk_pb2_grpc.KioskAsyncStub, tag: str) -> None:
        self._stub = stub
        self._tag = tag
        self._next = 0

    async def note(self, phase: str, out: Writes) -> None:
        """One AddNote whose text carries its phase and send time."""
        self._next += 1
        request_id = f"{self._tag}-{phase}-{self._next}"
        t0 = time.perf_counter_ns()
        text = f"{MARK}{phase} {time.time_ns()}"
        response = await self._stub.AddNote(
            kiosk_pb2.AddNoteRequest(request_id=request_id, text=text, author="bench"), timeout=CALL_TIMEOUT_S
        )
        out.latencies_ns.append(time.perf_counter_ns() - t0)
        out.sequences.append(response.sequence)

    async def burst(self, count: int, writers: int) -> Writes:
        """``count`` notes, ``writers`` calls in flight at any time."""
        out = Writes(first_send_ns=time.time_ns())
        todo = iter(range(count))

        async def writer() -> None:
            for _ in todo:
                await self.note("burst", out)

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        out.elapsed_s = time.perf_counter() - t0
        return out

    async def paced(self, count: int, rate: float) -> Writes:
        """``count`` notes started at ``rate`` per second, whether or not earlier ones returned."""
        out = Writes(first_send_ns=time.time_ns())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        calls = []
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))  # the schedule, not a poll
            calls.append(asyncio.create_task(self.note("paced", out)))
        await asyncio.gather(*calls)
        out.elapsed_s = loop.time() - t0
        return out


async def produce(target: str, tag: str, phase: str, c: Counts, watched: list[int]) -> Writes:
    """Runs one phase on its own channel; notes the CPU the ``watched`` pids and the machine used."""
    async with aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        producer = Producer(kiosk_pb2_grpc.KioskStub(channel), tag)
        before, ticks = {pid: cpu_seconds(pid) for pid in watched}, cpu_ticks()
        if phase == "burst":
            out = await producer.burst(c.fanout_events, c.fanout_writers)
        else:
            out = await producer.paced(c.paced_events, c.paced_rate)
        out.busy_pct = busy_pct(ticks, cpu_ticks())
        out.cpu_s = {pid: cpu_seconds(pid) - before[pid] for pid in watched}
    return out


@dataclass
class Worker:
    """A :mod:`bench.subscribers` process."""

    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def spawn(cls, root: Path, index: int, target: str, count: int, after: int, warmup: int) -> Worker:
        """Starts one subscriber process; call :meth:`ready` next."""
        out = root / f"subscribers-{index}.json"
        argv = [sys.executable, "-m", "bench.subscribers", target, "--count", str(count)]
        argv += ["--after", str(after), "--warmup", str(warmup), "--out", str(out), "--timeout", str(DRAIN_TIMEOUT_S)]
        with (root / f"subscribers-{index}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=clean_env(), cwd=ROOT
            )
        return cls(proc, out)

    def ready(self) -> None:
        """Waits for its ``ready`` line. :raises BenchError: when it does not come or says otherwise."""
        assert self.proc.stdout is not None
        line = read_line(self.proc.stdout, time.perf_counter() + READY_TIMEOUT_S, "subscribers")
        if line != "ready":
            raise BenchError(f"subscriber process: {line}")

    def reach(self, sequence: int) -> None:
        """Waits until each of its subscribers has received ``sequence``.

        :raises BenchError: when they do not within the deadline.
        """
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"reach {sequence}\n".encode())
        self.proc.stdin.flush()
        line = read_line(self.proc.stdout, time.perf_counter() + DRAIN_TIMEOUT_S + 10, "subscribers")
        if line != f"reached {sequence}":
            raise BenchError(f"subscriber process: {line}")

    def finish(self, end: int) -> dict[str, Any]:
        """Tells it the last sequence and collects its results."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"end {end}\n".encode())
        self.proc.stdin.close()
        try:
            code = self.proc.wait(DRAIN_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError("a subscriber process did not finish") from None
        if code != 0:
            raise BenchError(f"a subscriber process exited with {code}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def kill(self) -> None:
        """Ends it at once (after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 2 and records its figures in ``section``."""
    c = ctx.counts
    root = ctx.dir(NAME)
    cfg = load_config(None, env={})
    section.details["config"] = {
        "events.subscriber_queue": cfg.events.subscriber_queue,
        "grpc.max_concurrent_rpcs": cfg.grpc.max_concurrent_rpcs,
    }
    tag = uuid.uuid4().hex[:12]
    with HwdDaemon(root / "hwd") as hwd:
        hwd.start()
        after, warmup = _warm_up(hwd, tag)
        procs = min(ctx.fanout_procs, c.fanout_subscribers)
        workers = [
            Worker.spawn(root, i, hwd.target("ui"), n, after, warmup)
            for i, n in enumerate(_split(c.fanout_subscribers, procs))
        ]
        try:
            for worker in workers:
                worker.ready()
            rss_before = hwd.rss_mb()
            daemon_pid, worker_pids = hwd.pid, [w.proc.pid for w in workers]
            writes, drain_s = _phases(hwd.target("tech"), tag, c, workers, [daemon_pid, *worker_pids])
            end = max(s for w in writes.values() for s in w.sequences)
            results = [w.finish(end) for w in workers]
        finally:
            for worker in workers:
                worker.kill()
        rss_after, peak = hwd.rss_mb(), hwd.peak_rss_mb()
        section.details["daemon_log_cutoff_lines"] = hwd.log_path.read_text(errors="replace").count("cut off")
    _record_burst(section, c, writes["burst"], results)
    _record_paced(section, c, writes["paced"], results)
    _record_totals(section, c, results)
    _record_cpu(section, c, writes["burst"], daemon_pid, worker_pids)
    section.add("burst_drain_ms", "subscribers caught up, after the burst's last AddNote", drain_s * 1e3, "ms")
    section.add("rss_before_mb", "daemon RSS before the fan-out", rss_before, "MiB")
    section.add("rss_after_mb", "daemon RSS after the fan-out", rss_after, "MiB")
    section.add("peak_rss_mb", "daemon peak RSS (VmHWM)", peak, "MiB")


def _phases(
    target: str, tag: str, c: Counts, workers: list[Worker], watched: list[int]
) -> tuple[dict[str, Writes], float]:
    """The burst, a wait until every subscriber has it all, then the paced phase.

    :returns: each phase's writes, and how long the subscribers took to catch up after the burst.
    """
    burst = asyncio.run(produce(target, tag, "burst", c, watched))
    t0 = time.perf_counter()
    for worker in workers:
        worker.reach(max(burst.sequences))
    drain_s = time.perf_counter() - t0
    paced = asyncio.run(produce(target, tag, "paced", c, watched)) if c.paced_events else Writes()
    return {"burst": burst, "paced": paced}, drain_s


def _warm_up(hwd: HwdDaemon, tag: str) -> tuple[int, int]:
    """:returns: the newest sequence before the run, and the sequence of a warm-up note after it."""
    with grpc.insecure_channel(hwd.target("tech")) as channel:
        stub = kiosk_pb2_grpc.KioskStub(channel)
        after = stub.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=5).last_sequence
        warm = kiosk_pb2.AddNoteRequest(request_id=f"{tag}-warm", text="fan-out warm-up", author="bench")
        return after, stub.AddNote(warm, timeout=5).sequence


def _record_cpu(section: Section, c: Counts, burst: Writes, daemon_pid: int, worker_pids: list[int]) -> None:
    daemon_s = burst.cpu_s[daemon_pid]
    workers_s = sum(burst.cpu_s[pid] for pid in worker_pids)
    deliveries = c.fanout_events * c.fanout_subscribers
    section.add("daemon_cpu_pct", "daemon CPU during the burst", daemon_s / burst.elapsed_s * 100, "% of a core")
    section.add(
        "subscriber_cpu_pct",
        "subscriber process(es) CPU during the burst",
        workers_s / burst.elapsed_s * 100,
        "% of a core",
    )
    section.add("machine_busy_pct", "all CPUs busy during the burst", burst.busy_pct, "%")
    section.add(
        "daemon_cpu_per_delivery_us",
        "daemon CPU per delivery (its AddNote share included)",
        daemon_s / deliveries * 1e6,
        "us",
    )
    section.add(
        "subscriber_cpu_per_delivery_us", "subscriber CPU per delivery (burst)", workers_s / deliveries * 1e6, "us"
    )


def _latencies(results: list[dict[str, Any]], phase: str) -> list[int]:
    return sorted(us * 1000 for r in results for us in r["latencies_us"].get(phase, []))


def _record_burst(section: Section, c: Counts, writes: Writes, results: list[dict[str, Any]]) -> None:
    latencies = _latencies(results, "burst")
    if not latencies:
        raise BenchError("no subscriber received any event")
    lat, add = Summary.of_ns(latencies), Summary.of_ns(writes.latencies_ns)
    span_s = (max(r["last_rx_ns"]["burst"] for r in results) - writes.first_send_ns) / 1e9
    section.add("written_per_s", "events written per second", c.fanout_events / writes.elapsed_s, "events/s")
    section.add("deliveries_per_s", "deliveries per second (all subscribers)", len(latencies) / span_s, "msg/s")
    section.add("latency_p50_ms", "delivery latency p50 (send to receive)", lat.p50, "ms")
    section.add("latency_p99_ms", "delivery latency p99 (saturated)", lat.p99, "ms")
    section.add("latency_max_ms", "delivery latency max", lat.max, "ms")
    section.add("addnote_p50_ms", f"AddNote p50 under load ({c.fanout_writers} in flight)", add.p50, "ms")
    section.add("addnote_p99_ms", "AddNote p99 under load", add.p99, "ms")
    section.details["burst_latency_ms"] = vars(lat)
    section.details["burst_addnote_ms"] = vars(add)
    section.details["burst_deliveries_timed"] = len(latencies)


def _record_paced(section: Section, c: Counts, writes: Writes, results: list[dict[str, Any]]) -> None:
    latencies = _latencies(results, "paced")
    if not latencies:
        return
    lat = Summary.of_ns(latencies)
    rate = f"{c.paced_rate:g} events/s"
    section.add("paced_latency_p50_ms", f"paced at {rate}: delivery latency p50", lat.p50, "ms")
    section.add("paced_latency_p99_ms", f"paced at {rate}: delivery latency p99", lat.p99, "ms", Goal(50.0))
    section.add("paced_addnote_p50_ms", f"paced at {rate}: AddNote p50", Summary.of_ns(writes.latencies_ns).p50, "ms")
    section.details["paced_latency_ms"] = vars(lat)


def _record_totals(section: Section, c: Counts, results: list[dict[str, Any]]) -> None:
    subs = [s for r in results for s in r["subscribers"]]
    section.add("lost", "events lost (sequence gaps, all subscribers)", sum(s["gaps"] for s in subs), "", Goal(0, "=="))
    section.add("duplicates", "duplicates / out of order", sum(s["dups"] for s in subs), "", Goal(0, "=="))
    section.add("cut_off", "cut-offs (RESOURCE_EXHAUSTED)", sum(s["cutoffs"] for s in subs), "", Goal(0, "=="))
    errors = sorted({s["error"] for s in subs if s["error"]})
    events = c.fanout_events + c.paced_events
    cfg = section.details["config"]
    section.notes.append(
        f"{c.fanout_subscribers} subscribers x ({c.fanout_events} burst + {c.paced_events} paced) events = "
        f"{c.fanout_subscribers * events:,} deliveries checked for gaps and duplicates; "
        f"{len(results)} subscriber process(es), one grpc.aio event loop each, one connection per subscriber; "
        "writers: grpc.aio in the main process"
    )
    section.notes.append(
        f"daemon defaults: events.subscriber_queue={cfg['events.subscriber_queue']}, "
        f"grpc.max_concurrent_rpcs={cfg['grpc.max_concurrent_rpcs']}"
    )
    if errors or not all(r["drained"] for r in results):
        section.notes.append(f"subscriber errors: {errors or 'not drained before the deadline'}")
