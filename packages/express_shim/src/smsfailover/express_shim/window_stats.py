"""The status route's 15-minute view of the send log (sends of both endpoints, recorded here), at a bounded cost.

Every send the log records is also counted, in the same statement or transaction, into `send_stats`: one row per
(workspace, 10-second slot, endpoint, latency bucket) holding its requests, successes, and the fastest and slowest
latency seen. A status call reads

    the rollup for the window's whole slots   at most 91 slots x 2 endpoints x the buckets in use
    the send log for the window's first slot  only the part of it inside the window (< 10 s of sends), by index

and gets back one row per endpoint and bucket, whatever the traffic: no send row reaches Python, nothing is
sorted here. Counts are exact (the rollup counts exactly the rows the log keeps: a re-synced message that the log
refuses is not counted either). Percentiles come from the buckets, as in a Prometheus histogram: the bucket of the
nearest-rank sample is found from the counts, and the value interpolated inside it between the fastest and slowest
latency seen there, so each one is within that bucket's width of the exact nearest-rank value (buckets are at most
a third wider than their lower bound), and exact when the bucket holds one send, or the rank is its first or last.

Why not a plain COUNT/SUM over the send log with an index: it is exact and simple, but its cost still grows with
the window's rows (about 65 ms of SQLite CPU for 100,000 sends, with a covering index) on every status call and
every 2.5-second poll of every open settings page. The rollup costs one more upsert per send instead.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from smsfailover.express_shim.storage.base import Database

WINDOW_S = 900
SLOT_MS = 10_000  # the rollup's time step; a whole number of them makes a chart minute
ENDPOINTS = ("origin", "edge")

# Upper bounds (ms, inclusive) of the latency buckets: about ten per decade, 1 ms to 1 minute; one more above.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500, 600, 800,
    1_000, 1_200, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 15_000, 20_000, 30_000, 60_000,
)  # fmt: skip
BUCKET_COUNT = len(LATENCY_BOUNDS_MS) + 1


def bucket_of(latency_ms: float) -> int:
    """The bucket a latency falls in: the first whose upper bound is at or above it (the SQL below agrees)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def bucket_range(index: int) -> tuple[float, float | None]:
    """(lower, upper) of a bucket: it holds latencies above lower, up to and including upper (None: no bound)."""
    lower = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
    upper = float(LATENCY_BOUNDS_MS[index]) if index < len(LATENCY_BOUNDS_MS) else None
    return lower, upper


def bucket_sql(column: str) -> str:
    """The same bucketing as bucket_of, as a SQL expression over a latency column (SQLite and PostgreSQL)."""
    whens = " ".join(f"WHEN {column} <= {bound:g} THEN {i}" for i, bound in enumerate(LATENCY_BOUNDS_MS))
    return f"CASE {whens} ELSE {len(LATENCY_BOUNDS_MS)} END"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of exact values (p99 of 100 sends is the 99th slowest)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return round(sorted_values[rank - 1], 1)


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Sends per latency bucket, with the fastest and slowest latency seen in each (`seen`; a bucket missing there
    spans its whole range); percentiles are interpolated within the bucket of the nearest-rank sample."""

    counts: Mapping[int, int] = field(default_factory=dict)
    seen: Mapping[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        below = 0
        for index in sorted(self.counts):
            count = self.counts[index]
            if count and below + count >= rank:
                return round(self._inside(index, count, rank - below), 1)
            below += count
        return None  # unreachable: the counts sum to total

    def _inside(self, index: int, count: int, position: int) -> float:
        """The position-th (1..count) fastest latency of a bucket, assuming them evenly spread."""
        lower, upper = bucket_range(index)
        fastest, slowest = self.seen.get(index, (lower, upper if upper is not None else lower))
        if count == 1:
            return slowest
        return fastest + (slowest - fastest) * (position - 1) / (count - 1)


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    successes: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def success_rate(self) -> float | None:
        return round(self.successes / self.requests, 4) if self.requests else None

    @classmethod
    def of(cls, successes: int, histogram: LatencyHistogram) -> WindowStats:
        p50, p95, p99 = (histogram.quantile(q) for q in (0.50, 0.95, 0.99))
        return cls(histogram.total, successes, p50, p95, p99)


_STATS_COLUMNS = "workspace_id, slot_ms, endpoint, bucket, requests, successes, min_ms, max_ms"


def _count_into_stats(source: str, where: str) -> str:
    """Count the send_log rows `source` yields (one, or none) into their rollup row. (CASE, not LEAST/GREATEST or
    two-argument MIN/MAX: the same SQL on SQLite and PostgreSQL.)"""
    return (
        f"INSERT INTO send_stats ({_STATS_COLUMNS}) "  # noqa: S608
        f"SELECT workspace_id, created_at - created_at % {SLOT_MS}, endpoint, {bucket_sql('latency_ms')}, 1, "
        f"CASE WHEN ok THEN 1 ELSE 0 END, latency_ms, latency_ms FROM {source} WHERE {where} "
        "ON CONFLICT (workspace_id, slot_ms, endpoint, bucket) DO UPDATE SET "
        "requests = send_stats.requests + excluded.requests, successes = send_stats.successes + excluded.successes, "
        "min_ms = CASE WHEN excluded.min_ms < send_stats.min_ms THEN excluded.min_ms ELSE send_stats.min_ms END, "
        "max_ms = CASE WHEN excluded.max_ms > send_stats.max_ms THEN excluded.max_ms ELSE send_stats.max_ms END"
    )


_INSERT_LOG = (
    "INSERT INTO send_log (workspace_id, endpoint, ok, status, latency_ms, created_at, message_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# PostgreSQL: one statement, so a row is counted exactly when it is inserted, even with concurrent writers.
_RECORD_PG = (
    f"WITH inserted AS ({_INSERT_LOG} RETURNING workspace_id, endpoint, ok, latency_ms, created_at) "
    + _count_into_stats("inserted", "true")
)
# SQLite: the one writer runs the transaction's statements back to back, so changes() is the insert's.
_COUNT_LAST_INSERT = _count_into_stats("send_log", "id = last_insert_rowid() AND changes() = 1")

# The migration's table, and its backfill from the send log already kept (ON CONFLICT: two processes migrating).
SEND_STATS_TABLE = f"""
CREATE TABLE IF NOT EXISTS send_stats (
    workspace_id TEXT NOT NULL,
    slot_ms INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    min_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    PRIMARY KEY (workspace_id, slot_ms, endpoint, bucket)
);
CREATE INDEX IF NOT EXISTS send_stats_time ON send_stats (slot_ms);
-- unknown_15m reads only the window's unknown messages, not all of them
CREATE INDEX IF NOT EXISTS messages_unknown ON messages (workspace_id, created_at) WHERE status = 'unknown';
INSERT INTO send_stats ({_STATS_COLUMNS})
SELECT workspace_id, created_at - created_at % {SLOT_MS}, endpoint, {bucket_sql("latency_ms")}, COUNT(*),
       SUM(CASE WHEN ok THEN 1 ELSE 0 END), MIN(latency_ms), MAX(latency_ms)
