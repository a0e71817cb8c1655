"""Hedging: when to start the edge attempt beside a slow origin attempt, and how often we may.

"The Tail at Scale" (Dean and Barroso): a request slower than the usual tail is likely stuck; a second copy
sent then cuts the tail at little cost. Here the copy goes to the edge with the same idempotency key, so the
shared ledger keeps the send exactly-once whichever copy claims first. The budget caps the extra load: in a
brownout every origin call is slow, and hedging them all would double the traffic.
"""

from __future__ import annotations

from smsfailover.core.clock import Clock
from smsfailover.core.metrics import SlidingWindowMetrics

HEDGE_MIN_S = 0.02  # a floor for a very fast origin: below this a hedge mostly copies calls about to answer
HEDGE_MIN_SAMPLES = 10  # fewer origin latencies than this: no trustworthy p95, plain failover
_RECOMPUTE_S = 1.0  # the delay is read from the window at most once a second: merging it per send cost ~0.75 ms


def hedge_delay_s(
    p95_ms: float | None, *, samples: int, origin_timeout_s: float, p50_ms: float | None = None
) -> float | None:
    """How long the origin attempt runs alone: max(p95, 2 x p50, 20 ms). The p50 term keeps a tight
    distribution (p95 barely above the median) from hedging calls that are merely ordinary. None when there
    is nothing to hedge on (too few samples, or a delay that reaches the origin timeout, where plain failover
    starts the edge anyway)."""
    if p95_ms is None or samples < HEDGE_MIN_SAMPLES:
        return None
    delay = max(p95_ms / 1000.0, 2 * (p50_ms or 0.0) / 1000.0, HEDGE_MIN_S)
    return None if delay >= origin_timeout_s else delay


class OriginLatency:
    """The origin latencies the hedge delay is read from: every origin answer, plus each outrun (cancelled)
    attempt at the time it was cancelled. The client's metrics leave an outrun attempt out (it is neither a
    success nor a failure), but the delay must see it: dropping the slowest calls would pull the p95 down
    and hedge more and more."""

    def __init__(self, clock: Clock, *, window_s: float = 900.0) -> None:
        self._clock = clock
        self._window = SlidingWindowMetrics(clock, window_s=window_s)
        self._computed: tuple[float, float | None] | None = None  # (when, delay) of the last reading

    @property
    def requests(self) -> int:
        return self._window.stats().requests

    def record(self, latency_ms: float) -> None:
        self._window.record(ok=True, latency_ms=latency_ms)

    def delay_s(self, *, origin_timeout_s: float) -> float | None:
        now = self._clock.monotonic()
        if self._computed is not None and now - self._computed[0] < _RECOMPUTE_S:
            return self._computed[1]
        stats = self._window.stats()
        delay = hedge_delay_s(
            stats.p95_ms, samples=stats.requests, origin_timeout_s=origin_timeout_s, p50_ms=stats.p50_ms
        )
        self._computed = (now, delay)
        return delay


class HedgeBudget:
    """A token bucket counted in sends, not seconds: each send deposits `ratio` of a token, each hedge spends
    one, at most `burst` are saved. Over any long run hedges <= ratio * sends + burst."""

    def __init__(self, ratio: float = 0.1, *, burst: float = 10.0, initial: float = 1.0) -> None:
        if not 0 <= ratio <= 1 or burst < 1 or not 0 <= initial <= burst:
            raise ValueError("need 0 <= ratio <= 1, burst >= 1 and 0 <= initial <= burst")
        self.ratio = ratio
        self.burst = burst
        self._tokens = initial
        self.spent = 0
        self.refused = 0

    @property
    def tokens(self) -> float:
        return self._tokens

    def deposit(self) -> None:
        self._tokens = min(self.burst, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.spent += 1
            return True
        self.refused += 1
        return False
