"""Statistics for the report: nearest-rank percentiles, medians and a latency summary."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(ordered: Sequence[int | float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of already sorted values.

    :raises ValueError: when ``ordered`` is empty.
    """
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def median(values: Iterable[int | float]) -> float:
    """The median (mean of the middle two for an even count)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True)
class Summary:
    """Percentiles of a sample of durations, in milliseconds."""

    n: int
    p50: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of_ns(cls, durations_ns: Sequence[int]) -> Summary:
        """Summarises durations given in nanoseconds. :raises ValueError: when empty."""
        ordered = sorted(durations_ns)
        ms = 1e-6
        return cls(
            n=len(ordered),
            p50=percentile(ordered, 50) * ms,
            p99=percentile(ordered, 99) * ms,
            mean=sum(ordered) / len(ordered) * ms,
            min=ordered[0] * ms,
            max=ordered[-1] * ms,
        )
