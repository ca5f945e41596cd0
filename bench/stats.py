"""Latency histograms shared with the Node load generator, and a few statistics helpers.

Buckets grow by 1 % from 1 microsecond, so a percentile is exact to within 1 %; the load
generator (js/loadgen.js, js/jobs.js) fills them with the same formula, and processes merge by
adding counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LAT_BASE_MS = 0.001
LAT_GROWTH = 1.01


def bucket_upper_ms(bucket: int) -> float:
    return float(LAT_BASE_MS * LAT_GROWTH ** (bucket + 1))


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    max_ms: float = 0.0
    n: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Histogram:
        counts = {int(b): int(c) for b, c in raw.get("buckets", [])}
        return cls(counts, float(raw.get("max", 0.0)), int(raw.get("n", 0)))

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        total = cls()
        for part in parts:
            for bucket, count in part.counts.items():
                total.counts[bucket] = total.counts.get(bucket, 0) + count
            total.max_ms = max(total.max_ms, part.max_ms)
            total.n += part.n
        return total

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) in ms, at its bucket's upper bound, never above max."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(self.n * q / 100))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(bucket_upper_ms(bucket), self.max_ms)
        return self.max_ms

    def summary(self) -> dict[str, float | None]:
        return {
            "p50_ms": self.percentile(50),
            "p90_ms": self.percentile(90),
            "p99_ms": self.percentile(99),
            "max_ms": self.max_ms if self.n else None,
        }


def percentile_of(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference
