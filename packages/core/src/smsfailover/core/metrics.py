"""Per-endpoint request metrics over a sliding time window, in bounded memory.

Choice: a ring of fixed-width time buckets (1 s by default, so 900 for the 15 min window), each holding a
request count, a failure count and a sparse log-scale latency histogram (bins 5 % wide). Memory is bounded by
buckets x bins (at most ~275 bins cover 1 ms..10 min), whatever the traffic; counts are exact, and percentiles
are exact to within the 5 % bin width, which is plenty for a dashboard and a routing log. A capped reservoir
would bound memory too, but it loses exact counts and its percentiles get noisy exactly when traffic spikes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from smsfailover.core.clock import Clock

_GROWTH = 1.05
_LOG_GROWTH = math.log(_GROWTH)
_MAX_BIN = int(math.log(600_000) / _LOG_GROWTH) + 1  # 10 minutes; anything slower shares the last bin


def _bin_of(latency_ms: float) -> int:
    if latency_ms < 1.0:
        return 0
    return min(_MAX_BIN, 1 + int(math.log(latency_ms) / _LOG_GROWTH))


def _value_of(index: int) -> float:
    """The middle of a bin, in milliseconds."""
    if index == 0:
        return 0.5
    low = _GROWTH ** (index - 1)
    return low * (1 + _GROWTH) / 2


@dataclass(slots=True)
class _Bucket:
    slot: int
    requests: int = 0
    failures: int = 0
    bins: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointStats:
    window_s: float
    requests: int
    failures: int
    success_rate: float | None  # None when there were no requests in the window
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "window_s": self.window_s,
            "requests": self.requests,
            "failures": self.failures,
            "success_rate": self.success_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
        }


class SlidingWindowMetrics:
    def __init__(self, clock: Clock, *, window_s: float = 900.0, bucket_s: float = 1.0) -> None:
        if window_s <= 0 or bucket_s <= 0 or bucket_s > window_s:
            raise ValueError("need 0 < bucket_s <= window_s")
        self._clock = clock
        self.window_s = window_s
        self._bucket_s = bucket_s
        self._slots = math.ceil(window_s / bucket_s)
        self._buckets: deque[_Bucket] = deque()

    def record(self, *, ok: bool, latency_ms: float) -> None:
        bucket = self._current_bucket()
        bucket.requests += 1
        if not ok:
            bucket.failures += 1
        index = _bin_of(max(0.0, latency_ms))
        bucket.bins[index] = bucket.bins.get(index, 0) + 1

    def stats(self) -> EndpointStats:
        self._expire(self._slot_now())
        requests = sum(b.requests for b in self._buckets)
        failures = sum(b.failures for b in self._buckets)
        merged: dict[int, int] = {}
        for bucket in self._buckets:
            for index, count in bucket.bins.items():
                merged[index] = merged.get(index, 0) + count
        p50, p95, p99 = (_percentile(merged, requests, q) for q in (0.50, 0.95, 0.99))
        rate = None if requests == 0 else round((requests - failures) / requests, 4)
        return EndpointStats(self.window_s, requests, failures, rate, p50, p95, p99)

    def _slot_now(self) -> int:
        return int(self._clock.monotonic() // self._bucket_s)

    def _expire(self, slot: int) -> None:
        oldest_kept = slot - self._slots + 1
        while self._buckets and self._buckets[0].slot < oldest_kept:
            self._buckets.popleft()

    def _current_bucket(self) -> _Bucket:
        slot = self._slot_now()
        self._expire(slot)
        if self._buckets and self._buckets[-1].slot == slot:
            return self._buckets[-1]
        bucket = _Bucket(slot)
        self._buckets.append(bucket)
        return bucket


def _percentile(bins: dict[int, int], total: int, q: float) -> float | None:
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return round(_value_of(index), 1)
    return None  # unreachable: the bins sum to total


class EndpointMetrics:
    """One SlidingWindowMetrics per endpoint name ("origin", "edge"), created on first use."""

    def __init__(self, clock: Clock, *, window_s: float = 900.0) -> None:
        self._clock = clock
        self._window_s = window_s
        self._by_endpoint: dict[str, SlidingWindowMetrics] = {}

    def for_endpoint(self, endpoint: str) -> SlidingWindowMetrics:
        metrics = self._by_endpoint.get(endpoint)
        if metrics is None:
            metrics = self._by_endpoint[endpoint] = SlidingWindowMetrics(self._clock, window_s=self._window_s)
        return metrics

    def record(self, endpoint: str, *, ok: bool, latency_ms: float) -> None:
        self.for_endpoint(endpoint).record(ok=ok, latency_ms=latency_ms)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {name: m.stats().as_dict() for name, m in sorted(self._by_endpoint.items())}
