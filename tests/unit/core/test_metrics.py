from __future__ import annotations

import pytest
from smsfailover.core.metrics import EndpointMetrics, SlidingWindowMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_empty_window_has_no_rate_and_no_percentiles() -> None:
    stats = SlidingWindowMetrics(FakeClock()).stats()
    assert (stats.requests, stats.failures, stats.success_rate) == (0, 0, None)
    assert (stats.p50_ms, stats.p95_ms, stats.p99_ms) == (None, None, None)
    assert stats.window_s == 900.0


def test_counts_and_success_rate() -> None:
    metrics = SlidingWindowMetrics(FakeClock())
    for i in range(10):
        metrics.record(ok=i != 0, latency_ms=10)
    stats = metrics.stats()
    assert (stats.requests, stats.failures, stats.success_rate) == (10, 1, 0.9)


def test_percentiles_are_within_the_bin_width() -> None:
    clock = FakeClock()
    metrics = SlidingWindowMetrics(clock)
    for ms in range(1, 1001):  # 1..1000 ms spread over a few seconds
        metrics.record(ok=True, latency_ms=float(ms))
        clock.now += 0.005
    stats = metrics.stats()
    assert stats.p50_ms == pytest.approx(500, rel=0.05)
    assert stats.p95_ms == pytest.approx(950, rel=0.05)
    assert stats.p99_ms == pytest.approx(990, rel=0.05)


def test_sub_millisecond_and_huge_latencies_are_bounded() -> None:
    metrics = SlidingWindowMetrics(FakeClock())
    metrics.record(ok=True, latency_ms=0.2)
    metrics.record(ok=True, latency_ms=-1)
    metrics.record(ok=True, latency_ms=10_000_000)
    stats = metrics.stats()
    assert stats.p50_ms == 0.5
    assert stats.p99_ms is not None
    assert stats.p99_ms < 700_000


def test_old_samples_leave_the_window() -> None:
    clock = FakeClock()
    metrics = SlidingWindowMetrics(clock, window_s=10)
    metrics.record(ok=False, latency_ms=100)
    clock.now += 5
    metrics.record(ok=True, latency_ms=20)
    assert metrics.stats().requests == 2
    clock.now += 6
    stats = metrics.stats()
    assert (stats.requests, stats.failures, stats.success_rate) == (1, 0, 1.0)
    clock.now += 100
    assert metrics.stats().requests == 0


def test_memory_is_bounded_by_the_number_of_buckets() -> None:
    clock = FakeClock()
    metrics = SlidingWindowMetrics(clock, window_s=60)
    for _ in range(5000):
        metrics.record(ok=True, latency_ms=clock.now % 997)
        clock.now += 0.25
    assert len(metrics._buckets) <= 60
    assert 236 <= metrics.stats().requests <= 240  # the newest bucket may be partly filled


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        SlidingWindowMetrics(FakeClock(), window_s=0)
    with pytest.raises(ValueError, match="bucket_s"):
        SlidingWindowMetrics(FakeClock(), window_s=1, bucket_s=2)


def test_endpoint_metrics_keeps_one_window_per_endpoint() -> None:
    metrics = EndpointMetrics(FakeClock(), window_s=60)
    metrics.record("origin", ok=False, latency_ms=2000)
    metrics.record("edge", ok=True, latency_ms=40)
    snapshot = metrics.snapshot()
    assert list(snapshot) == ["edge", "origin"]
    assert snapshot["origin"]["success_rate"] == 0.0
    assert snapshot["edge"]["requests"] == 1
    assert metrics.for_endpoint("edge") is metrics.for_endpoint("edge")
