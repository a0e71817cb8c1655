"""The workspace's failover events: each message the edge sent, and the reason its router gave for it.

The router names the cause on its edge POST (core/failover_reason.py), the edge stores it beside the message row
(D1 migration 0006), and the sync (edge_sync.py) records one event per synced edge send here, once its outcome is
known. The status route and the settings page show the last EVENTS_SHOWN: one indexed read of at most that many
rows, whatever the traffic, each with the message's current status (a delivery callback moves it on). Rows go with
the send log's retention. A send that reached the edge without a reason (an older client, a direct API call) has
the reason None.
"""

from __future__ import annotations

from collections.abc import Mapping

from smsfailover.core import failover_reason
from smsfailover.core.ids import rfc3339
from smsfailover.express_shim.storage.base import Database

EVENTS_SHOWN = 20

# Migration 8. The index matches the read's ORDER BY exactly, so it stops after EVENTS_SHOWN rows.
FAILOVER_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS failover_events (
    message_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    reason TEXT,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failover_events_recent ON failover_events (workspace_id, created_at, message_id);
CREATE INDEX IF NOT EXISTS failover_events_time ON failover_events (created_at)
"""

_RECORD = (
    "INSERT INTO failover_events (message_id, workspace_id, reason, status, created_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (message_id) DO UPDATE SET status = excluded.status"
)
_RECENT = (
    "SELECT e.message_id, e.reason, e.created_at, COALESCE(m.status, e.status) AS status "
    "FROM failover_events e LEFT JOIN messages m ON m.id = e.message_id "
    "WHERE e.workspace_id = ? ORDER BY e.created_at DESC, e.message_id DESC LIMIT ?"
)


class FailoverEvents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, *, workspace_id: str, message_id: str, reason: object, status: str, at_ms: int) -> None:
        """One edge send; `reason` as the edge's feed gave it, checked again here (never stored as given)."""
        params = (message_id, workspace_id, failover_reason.parse(reason), status, int(at_ms))
        await self._db.execute(_RECORD, params)

    async def recent(self, workspace_id: str, limit: int = EVENTS_SHOWN) -> list[dict[str, object]]:
        """Newest first: `{"at", "reason", "message_id", "status"}` (reason None when the router gave none)."""
        rows = await self._db.fetch(_RECENT, (workspace_id, limit))
        return [_event(row) for row in rows]

    async def purge(self, older_than_ms: int) -> int:
        return await self._db.execute("DELETE FROM failover_events WHERE created_at < ?", (older_than_ms,))


def _event(row: Mapping[str, object]) -> dict[str, object]:
    return {
        "at": rfc3339(int(str(row["created_at"])) / 1000),
        "reason": failover_reason.parse(row["reason"]),
        "message_id": str(row["message_id"]),
        "status": str(row["status"]),
    }
