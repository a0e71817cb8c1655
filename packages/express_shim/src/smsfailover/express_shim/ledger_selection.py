"""Which idempotency ledger a workspace's send claims its key in (CONTRACT §1.5).

    failover disabled                  the origin's own SQL ledger               ledger: "local"
    failover enabled, edge reachable   the edge's ledger (RemoteLedgerStore)     ledger: "edge"
    failover enabled, edge unreachable the origin's own ledger, degraded:        ledger: "local"
                                       each key queued for reconciliation, a metric, a log event

"Unreachable" is learned from a failed edge-ledger call (the request then falls back at once, in the same
request) and cleared by the next successful edge probe, so one outage costs one timeout, not one per send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from smsfailover.core.clock import Clock
from smsfailover.core.ledger import ClaimOutcome, IdempotencyLedger, LedgerRecord, LedgerStore
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import EdgeUnavailable
from smsfailover.express_shim.storage.base import Database


class EdgeLedgerHealth:
    """Whether the edge ledger answered last time anyone asked (a send, or a probe)."""

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.available = True
        self.reason: str | None = None
        self._on_change = on_change

    def mark_down(self, reason: str) -> None:
        if self.available:
            log_event("edge_ledger_unreachable", level=logging.WARNING, reason=reason)
        self.available, self.reason = False, reason
        if self._on_change:
            self._on_change(False)

    def mark_up(self) -> None:
        if not self.available:
            log_event("edge_ledger_reachable_again")
        self.available, self.reason = True, None
        if self._on_change:
            self._on_change(True)


class DegradedClaims:
    """Keys claimed locally while the edge ledger was unreachable, waiting to be reconciled into it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, workspace_id: str, key: str, now_ms: int) -> None:
        await self._db.execute(
            "INSERT INTO degraded_claims (workspace_id, idempotency_key, queued_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (workspace_id, key, now_ms),
        )

    async def pending(self, limit: int) -> list[tuple[str, str]]:
        rows = await self._db.fetch(
            "SELECT workspace_id, idempotency_key FROM degraded_claims ORDER BY queued_at LIMIT ?", (limit,)
        )
        return [(str(r["workspace_id"]), str(r["idempotency_key"])) for r in rows]

    async def remove(self, keys: list[tuple[str, str]]) -> None:
        await self._db.transaction(
            [
                ("DELETE FROM degraded_claims WHERE workspace_id = ? AND idempotency_key = ?", (ws, key))
                for ws, key in keys
            ]
        )

    async def count(self) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) AS n FROM degraded_claims")
        return int(str(rows[0]["n"]))


class QueueingLedgerStore:
    """The local store, used in degraded mode: each successful claim is also queued for reconciliation."""

    def __init__(self, local: LedgerStore, queue: DegradedClaims, on_claim: Callable[[], None]) -> None:
        self._local = local
        self._queue = queue
        self._on_claim = on_claim

    async def try_claim(self, record: LedgerRecord) -> bool:
        claimed = await self._local.try_claim(record)
        if claimed:
            await self._queue.add(record.workspace_id, record.key, int(time.time() * 1000))
            self._on_claim()
            log_event("degraded_local_claim", level=logging.WARNING, workspace_id=record.workspace_id)
        return claimed

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        return await self._local.get(workspace_id, key)

    async def complete(self, workspace_id: str, key: str, message: dict[str, object], now: float) -> None:
        await self._local.complete(workspace_id, key, message, now)

    async def release(self, workspace_id: str, key: str, now: float) -> None:
        await self._local.release(workspace_id, key, now)

    async def purge(self, older_than: float) -> int:
        return await self._local.purge(older_than)


class SharedLedger(IdempotencyLedger):
    """The edge ledger for one request, falling back to the degraded local ledger the moment the edge fails."""

    def __init__(
        self, remote: LedgerStore, degraded: LedgerStore, health: EdgeLedgerHealth, clock: Clock, lease_s: float
    ) -> None:
        super().__init__(remote, clock, lease_s=lease_s, mode="edge")
        self._degraded = degraded
        self._health = health

    def _fall_back(self, exc: EdgeUnavailable) -> None:
        self._health.mark_down(exc.reason)
        self.store = self._degraded
        self.mode = "local"

    async def claim(self, workspace_id: str, key: str, fingerprint: str, endpoint: str) -> ClaimOutcome:
        if self.mode == "edge":
            try:
                return await super().claim(workspace_id, key, fingerprint, endpoint)
            except EdgeUnavailable as exc:
                self._fall_back(exc)
        return await super().claim(workspace_id, key, fingerprint, endpoint)

    async def lookup(self, workspace_id: str, key: str) -> ClaimOutcome | None:
        if self.mode == "edge":
            try:
                return await super().lookup(workspace_id, key)
            except EdgeUnavailable as exc:
                self._fall_back(exc)
        return await super().lookup(workspace_id, key)

    async def complete(self, claim: LedgerRecord, message: dict[str, object]) -> None:
        if self.mode == "edge":
            try:
                await super().complete(claim, message)
                return
            except EdgeUnavailable as exc:
                # Sent, but the edge cannot hear it: keep the outcome locally and reconcile it later.
                self._fall_back(exc)
                await self.store.try_claim(claim)
        await super().complete(claim, message)

    async def release(self, claim: LedgerRecord) -> None:
        if self.mode == "edge":
            try:
                await super().release(claim)
                return
            except EdgeUnavailable as exc:
                # Nothing was sent; the edge's claim will read as unknown once its lease runs out.
                self._fall_back(exc)
                return
        await super().release(claim)


class LedgerSelection:
    def __init__(
        self,
        *,
        enabled: Callable[[str], Awaitable[bool]],
        local: LedgerStore,
        remote: LedgerStore,
        queue: DegradedClaims,
        health: EdgeLedgerHealth,
        clock: Clock,
        lease_s: float,
        on_degraded_claim: Callable[[], None],
    ) -> None:
        self._enabled = enabled
        self._local = local
        self._remote = remote
        self._degraded = QueueingLedgerStore(local, queue, on_degraded_claim)
        self.health = health
        self._clock = clock
        self._lease_s = lease_s

    def local_ledger(self) -> IdempotencyLedger:
        return IdempotencyLedger(self._local, self._clock, lease_s=self._lease_s, mode="local")

    async def ledger_for(self, workspace_id: str) -> IdempotencyLedger:
        if not await self._enabled(workspace_id):
            return self.local_ledger()
        if not self.health.available:
            return IdempotencyLedger(self._degraded, self._clock, lease_s=self._lease_s, mode="local")
        return SharedLedger(self._remote, self._degraded, self.health, self._clock, self._lease_s)
