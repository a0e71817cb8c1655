"""Ledger work the edge has not heard yet, kept in the origin's database until the edge has taken it.

push      send the origin's record of this attempt (a claim made while the edge was unreachable, or a
          completion the edge did not acknowledge); reconcile merges it and reports a double send
release   free this attempt's claim at the edge (the claim got no answer: it may have landed there); fenced by
          the message id, so it can never free another attempt's claim. Never here: a key whose edge claim got
          no answer waits for the edge's answer and is never sent on the local ledger (DESIGN.md rule 5)
"""

from __future__ import annotations

from dataclasses import dataclass

from smsfailover.core.ledger import LedgerRecord
from smsfailover.express_shim.storage.base import Database

PUSH, RELEASE = "push", "release"
DEGRADED = "degraded"  # the reason of a push: a key sent on the local ledger alone (the local window)
CRASH_WINDOW = "crash_window"  # the reason of a push: a completion the edge may not have heard before a crash

# A completion reaches the edge after its send answered (origin_ledger.EdgeCompletions), so a process that dies may
# take some with it: the edge would keep answering `unknown` for a key the origin settled. At start-up every origin
# completion of a workspace the edge guards whose claim was created within two leases of the newest claim is pushed
# again (reconcile: the same attempt's claim takes the outcome; anything else is left as it is). By the created_at
# index, bounded by the window, and harmless if nothing was lost.
_CRASH_WINDOW = """
INSERT INTO edge_ledger_queue (workspace_id, idempotency_key, message_id, op, reason, queued_at)
SELECT l.workspace_id, l.idempotency_key, l.message_id, ?, ?, ?
FROM idempotency_ledger l JOIN failover_switch s ON s.workspace_id = l.workspace_id AND s.state <> 'off'
WHERE l.endpoint = 'origin' AND l.state = 'completed'
  AND l.created_at >= (SELECT MAX(created_at) FROM idempotency_ledger) - ?
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class QueuedOp:
    workspace_id: str
    key: str
    message_id: str
    op: str
    reason: str


class EdgeLedgerQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: LedgerRecord, op: str, reason: str, now_ms: int) -> None:
        await self._db.execute(
            "INSERT INTO edge_ledger_queue (workspace_id, idempotency_key, message_id, op, reason, queued_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (record.workspace_id, record.key, record.message_id, op, reason, now_ms),
        )

    async def due(self, limit: int) -> list[QueuedOp]:
        rows = await self._db.fetch(
            "SELECT workspace_id, idempotency_key, message_id, op, reason FROM edge_ledger_queue "
            "ORDER BY queued_at LIMIT ?",
            (limit,),
        )
        return [
            QueuedOp(
                str(r["workspace_id"]), str(r["idempotency_key"]), str(r["message_id"]), str(r["op"]), str(r["reason"])
            )
            for r in rows
        ]

    async def remove(self, ops: list[QueuedOp]) -> None:
        if ops:
            await self._db.transaction(
                [
                    (
                        "DELETE FROM edge_ledger_queue "
                        "WHERE workspace_id = ? AND idempotency_key = ? AND message_id = ? AND op = ?",
                        (op.workspace_id, op.key, op.message_id, op.op),
                    )
                    for op in ops
                ]
            )

    async def count(self) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) AS n FROM edge_ledger_queue")
        return int(str(rows[0]["n"]))

    async def local_window_left(self) -> bool:
        """Whether a key sent on the local ledger alone still waits to be pushed (degraded mode cannot end yet)."""
        rows = await self._db.fetch(
            "SELECT 1 AS one FROM edge_ledger_queue WHERE op = ? AND reason = ? LIMIT 1", (PUSH, DEGRADED)
        )
        return bool(rows)

    async def push_crash_window(self, lease_s: float, now_ms: int) -> int:
        """Queue the completions a crash may have kept from the edge (see _CRASH_WINDOW); how many were queued."""
        return await self._db.execute(_CRASH_WINDOW, (PUSH, CRASH_WINDOW, now_ms, round(2 * lease_s * 1000)))
