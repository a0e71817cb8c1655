"""Per-workspace token buckets: SMSFAILOVER_RATE_LIMIT messages per second, bursts up to one second's worth."""

from __future__ import annotations

import math
from dataclasses import dataclass

from smsfailover.core.clock import Clock

MAX_TRACKED_KEYS = 10_000  # bounded memory: idle buckets are full anyway, so forgetting them changes nothing


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    def __init__(self, *, rate: float, clock: Clock, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = float(rate)
        self._burst = float(burst if burst is not None else max(rate, 1.0))
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> float:
        """Take one token: 0.0 if allowed, else the seconds to wait before one is available."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._forget_full_buckets(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def retry_after_header(self, wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))

    def _forget_full_buckets(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * self._rate >= self._burst]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]
