"""The liveness round: the one place degraded mode is decided (DESIGN.md, "Ledger authority" rule 5; detector.py).

Each round of each origin process, apart from any request:

    1. an authenticated ping of the edge ledger (every shard answers): a success is this process's round trip
    2. share: the freshest round trip this process has seen (a ping's or a request's) goes into one database row,
       which keeps the newest of every process's; the row is read back
    3. decide: no round trip anywhere for longer than the failover budget -> degraded (local ledger);
       degraded, a round trip seen again, and no key of the local window left to push -> back to the edge ledger

So a process whose own link is sick keeps answering 503 `ledger_unavailable` (its clients fail over to the edge)
while another process still reaches the edge, and a blip shorter than the budget never leaves the edge ledger.
"""

from __future__ import annotations

from typing import Any

from smsfailover.core.clock import Clock
from smsfailover.express_shim.edge_client import EdgeUnavailable
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector
from smsfailover.express_shim.ledger.queue import EdgeLedgerQueue
from smsfailover.express_shim.ledger.remote_store import EdgeLedger
from smsfailover.express_shim.storage.base import Database

LIVENESS_TABLE = """
CREATE TABLE IF NOT EXISTS edge_ledger_liveness (
    name TEXT PRIMARY KEY,
    last_round_trip_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
)
"""
_ROW = "edge_ledger"
# Keeps the newest of every process's round trips (CASE, not MAX(a, b): PostgreSQL has no two-argument MAX).
_SHARE = """
INSERT INTO edge_ledger_liveness (name, last_round_trip_at, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    last_round_trip_at = CASE WHEN excluded.last_round_trip_at > edge_ledger_liveness.last_round_trip_at
                              THEN excluded.last_round_trip_at ELSE edge_ledger_liveness.last_round_trip_at END,
    updated_at = excluded.updated_at
"""
_READ = "SELECT last_round_trip_at FROM edge_ledger_liveness WHERE name = ?"


class LedgerLiveness:
    def __init__(
        self, db: Database, edge: EdgeLedger, detector: EdgeLedgerDetector, queue: EdgeLedgerQueue, clock: Clock
    ) -> None:
        self._db = db
        self._edge = edge
        self._detector = detector
        self._queue = queue
        self._clock = clock
        self._shared_ms = 0  # what this process last wrote: a write only when it has something newer
        # each edge ledger shard as the last ping reported it (for status and the page), or why it got no answer
        self.shards: list[dict[str, Any]] = []
        self.shards_error: str | None = None
        self.checked_at: float | None = None

    async def run_once(self) -> bool:
        """One round; True while degraded."""
        detector = self._detector
        try:
            self.shards, self.shards_error = await self._edge.ping(), None
        except EdgeUnavailable as exc:
            self.shards_error = exc.reason
            detector.failed(exc)
        else:
            detector.success()
        self.checked_at = self._clock.time()
        shared = await self._share(detector.last_ok)
        if not detector.unreachable:
            if detector.outage(shared):
                detector.enter()
        elif not detector.outage(shared) and not await self._queue.local_window_left():
            # reconcile.py (of any process: the queue is shared) has pushed the local window
            detector.leave()
        return detector.unreachable

    async def _share(self, last_ok: float | None) -> float | None:
        now_ms = round(self._clock.time() * 1000)
        if last_ok is not None and round(last_ok * 1000) > self._shared_ms:
            self._shared_ms = round(last_ok * 1000)
            await self._db.execute(_SHARE, (_ROW, self._shared_ms, now_ms))
        rows = await self._db.fetch(_READ, (_ROW,))
        return float(str(rows[0]["last_round_trip_at"])) / 1000 if rows else None
