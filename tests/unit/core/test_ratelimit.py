"""Per-workspace token buckets on an injected clock."""

from __future__ import annotations

import pytest
from smsfailover.core import ratelimit
from smsfailover.core.clock import ManualClock
from smsfailover.core.ratelimit import TokenBucketLimiter


def test_a_burst_of_one_seconds_worth_then_a_wait() -> None:
    clock = ManualClock()
    limiter = TokenBucketLimiter(rate=5, clock=clock)
    assert [limiter.acquire("w") for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("w") == pytest.approx(0.2)


def test_tokens_refill_at_the_rate() -> None:
    clock = ManualClock()
    limiter = TokenBucketLimiter(rate=2, clock=clock)
    assert limiter.acquire("w") == 0.0
    assert limiter.acquire("w") == 0.0
    assert limiter.acquire("w") == pytest.approx(0.5)
    clock.advance(0.25)
    assert limiter.acquire("w") == pytest.approx(0.25)
    clock.advance(0.25)
    assert limiter.acquire("w") == 0.0


def test_refill_never_exceeds_the_burst() -> None:
    clock = ManualClock()
    limiter = TokenBucketLimiter(rate=3, clock=clock, burst=2)
    clock.advance(3600)
    assert [limiter.acquire("w") for _ in range(3)] == [0.0, 0.0, pytest.approx(1 / 3)]


def test_workspaces_have_separate_buckets() -> None:
    limiter = TokenBucketLimiter(rate=1, clock=ManualClock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_a_rate_below_one_still_allows_one_message() -> None:
    limiter = TokenBucketLimiter(rate=0.5, clock=ManualClock())
    assert limiter.acquire("w") == 0.0
    assert limiter.acquire("w") == pytest.approx(2.0)


@pytest.mark.parametrize("rate", [0, -1])
def test_the_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucketLimiter(rate=rate, clock=ManualClock())


@pytest.mark.parametrize(("wait", "header"), [(0.0, "1"), (0.01, "1"), (1.0, "1"), (1.2, "2"), (7.0, "7")])
def test_retry_after_is_whole_seconds_and_at_least_one(wait: float, header: str) -> None:
    assert TokenBucketLimiter(rate=1, clock=ManualClock()).retry_after_header(wait) == header


def test_idle_full_buckets_are_forgotten_when_too_many_are_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED_KEYS", 4)
    clock = ManualClock()
    limiter = TokenBucketLimiter(rate=1, clock=clock, burst=2)
    for key in "abcd":
        limiter.acquire(key)
    limiter.acquire("a")  # a is now empty; b, c, d refill to full below
    clock.advance(1)
    assert limiter.acquire("e") == 0.0
    # a's debt is remembered: it had 0 tokens, gained 1 in the second
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(1.0)


def test_when_no_bucket_is_full_half_of_them_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED_KEYS", 4)
    limiter = TokenBucketLimiter(rate=1, clock=ManualClock())
    for key in "abcd":
        assert limiter.acquire(key) == 0.0  # each bucket is now empty
    assert limiter.acquire("e") == 0.0
    # the two oldest were forgotten (a fresh, full bucket), the two newest still remember their debt
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("d") == pytest.approx(1.0)
