"""The status route's 15-minute view, computed from the send log (sends of both endpoints, recorded here).

Percentiles use the nearest-rank method over the recorded latencies, so p99 of 100 sends is the 99th slowest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smsfailover.express_shim.storage.base import Database

WINDOW_S = 900
_MAX_ROWS = 200_000  # bounded work per status call, even at the full rate limit for 15 minutes


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


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return round(sorted_values[rank - 1], 1)


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
        await self._db.execute(
            "INSERT INTO send_log (workspace_id, endpoint, ok, status, latency_ms, created_at, message_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (workspace_id, endpoint, ok, status, float(latency_ms), at_ms, message_id),
        )

    async def window(self, workspace_id: str, endpoint: str, now_ms: int) -> WindowStats:
        rows = await self._db.fetch(
            "SELECT ok, latency_ms FROM send_log WHERE workspace_id = ? AND endpoint = ? AND created_at >= ? "
            "ORDER BY created_at DESC LIMIT ?",
            (workspace_id, endpoint, now_ms - WINDOW_S * 1000, _MAX_ROWS),
        )
        latencies = sorted(float(str(r["latency_ms"])) for r in rows)
        successes = sum(1 for r in rows if bool(r["ok"]))
        return WindowStats(
            requests=len(rows),
            successes=successes,
            p50_ms=percentile(latencies, 0.50),
            p95_ms=percentile(latencies, 0.95),
            p99_ms=percentile(latencies, 0.99),
        )

    async def count(
        self, workspace_id: str, now_ms: int, *, endpoint: str | None = None, status: str | None = None
    ) -> int:
        sql = "SELECT COUNT(*) AS n FROM send_log WHERE workspace_id = ? AND created_at >= ?"
        params: list[object] = [workspace_id, now_ms - WINDOW_S * 1000]
        if endpoint is not None:
            sql += " AND endpoint = ?"
            params.append(endpoint)
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        rows = await self._db.fetch(sql, params)
        return int(str(rows[0]["n"]))

    async def unknown_messages(self, workspace_id: str, now_ms: int, lease_s: float) -> int:
        """Messages of the window whose outcome is unknown: reported so (send log), or left mid-send by a crash
        (still "unknown" after their lease ran out; younger ones are simply still in flight)."""
        rows = await self._db.fetch(
            "SELECT COUNT(*) AS n FROM messages m WHERE m.workspace_id = ? AND m.status = 'unknown' "
            "AND m.created_at >= ? AND (m.created_at < ? OR EXISTS "
            "(SELECT 1 FROM send_log s WHERE s.message_id = m.id AND s.status = 'unknown'))",
            (workspace_id, now_ms - WINDOW_S * 1000, now_ms - int(lease_s * 1000)),
        )
        return int(str(rows[0]["n"]))

    async def purge(self, older_than_ms: int) -> int:
        return await self._db.execute("DELETE FROM send_log WHERE created_at < ?", (older_than_ms,))
