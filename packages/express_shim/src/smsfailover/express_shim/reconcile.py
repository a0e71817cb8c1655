"""Merges the keys claimed locally while the edge ledger was unreachable into the edge ledger (CONTRACT §1.5).

Runs whenever the edge is reachable and keys are queued. A key still in flight locally waits for the next
round (its outcome is not known yet). The edge reports keys that both endpoints sent: each is a double send,
counted in /metrics and logged, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.ledger import LedgerState, LedgerStore
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import EdgeClient, EdgeUnavailable
from smsfailover.express_shim.ledger_selection import DegradedClaims, EdgeLedgerHealth

BATCH = 500  # the edge takes at most 500 records per call


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    sent: int
    merged: int
    duplicates: tuple[str, ...]


class Reconciler:
    def __init__(
        self,
        *,
        queue: DegradedClaims,
        local: LedgerStore,
        edge: EdgeClient,
        health: EdgeLedgerHealth,
        clock: Clock,
        on_result: Callable[[ReconcileResult], None] | None = None,
    ) -> None:
        self._queue = queue
        self._local = local
        self._edge = edge
        self._health = health
        self._clock = clock
        self._on_result = on_result

    async def run_once(self) -> ReconcileResult | None:
        if not self._health.available:
            return None
        pending = await self._queue.pending(BATCH)
        if not pending:
            return None
        now = self._clock.time()
        records: list[dict[str, object]] = []
        settled: list[tuple[str, str]] = []
        for ws, key in pending:
            record = await self._local.get(ws, key)
            if record is None:  # purged after the retention: nothing left to tell
                settled.append((ws, key))
                continue
            if record.state is LedgerState.CLAIMED and not record.is_expired(now):
                continue  # still in flight here; its outcome goes in a later round
            records.append(record.to_json())
            settled.append((ws, key))
        merged = 0
        duplicates: tuple[str, ...] = ()
        if records:
            try:
                answer = await self._edge.ledger_reconcile(records)
            except EdgeUnavailable as exc:
                self._health.mark_down(exc.reason)
                return None
            merged = int(answer.get("merged") or 0)
            duplicates = tuple(str(k) for k in answer.get("duplicates") or ())
        await self._queue.remove(settled)
        result = ReconcileResult(len(records), merged, duplicates)
        log_event("ledger_reconciled", sent=result.sent, merged=merged, duplicates=len(duplicates))
        for key in duplicates:
            log_event("double_send_found", level=logging.ERROR, idempotency_key=key)
        if self._on_result:
            self._on_result(result)
        return result
