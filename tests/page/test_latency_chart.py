"""The chart's buckets (per minute, per endpoint, from the send log) and its geometry."""

from __future__ import annotations

from pathlib import Path

from smsfailover.express_shim.latency_chart import (
    BUCKETS,
    HEIGHT,
    Bucket,
    build_chart,
    latency_buckets,
    latency_chart,
)
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.storage.sqlite import SqliteDatabase
from smsfailover.express_shim.window_stats import SendLog

NOW_MS = 1_800_000_000_000


def empty(endpoint_count: int = 2) -> dict[str, tuple[Bucket, ...]]:
    rows = tuple(Bucket(NOW_MS - (BUCKETS - i) * 60_000, 0, None, None) for i in range(BUCKETS))
    return {name: rows for name in ("origin", "edge")[:endpoint_count]}


async def test_buckets_group_sends_per_minute_and_endpoint_and_drop_older_ones(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "chart.db"))
    try:
        await migrate(db)
        log = SendLog(db)
        sends = [
            ("origin", 10.0, NOW_MS - 10_000),  # the last minute
            ("origin", 30.0, NOW_MS - 20_000),
            ("origin", 1000.0, NOW_MS - 30_000),
            ("edge", 200.0, NOW_MS - 14 * 60_000 - 30_000),  # the first minute of the window
            ("edge", 999.0, NOW_MS - 16 * 60_000),  # too old
            ("origin", 5.0, NOW_MS - 10_000),
        ]
        for i, (endpoint, latency, at_ms) in enumerate(sends):
            ws = "other_ws" if i == 5 else "ws_chart"
            await log.record(
                workspace_id=ws,
                endpoint=endpoint,
                ok=True,
                status="queued",
                latency_ms=latency,
                at_ms=at_ms,
                message_id=f"msg_{i}",
            )
        buckets = await latency_buckets(db, "ws_chart", NOW_MS)
        chart = await latency_chart(db, "ws_chart", NOW_MS)
    finally:
        await db.close()
    assert len(buckets["origin"]) == BUCKETS
    last = buckets["origin"][-1]
    assert (last.requests, last.p50_ms, last.p95_ms) == (3, 30.0, 1000.0)
    assert sum(b.requests for b in buckets["origin"]) == 3  # the other workspace's send is not here
    assert buckets["edge"][0].requests == 1
    assert buckets["edge"][0].p95_ms == 200.0
    assert sum(b.requests for b in buckets["edge"]) == 1
    assert chart.y_max_ms == 1000.0
    assert not chart.empty
    assert chart.summary() == (
        "Response times over the last 15 minutes. origin: 3 sends, slowest minute p95 1000 ms; "
        "edge: 1 sends, slowest minute p95 200 ms."
    )


def test_an_empty_window_draws_no_lines_and_says_so() -> None:
    chart = build_chart(empty(), NOW_MS)
    assert chart.empty
    assert chart.y_max_ms == 10.0
    assert all(not s.segments and not s.dots for s in chart.series)
    assert "origin: no sends; edge: no sends" in chart.summary()


def test_a_minute_without_sends_breaks_the_line_and_a_lone_minute_is_a_dot() -> None:
    rows = list(empty(1)["origin"])
    for i in (0, 1, 2, 5):
        rows[i] = Bucket(rows[i].start_ms, 1, 40.0, 80.0)
    chart = build_chart({"origin": tuple(rows)}, NOW_MS)
    p50 = next(s for s in chart.series if s.quantile == "p50")
    assert len(p50.segments) == 1
    assert len(p50.segments[0].split(" ")) == 3
    assert len(p50.dots) == 1
    assert chart.y_max_ms == 100.0
    for x, y in (tuple(map(float, point.split(","))) for point in p50.segments[0].split(" ")):
        assert chart.left <= x <= chart.right_x
        assert 0 <= y <= HEIGHT


def test_the_axis_rounds_up_to_a_readable_value() -> None:
    def y_max(p95: float) -> float:
        rows = list(empty(1)["origin"])
        rows[-1] = Bucket(rows[-1].start_ms, 1, p95, p95)
        return build_chart({"origin": tuple(rows)}, NOW_MS).y_max_ms

    assert [y_max(v) for v in (3, 10, 11, 49, 51, 180, 1999, 2001)] == [10, 10, 20, 50, 100, 200, 2000, 5000]
