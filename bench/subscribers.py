"""A subscriber process of the fan-out benchmark: many Kiosk.WatchEvents streams on one event loop.

Run as ``python -m bench.subscribers TARGET --count N --after A --warmup W --out FILE``. Each
subscriber has its own channel (its own connection), watches from sequence A, and checks that it
receives every sequence exactly once and in order. The process prints ``ready`` once every
subscriber has received sequence W. Then, on stdin, ``reach S`` makes it wait until every
subscriber has received S and answer ``reached S`` (``late S`` past the deadline); ``end S``
makes it wait the same way, write its results to FILE as JSON and print ``done``.
Notes whose text is ``fanout PHASE SEND_NS`` are timed: receive time minus send time, per phase.

A subscriber ended with RESOURCE_EXHAUSTED (too slow) is counted and reconnects from the last
sequence it received, as a real UI would; any other error ends it and is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from hwd.rpc.pb.hwd.v1 import kiosk_pb2, kiosk_pb2_grpc

MARK = "fanout "  # a timed note's text: MARK, its phase, a space, the writer's time.time_ns() at sending
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]  # one connection per subscriber


class Subscriber:
    """One WatchEvents stream and what it saw.

    :param target: the daemon's ui.sock target.
    :param after: the sequence it watches after.
    """

    def __init__(self, target: str, after: int) -> None:
        self.target = target
        self.last = after
        self.received = 0
        self.gaps = 0
        self.dups = 0
        self.cutoffs = 0
        self.error = ""
        self.latencies_ns: dict[str, list[int]] = {}
        self.last_rx_ns: dict[str, int] = {}
        self.goal = 0
        self.reached = asyncio.Event()

    def expect(self, sequence: int) -> None:
        """Sets :attr:`reached` once sequence ``sequence`` has been received."""
        self.goal = sequence
        self.reached.clear()
        if self.last >= sequence or self.error:
            self.reached.set()

    async def run(self) -> None:
        """Watches until cancelled or ended by an error other than RESOURCE_EXHAUSTED."""
        async with aio.insecure_channel(self.target, options=CHANNEL_OPTIONS) as channel:
            stub = kiosk_pb2_grpc.KioskStub(channel)
            while True:
                call = stub.WatchEvents(kiosk_pb2.WatchEventsRequest(after_sequence=self.last))
                try:
                    async for event in call:
                        self._receive(event, time.time_ns())
                    self.error = "stream ended"
                except aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        self.cutoffs += 1
                        continue
                    self.error = f"{exc.code().name}: {exc.details()}"
                self.reached.set()
                return

    def _receive(self, event: Any, now_ns: int) -> None:
        seq = event.sequence
        if seq <= self.last:
            self.dups += 1
            return
        self.gaps += seq - self.last - 1
        self.last = seq
        self.received += 1
        text = event.note_added.text
        if text.startswith(MARK):
            phase, _, sent = text[len(MARK) :].partition(" ")
            self.latencies_ns.setdefault(phase, []).append(now_ns - int(sent))
            self.last_rx_ns[phase] = now_ns
        if seq >= self.goal:
            self.reached.set()

    def result(self, end: int) -> dict[str, Any]:
        """What it saw; a missing tail (last < end) counts as lost."""
        return {
            "received": self.received,
            "gaps": self.gaps + max(0, end - self.last),
            "dups": self.dups,
            "cutoffs": self.cutoffs,
            "error": self.error,
            "last": self.last,
        }


async def _all_reach(subs: list[Subscriber], sequence: int, timeout: float) -> bool:
    for sub in subs:
        sub.expect(sequence)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.reached.wait() for s in subs)), timeout)
    except TimeoutError:
        return False
    return True


async def _commands(subs: list[Subscriber], timeout: float) -> int:
    """Answers ``reach S`` lines until ``end S``. :returns: S of the ``end`` line."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        command, _, arg = line.strip().partition(" ")
        if command == "reach":
            reached = await _all_reach(subs, int(arg), timeout)
            print(f"{'reached' if reached else 'late'} {arg}", flush=True)
        elif command == "end":
            return int(arg)
        else:
            raise SystemExit(f"unexpected command {line!r}")


async def main(args: argparse.Namespace) -> None:
    """Runs the subscribers through the protocol described above."""
    subs = [Subscriber(args.target, args.after) for _ in range(args.count)]
    tasks = [asyncio.create_task(s.run(), name=f"subscriber-{i}") for i, s in enumerate(subs)]
    if not await _all_reach(subs, args.warmup, args.timeout):
        print("not ready: some subscribers did not receive the warm-up event", flush=True)
    print("ready", flush=True)
    end = await _commands(subs, args.timeout)
    drained = await _all_reach(subs, end, args.timeout)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    phases = sorted({phase for s in subs for phase in s.latencies_ns})
    doc = {
        "drained": drained,
        "subscribers": [s.result(end) for s in subs],
        "latencies_us": {p: [ns // 1000 for s in subs for ns in s.latencies_ns.get(p, [])] for p in phases},
        "last_rx_ns": {p: max(s.last_rx_ns.get(p, 0) for s in subs) for p in phases},
    }
    Path(args.out).write_text(json.dumps(doc))
    print("done", flush=True)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.subscribers")
    parser.add_argument("target")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--after", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(_parse(sys.argv[1:])))
