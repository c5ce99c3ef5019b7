"""What every benchmark gets: the sizes of this run and a scratch directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Counts:
    """How much work each benchmark does."""

    latency_warmup: int = 200
    latency_calls: int = 5000
    fanout_subscribers: int = 100
    fanout_events: int = 1000
    fanout_writers: int = 6
    paced_events: int = 1000
    paced_rate: float = 100.0  # 10,000 deliveries/s to 100 subscribers
    startup_runs: int = 5
    startup_journal_events: int = 100_000
    cli_runs: int = 5
    idle_seconds: float = 2.0
    append_warmup: int = 50
    append_notes: int = 1000
    select_calls: int = 100
    modbus_seconds: float = 3.0
    unlock_cycles: int = 50
    printer_jobs: int = 50


FULL = Counts()
QUICK = Counts(
    latency_warmup=50,
    latency_calls=500,
    fanout_subscribers=20,
    fanout_events=200,
    paced_events=40,
    startup_runs=2,
    startup_journal_events=10_000,
    cli_runs=2,
    append_warmup=10,
    append_notes=100,
    select_calls=20,
    modbus_seconds=1.0,
    unlock_cycles=10,
    printer_jobs=10,
)


@dataclass(frozen=True)
class Context:
    """One benchmark's view of the run.

    :param counts: the sizes (full or quick).
    :param scratch: a directory of its own, removed after the run.
    :param fanout_procs: how many subscriber processes the fan-out uses.
    """

    counts: Counts
    scratch: Path
    fanout_procs: int = 1

    def dir(self, name: str) -> Path:
        """A fresh subdirectory of the scratch directory."""
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=False)
        return path
