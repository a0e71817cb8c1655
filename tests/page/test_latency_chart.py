"""The chart's buckets (per minute, per endpoint, from the send log's rollup, a bounded read) and its geometry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from smsfailover.express_shim.latency_chart import (
    BUCKETS,
    HEIGHT,
    Bucket,
    build_chart,
    latency_buckets,
    latency_chart,
)
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.storage.sqlite import SqliteDatabase
from smsfailover.express_shim.window_stats import (
    BUCKET_COUNT,
    ENDPOINTS,
    SLOT_MS,
    SendLog,
    bucket_of,
    bucket_range,
    percentile,
)

from tests.origin.pg import postgres_database

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def chart_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = SqliteDatabase(str(tmp_path / "chart.db"))
        try:
            yield db
        finally:
            await db.close()
        return
    async with postgres_database() as pg:
        yield pg


async def test_a_busy_window_reads_a_bounded_number_of_rows_and_each_minute_is_within_a_bucket(
    chart_db: Database,
) -> None:
    await migrate(chart_db)
    log = SendLog(chart_db)
    sends = [
        ("origin" if i % 3 else "edge", 3.0 + (i * 37) % 900, NOW_MS - 5_000 - (i * 7_919) % (16 * 60_000), i)
        for i in range(3_000)
    ]
    for chunk in range(0, len(sends), 500):
        await asyncio.gather(
            *(
                log.record(
                    workspace_id="busy",
                    endpoint=endpoint,
                    ok=True,
                    status="sent",
                    latency_ms=latency,
                    at_ms=at_ms,
                    message_id=f"msg_{i}",
                )
                for endpoint, latency, at_ms, i in sends[chunk : chunk + 500]
            )
        )
    fetched: list[int] = []
    real_fetch = chart_db.fetch

    async def counting_fetch(sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        rows = await real_fetch(sql, params)
        fetched.append(len(rows))
        return rows

    chart_db.fetch = counting_fetch  # type: ignore[method-assign]
    buckets = await latency_buckets(chart_db, "busy", NOW_MS)
    assert len(fetched) == 1
    assert fetched[0] <= BUCKETS * len(ENDPOINTS) * BUCKET_COUNT  # per minute, endpoint and bucket, not per send
    # the chart's minutes end with the current 10-second slot (NOW_MS is on a slot boundary)
    start = NOW_MS + SLOT_MS - BUCKETS * 60_000
    for endpoint, rows in buckets.items():
        for i, bucket in enumerate(rows):
            mine = sorted(
                lat for e, lat, at, _ in sends if e == endpoint and start + i * 60_000 <= at < start + (i + 1) * 60_000
            )
            assert bucket.requests == len(mine)
            for got, q in ((bucket.p50_ms, 0.5), (bucket.p95_ms, 0.95)):
                exact = percentile(mine, q)
                if exact is None:
                    assert got is None
                    continue
                lower, upper = bucket_range(bucket_of(exact))
                assert upper is not None
                assert got is not None
                assert abs(got - exact) <= upper - lower
