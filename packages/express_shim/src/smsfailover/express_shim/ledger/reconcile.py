"""Drains the edge ledger queue into the edge, and ends degraded mode (DESIGN.md rules 5 and 6).

Each round, the queue (shared by every origin process through the database), oldest first: fenced releases at the
edge, then the origin's records to merge. A record still in flight here waits for a later round. An edge that does
not answer leaves the queue as it is for the next round; degraded mode ends (liveness.py) only once the pushes of
the local window are gone from the queue. Every double send the edge reports (a key another attempt
also claimed there and did not release) is stored per workspace, counted on /metrics and logged: never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.ledger import LedgerRecord, LedgerState, LedgerStore
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import EdgeUnavailable
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector
from smsfailover.express_shim.ledger.queue import RELEASE, EdgeLedgerQueue, QueuedOp
from smsfailover.express_shim.ledger.remote_store import EdgeLedger, ReconcileAnswer
from smsfailover.express_shim.storage.base import Database

BATCH = 100  # records per reconcile call (the edge takes up to 500; each costs a few D1 statements)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    released: int
    sent: int
    merged: int
    duplicates: tuple[tuple[str, str], ...]


class DoubleSends:
    """Keys found sent twice, per workspace (the status figure; the fleet total is on /metrics)."""

    def __init__(self, db: Database, on_found: Callable[[int], None] | None = None) -> None:
        self._db = db
        self._on_found = on_found

    async def add(self, found: list[tuple[str, str]], now_ms: int) -> int:
        """Store each, log it, count it; how many were new (a key reported twice is one double send)."""
        if not found:
            return 0
        for ws, _ in found:
            log_event("double_send_found", level=logging.ERROR, workspace_id=ws)
        changed = await self._db.transaction(
            [
                (
                    "INSERT INTO double_sends (workspace_id, idempotency_key, found_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (ws, key, now_ms),
                )
                for ws, key in found
            ]
        )
        new = sum(changed)
        if new and self._on_found is not None:
            self._on_found(new)
        return new

    async def count(self, workspace_id: str) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) AS n FROM double_sends WHERE workspace_id = ?", (workspace_id,))
        return int(str(rows[0]["n"]))


class Reconciler:
    def __init__(
        self,
        *,
        queue: EdgeLedgerQueue,
        local: LedgerStore,
        edge: EdgeLedger,
        detector: EdgeLedgerDetector,
        double_sends: DoubleSends,
        clock: Clock,
        on_result: Callable[[ReconcileResult], None] | None = None,
    ) -> None:
        self._queue = queue
        self._local = local
        self._edge = edge
        self._detector = detector
        self._double_sends = double_sends
        self._clock = clock
        self._on_result = on_result

    async def run_once(self) -> ReconcileResult | None:
        ops = await self._queue.due(BATCH)
        if not ops:
            return None
        try:
            released, pushed, settled = await self._drain(ops)
            answer = await self._edge.reconcile(pushed) if pushed else ReconcileAnswer(0, [], [], [])
        except EdgeUnavailable as exc:
            self._detector.failed(exc)
            return None
        self._detector.success()
        retry = set(answer.failed)  # a shard that did not answer: those keys stay queued for the next round
        await self._queue.remove([op for op in settled if (op.workspace_id, op.key) not in retry])
        for record in answer.kept:
            await self._adopt_kept(record)
        duplicates = answer.duplicates
        merged = answer.merged
        await self._double_sends.add(duplicates, int(self._clock.time() * 1000))
        result = ReconcileResult(released, len(pushed), merged, tuple(duplicates))
        log_event("ledger_reconciled", released=released, sent=len(pushed), merged=merged, duplicates=len(duplicates))
        if self._on_result:
            self._on_result(result)
        return result

    async def _drain(self, ops: list[QueuedOp]) -> tuple[int, list[LedgerRecord], list[QueuedOp]]:
        """Apply the releases; gather the records to push. Returns (released, records, ops settled)."""
        now = self._clock.time()
        released, records, settled = 0, [], []
        for op in ops:
            if op.op == RELEASE:
                await self._release_at_edge(op, now)
                released += 1
                settled.append(op)
                continue
            record = await self._local.get(op.workspace_id, op.key)
            if record is None:  # purged after the retention: nothing left to tell
                settled.append(op)
            elif record.message_id != op.message_id or record.state is LedgerState.RELEASED:
                # this attempt was released (and the key maybe taken by another since): the edge frees it too,
                # since a switch seed may have left it there as a claim
                await self._release_at_edge(op, now)
                settled.append(op)
            elif record.state is LedgerState.CLAIMED and not record.is_expired(now):
                continue  # still in flight here; its outcome goes in a later round
            else:
                records.append(record)
                settled.append(op)
        return released, records, settled

    async def _adopt_kept(self, record: LedgerRecord) -> None:
        """The edge kept another attempt's record of a key: it replaces an origin claim here whose call never began
        (truth after a crash: it was never sent by us); the store refuses anything else (a double send, counted)."""
        here = await self._local.get(record.workspace_id, record.key)
        if here is None or here.message_id == record.message_id:
            return
        if here.state is LedgerState.CLAIMED and here.endpoint == "origin" and here.call_began_at is None:
            await self._local.adopt(record, replacing=here.message_id)

    async def _release_at_edge(self, op: QueuedOp, now: float) -> None:
        """Fenced by the attempt's message id; never here: a key whose edge claim got no answer keeps its claim
        here, so it is never sent on the local ledger (rule 5)."""
        await self._edge.release(op.workspace_id, op.key, op.message_id, now)
