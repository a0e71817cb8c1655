"""Ledger work the edge has not heard yet, kept in the origin's database until the edge has taken it.

push      send the origin's record of this attempt (a claim made while the edge was unreachable, or a
          completion the edge did not acknowledge); reconcile merges it and reports a double send
release   free this attempt's claim at the edge (the claim got no answer: it may have landed there),
          then here; fenced by the message id, so it can never free another attempt's claim
"""

from __future__ import annotations

from dataclasses import dataclass

from smsfailover.core.ledger import LedgerRecord
from smsfailover.express_shim.storage.base import Database

PUSH, RELEASE = "push", "release"


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
