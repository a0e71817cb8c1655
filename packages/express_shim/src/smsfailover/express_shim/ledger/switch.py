"""The two-phase failover switch (DESIGN.md, "Ledger authority" rule 4): no process or isolate is left behind.

    enabling   1. wait until every origin process claims the workspace's new keys at the edge (their switch cache
                  lives `flags_ttl_s`; we wait longer)
               2. seed the edge ledger with the workspace's keys from the retention window (live claims as claims,
                  their outcome queued and pushed once final)
               3. queue the mirror write `enabled` in the outbox; once the edge acknowledged it: `on`
    disabling  1. the outbox tells the edge `disabled` (queued with the change); wait for its acknowledgement
               2. wait one lease past it: the edge takes no new claim for the workspace after the acknowledgement
                  (its claim checks the mirror in the same statement), so every claim it made is final by then
               3. wait for a sync round begun after that: the origin then holds every key the edge has: `off`

Every step is guarded by the switch row's `changed_at`, so a toggle in between wins, and two origin processes
driving the same switch do the same idempotent work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.core.log import log_event
from smsfailover.core.sql import record_from_row
from smsfailover.express_shim.edge_client import EdgeUnavailable
from smsfailover.express_shim.ledger.queue import PUSH, EdgeLedgerQueue
from smsfailover.express_shim.ledger.reconcile import DoubleSends
from smsfailover.express_shim.ledger.remote_store import EdgeLedger
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.workspace_settings import DISABLING, ENABLING, OFF, ON

SEED_PAGE = 100  # records per reconcile call: each is a few D1 statements, and the call has a 10 s timeout
SEED_PAGES_PER_ROUND = 20
SEEDED = "done"

_PENDING = "SELECT workspace_id, state, changed_at, seeded_to, acked_at FROM failover_switch WHERE state IN (?, ?)"
_SEED_PAGE = """
SELECT * FROM idempotency_ledger
WHERE workspace_id = ? AND created_at >= ? AND (created_at > ? OR (created_at = ? AND idempotency_key > ?))
ORDER BY created_at, idempotency_key LIMIT ?
"""
_GUARD = "WHERE workspace_id = ? AND state = ? AND changed_at = ?"
# The enable reaches the outbox only while the switch is still in this enabling phase.
_ENQUEUE_ENABLE = """
INSERT INTO settings_outbox (workspace_id, sms_failover_enabled, updated_at, attempts, next_attempt_at, created_at)
SELECT s.workspace_id, s.sms_failover_enabled, s.updated_at, 0, 0, ?
FROM workspace_settings s JOIN failover_switch f ON f.workspace_id = s.workspace_id
WHERE s.workspace_id = ? AND f.state = 'enabling' AND f.changed_at = ?
"""


@dataclass(frozen=True, slots=True)
class SwitchRow:
    workspace_id: str
    state: str
    changed_at: int
    seeded_to: str | None
    acked_at: int | None


class FailoverSwitch:
    def __init__(
        self,
        *,
        db: Database,
        edge: EdgeLedger,
        queue: EdgeLedgerQueue,
        double_sends: DoubleSends,
        clock: Clock,
        flags_ttl_s: float,
        lease_s: float,
        retention_s: float,
        synced_through_ms: Callable[[], int],
        on_switched: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db = db
        self._edge = edge
        self._queue = queue
        self._double_sends = double_sends
        self._clock = clock
        self._settle_ms = int((flags_ttl_s + 1.0) * 1000)
        self._lease_ms = int(lease_s * 1000)
        self._retention_ms = int(retention_s * 1000)
        self._synced_through_ms = synced_through_ms
        self._on_switched = on_switched

    async def run_once(self) -> int:
        """Advance every switch in motion; how many enables it queued for the edge mirror."""
        queued = 0
        rows = await self._db.fetch(_PENDING, (ENABLING, DISABLING))
        for raw in rows:
            row = SwitchRow(
                str(raw["workspace_id"]),
                str(raw["state"]),
                int(str(raw["changed_at"])),
                None if raw["seeded_to"] is None else str(raw["seeded_to"]),
                None if raw["acked_at"] is None else int(str(raw["acked_at"])),
            )
            try:
                if row.state == ENABLING:
                    queued += await self._enabling(row)
                else:
                    await self._disabling(row)
            except EdgeUnavailable as exc:
                log_event("failover_switch_waiting", level=logging.WARNING, state=row.state, reason=exc.reason)
        return queued

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    async def _enabling(self, row: SwitchRow) -> int:
        """One enabling step; 1 if it queued the enable for the edge mirror."""
        if self._now_ms() < row.changed_at + self._settle_ms:
            return 0
        if row.seeded_to != SEEDED:
            if not await self._seed(row):
                return 0
            changed = await self._db.transaction(
                [
                    (f"UPDATE failover_switch SET seeded_to = ? {_GUARD}", (SEEDED, *self._guard(row))),  # noqa: S608
                    (_ENQUEUE_ENABLE, (self._now_ms(), row.workspace_id, row.changed_at)),
                ]
            )
            return 1 if changed[1] else 0
        if not await self._outbox_pending(row.workspace_id):
            await self._finish(row, ON)
        return 0

    async def _disabling(self, row: SwitchRow) -> None:
        if await self._outbox_pending(row.workspace_id):
            return
        now = self._now_ms()
        if row.acked_at is None:
            await self._db.execute(f"UPDATE failover_switch SET acked_at = ? {_GUARD}", (now, *self._guard(row)))  # noqa: S608
            return
        settled_at = row.acked_at + self._lease_ms
        if now < settled_at or self._synced_through_ms() < settled_at:
            return
        await self._finish(row, OFF)

    async def _seed(self, row: SwitchRow) -> bool:
        """Push the workspace's keys to the edge ledger, a page at a time from `seeded_to`; True when done."""
        created, _, key = (row.seeded_to or "-1:").partition(":")
        after_ms, after_key = int(created), key
        oldest = self._now_ms() - self._retention_ms
        for _ in range(SEED_PAGES_PER_ROUND):
            rows = await self._db.fetch(
                _SEED_PAGE, (row.workspace_id, oldest, after_ms, after_ms, after_key, SEED_PAGE)
            )
            if not rows:
                return True
            await self._push([record_from_row(r) for r in rows])
            after_ms, after_key = int(str(rows[-1]["created_at"])), str(rows[-1]["idempotency_key"])
            await self._db.execute(
                f"UPDATE failover_switch SET seeded_to = ? {_GUARD}",  # noqa: S608
                (f"{after_ms}:{after_key}", *self._guard(row)),
            )
            if len(rows) < SEED_PAGE:
                return True
        return False

    async def _push(self, records: list[LedgerRecord]) -> None:
        now = self._clock.time()
        seeded: list[LedgerRecord] = []
        for record in records:
            if record.state is LedgerState.RELEASED:
                continue
            if record.state is LedgerState.CLAIMED and not record.is_expired(now):
                # In flight here: the edge holds it as this claim now (so it cannot take the key once enabled),
                # and its outcome is pushed once final.
                await self._queue.add(record, PUSH, "seed_in_flight", self._now_ms())
            seeded.append(record)
        if seeded:
            answer = await self._edge.reconcile(seeded)
            await self._double_sends.add(answer.duplicates, self._now_ms())
            if answer.failed:  # a shard did not answer: the seed pass is not done, the next round repeats it
                raise EdgeUnavailable(f"reconcile: {len(answer.failed)} records of the seed were not merged")

    async def _outbox_pending(self, workspace_id: str) -> bool:
        rows = await self._db.fetch(
            "SELECT 1 AS x FROM settings_outbox WHERE workspace_id = ? LIMIT 1", (workspace_id,)
        )
        return bool(rows)

    async def _finish(self, row: SwitchRow, state: str) -> None:
        changed = await self._db.execute(
            f"UPDATE failover_switch SET state = ? {_GUARD}",  # noqa: S608
            (state, *self._guard(row)),
        )
        if changed:
            log_event("failover_switched", workspace_id=row.workspace_id, state=state)
            if self._on_switched is not None:
                self._on_switched(row.workspace_id, state)

    @staticmethod
    def _guard(row: SwitchRow) -> tuple[str, str, int]:
        return row.workspace_id, row.state, row.changed_at