FROM send_log WHERE true GROUP BY 1, 2, 3, 4
ON CONFLICT DO NOTHING
"""  # noqa: S608 (constants only)

# The window: whole slots from the rollup, the first slot's part inside the window from the log itself.
_WINDOW = (
    "SELECT endpoint, bucket, SUM(requests) AS requests, SUM(successes) AS successes, "  # noqa: S608
    "MIN(min_ms) AS min_ms, MAX(max_ms) AS max_ms FROM ("
    "SELECT endpoint, bucket, requests, successes, min_ms, max_ms FROM send_stats "
    "WHERE workspace_id = ? AND slot_ms >= ? "
    f"UNION ALL SELECT endpoint, {bucket_sql('latency_ms')} AS bucket, 1 AS requests, "
    "CASE WHEN ok THEN 1 ELSE 0 END AS successes, latency_ms AS min_ms, latency_ms AS max_ms FROM send_log "
    "WHERE workspace_id = ? AND created_at >= ? AND created_at < ?"
    ") AS w GROUP BY endpoint, bucket"
)


def _int(value: object) -> int:
    return int(str(value))  # PostgreSQL's SUM is a numeric


def fastest_and_slowest(row: Mapping[str, object]) -> tuple[float, float]:
    """A rollup row's (min_ms, max_ms)."""
    return float(str(row["min_ms"])), float(str(row["max_ms"]))


class SendLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        *,
        workspace_id: str,
        endpoint: str,
        ok: bool,
        status: str,
        latency_ms: float,
        at_ms: int,
        message_id: str | None,
    ) -> None:
        """One send outcome; a message already logged (a re-synced edge send) is not counted twice."""
        params = (workspace_id, endpoint, ok, status, float(latency_ms), int(at_ms), message_id)
        if self._db.dialect == "postgresql":
            await self._db.execute(_RECORD_PG, params)
        else:
            await self._db.transaction([(_INSERT_LOG, params), (_COUNT_LAST_INSERT, ())])

    async def windows(self, workspace_id: str, now_ms: int) -> dict[str, WindowStats]:
        """Each endpoint's last WINDOW_S seconds (sends timed later than now_ms count too, as they always did)."""
        start_ms = now_ms - WINDOW_S * 1000
        first_whole_slot = -(-start_ms // SLOT_MS) * SLOT_MS
        rows = await self._db.fetch(_WINDOW, (workspace_id, first_whole_slot, workspace_id, start_ms, first_whole_slot))
        counts: dict[str, dict[int, int]] = {name: {} for name in ENDPOINTS}
        seen: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in ENDPOINTS}
        successes = dict.fromkeys(ENDPOINTS, 0)
        for row in rows:
            endpoint, bucket = str(row["endpoint"]), _int(row["bucket"])
            if endpoint in counts:
                counts[endpoint][bucket] = _int(row["requests"])
                seen[endpoint][bucket] = fastest_and_slowest(row)
                successes[endpoint] += _int(row["successes"])
        return {name: WindowStats.of(successes[name], LatencyHistogram(counts[name], seen[name])) for name in ENDPOINTS}

    async def unknown_messages(self, workspace_id: str, now_ms: int, lease_s: float) -> int:
        """Messages of the window whose outcome is unknown: reported so (send log), or left mid-send by a crash
        (still "unknown" after their lease ran out; younger ones are simply still in flight)."""
        rows = await self._db.fetch(
            "SELECT COUNT(*) AS n FROM messages m WHERE m.workspace_id = ? AND m.status = 'unknown' "
            "AND m.created_at >= ? AND (m.created_at < ? OR EXISTS "
            "(SELECT 1 FROM send_log s WHERE s.message_id = m.id AND s.status = 'unknown'))",
            (workspace_id, now_ms - WINDOW_S * 1000, now_ms - int(lease_s * 1000)),
        )
        return _int(rows[0]["n"])

    async def purge(self, older_than_ms: int) -> int:
        """Rows older than the cutoff, from the log and its rollup (a slot goes once all of it is older)."""
        purged = await self._db.execute("DELETE FROM send_log WHERE created_at < ?", (older_than_ms,))
        await self._db.execute("DELETE FROM send_stats WHERE slot_ms < ?", (older_than_ms - SLOT_MS,))
        return purged
