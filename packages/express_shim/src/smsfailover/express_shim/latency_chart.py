"""Response times per endpoint over the last 15 minutes, as per-minute p50/p95 buckets laid out for an SVG chart.

The figures come from the send log's rollup (window_stats.py): one aggregate read, at most one row per minute,
endpoint and latency bucket whatever the traffic, with the status route's percentiles (within one latency
bucket's width). The minutes follow the rollup's 10-second slots: the last one ends with the current slot, so the
chart spans the last 15 minutes give or take those seconds. The geometry is computed here so the template only
draws it, and the same buckets feed the chart's text alternative (a table).
"""

from __future__ import annotations

from dataclasses import dataclass

from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.window_stats import (
    ENDPOINTS,
    SLOT_MS,
    WINDOW_S,
    LatencyHistogram,
    fastest_and_slowest,
)

BUCKET_S = 60
BUCKETS = WINDOW_S // BUCKET_S
_MINUTE_MS = BUCKET_S * 1000
if _MINUTE_MS % SLOT_MS:  # pragma: no cover - a module constant
    raise ValueError("a chart minute must be a whole number of the rollup's slots")

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 76, 16, 16, 40


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ms: int
    requests: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Series:
    endpoint: str
    quantile: str  # "p50" or "p95"
    segments: tuple[str, ...]  # SVG polyline "x,y x,y" strings; a minute without sends breaks the line
    dots: tuple[tuple[float, float], ...]  # lone points (a minute with sends between two without)


@dataclass(frozen=True, slots=True)
class Chart:
    now_ms: int
    buckets: dict[str, tuple[Bucket, ...]]
    y_max_ms: float
    y_ticks: tuple[tuple[float, float], ...]  # (value ms, y)
    x_ticks: tuple[tuple[str, float], ...]  # (label, x)
    series: tuple[Series, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_x: int = WIDTH - RIGHT
    top: int = TOP
    bottom_y: int = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return all(b.requests == 0 for rows in self.buckets.values() for b in rows)

    def summary(self) -> str:
        """One sentence for screen readers: the chart's gist."""
        parts = []
        for endpoint, rows in self.buckets.items():
            total = sum(b.requests for b in rows)
            worst = max((b.p95_ms for b in rows if b.p95_ms is not None), default=None)
            if total:
                parts.append(f"{endpoint}: {total} sends, slowest minute p95 {worst:g} ms")
            else:
                parts.append(f"{endpoint}: no sends")
        return "Response times over the last 15 minutes. " + "; ".join(parts) + "."


async def latency_buckets(db: Database, workspace_id: str, now_ms: int) -> dict[str, tuple[Bucket, ...]]:
    end_ms = (now_ms // SLOT_MS + 1) * SLOT_MS  # the end of the current slot
    start_ms = end_ms - BUCKETS * _MINUTE_MS
    rows = await db.fetch(
        f"SELECT endpoint, (slot_ms - ?) / {_MINUTE_MS} AS minute, bucket, SUM(requests) AS requests, "  # noqa: S608
        "MIN(min_ms) AS min_ms, MAX(max_ms) AS max_ms "
        "FROM send_stats WHERE workspace_id = ? AND slot_ms >= ? AND slot_ms < ? GROUP BY 1, 2, 3",
        (start_ms, workspace_id, start_ms, end_ms),
    )
    counts: dict[str, list[dict[int, int]]] = {name: [{} for _ in range(BUCKETS)] for name in ENDPOINTS}
    seen: dict[str, list[dict[int, tuple[float, float]]]] = {name: [{} for _ in range(BUCKETS)] for name in ENDPOINTS}
    for row in rows:
        endpoint, minute, bucket = str(row["endpoint"]), int(str(row["minute"])), int(str(row["bucket"]))
        if endpoint in counts and 0 <= minute < BUCKETS:
            counts[endpoint][minute][bucket] = int(str(row["requests"]))
            seen[endpoint][minute][bucket] = fastest_and_slowest(row)
    result: dict[str, tuple[Bucket, ...]] = {}
    for endpoint, minutes in counts.items():
        buckets = []
        for i, minute_counts in enumerate(minutes):
            histogram = LatencyHistogram(minute_counts, seen[endpoint][i])
            start = start_ms + i * _MINUTE_MS
            buckets.append(Bucket(start, histogram.total, histogram.quantile(0.5), histogram.quantile(0.95)))
        result[endpoint] = tuple(buckets)
    return result


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at or above value (at least 10 ms), for round axis labels."""
    step = 10.0
    while step < value:
        for factor in (2.0, 2.5, 2.0):  # 10 -> 20 -> 50 -> 100 ...
            step *= factor
            if step >= value:
                break
    return step


def _x(index: int) -> float:
    span = WIDTH - RIGHT - LEFT
    return round(LEFT + span * (index + 0.5) / BUCKETS, 1)


def _y(value: float, y_max: float) -> float:
    span = HEIGHT - BOTTOM - TOP
    return round(HEIGHT - BOTTOM - span * min(value, y_max) / y_max, 1)


def _series(endpoint: str, quantile: str, values: list[float | None], y_max: float) -> Series:
    segments: list[str] = []
    dots: list[tuple[float, float]] = []
    run: list[tuple[float, float]] = []
    for i, value in enumerate([*values, None]):
        if value is not None:
            run.append((_x(i), _y(value, y_max)))
            continue
        if len(run) == 1:
            dots.append(run[0])
        elif run:
            segments.append(" ".join(f"{x},{y}" for x, y in run))
        run = []
    return Series(endpoint, quantile, tuple(segments), tuple(dots))


def build_chart(buckets: dict[str, tuple[Bucket, ...]], now_ms: int) -> Chart:
    highest = max((b.p95_ms or 0.0 for rows in buckets.values() for b in rows), default=0.0)
    y_max = _nice_ceiling(highest)
    y_ticks = tuple((y_max * k / 4, _y(y_max * k / 4, y_max)) for k in range(5))
    labelled = [*range(0, BUCKETS - 1, 3), BUCKETS - 1]  # every third minute, and "now": room for larger text
    x_ticks = tuple((f"-{BUCKETS - i} min" if i < BUCKETS - 1 else "now", _x(i)) for i in labelled)
    series = []
    for endpoint, rows in buckets.items():
        series.append(_series(endpoint, "p50", [b.p50_ms for b in rows], y_max))
        series.append(_series(endpoint, "p95", [b.p95_ms for b in rows], y_max))
    return Chart(now_ms, buckets, y_max, y_ticks, x_ticks, tuple(series))


async def latency_chart(db: Database, workspace_id: str, now_ms: int) -> Chart:
    return build_chart(await latency_buckets(db, workspace_id, now_ms), now_ms)
