"""Nearest-rank percentiles and the send log's window, on both databases."""

from __future__ import annotations

from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.window_stats import WINDOW_S, SendLog, percentile


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


async def test_the_window_counts_only_the_last_15_minutes_of_one_workspace_and_endpoint(database: Database) -> None:
    await migrate(database)
    log = SendLog(database)
    now = 10_000_000

    async def add(ws: str, endpoint: str, ok: bool, latency: float, age_s: float, mid: str) -> None:
        at = now - int(age_s * 1000)
        status = "queued" if ok else "failed"
        await log.record(
            workspace_id=ws, endpoint=endpoint, ok=ok, status=status, latency_ms=latency, at_ms=at, message_id=mid
        )

    await add("a", "origin", True, 10, 1, "m1")
    await add("a", "origin", False, 30, 2, "m2")
    await add("a", "origin", True, 20, WINDOW_S + 1, "m3")  # too old
    await add("a", "edge", True, 99, 1, "m4")
    await add("b", "origin", True, 5, 1, "m5")
    await add("a", "origin", True, 10, 1, "m1")  # the same message again: not counted twice

    stats = await log.window("a", "origin", now)

    assert (stats.requests, stats.successes, stats.success_rate) == (2, 1, 0.5)
    assert (stats.p50_ms, stats.p99_ms) == (10.0, 30.0)
    assert await log.count("a", now, endpoint="edge") == 1
    assert await log.count("a", now, status="failed") == 1
    assert (await log.window("c", "origin", now)).success_rate is None
