"""What the edge's Cron Trigger deletes (wrangler.toml `[triggers]`, `scheduled()`), in every shard:

    ledger records   created before the retention (SMSFAILOVER_RETENTION_S, never under 24 h: DESIGN.md)
    message rows     created before the same retention AND already copied by the origin's sync: seq at or below
                     the shard's `sync_ack` (sync.py). A row the origin has not copied stays, however old; a row
                     changed since the origin copied it has a newer seq, so it stays until copied again.

The edge's message rows are a staging copy for the sync (the origin's history is the product's record and keeps its
own retention); they go with the ledger records beside them, never before the origin holds them.
Each statement deletes at most BATCH_ROWS rows and a run repeats it at most BATCHES_PER_RUN times per table and
shard, so no statement runs into D1's time limit; a backlog drains over the next runs. A table or shard that fails is
logged and the rest are still purged; then the run raises PurgeFailed, so the Cron invocation shows as failed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.log import log_event
from smsfailover.core.sql import BatchExecutor
from smsfailover.edge_worker.shards import Shards

BATCH_ROWS = 1000
BATCHES_PER_RUN = 50

# Both by the tables' own indexes (created_at, seq). Row values in IN need SQLite 3.15, which D1 is far past.
_PURGE_LEDGER = (
    "DELETE FROM idempotency_ledger WHERE (workspace_id, idempotency_key) IN "
    "(SELECT workspace_id, idempotency_key FROM idempotency_ledger WHERE created_at < ? LIMIT ?)"
)
# No sync_ack row (the origin has never acknowledged a page): the comparison with NULL keeps every row.
_PURGE_SYNCED_MESSAGES = (
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
    "WHERE seq <= (SELECT seq FROM sync_ack WHERE id = 0) AND created_at < ? ORDER BY seq LIMIT ?)"
)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    ledger_records: int
    messages: int = 0


class PurgeFailed(Exception):
    """Some purge statements failed (each logged as edge.purge_failed); the others ran. What they deleted is in
    `result`."""

    def __init__(self, failed: list[str], result: PurgeResult) -> None:
        super().__init__(f"the retention purge failed for {', '.join(failed)}")
        self.failed = failed
        self.result = result


class EdgeRetention:
    def __init__(self, shards: Shards, clock: Clock, retention_s: float) -> None:
        self._shards = shards
        self._clock = clock
        self._retention_s = retention_s

    async def purge(self) -> PurgeResult:
        """Every shard's old ledger records and synced old message rows; raises PurgeFailed if any statement
        failed, after the rest ran."""
        cutoff_ms = round((self._clock.time() - self._retention_s) * 1000)
        failed: list[str] = []
        runs = [
            self._run(db, sql, cutoff_ms, f"{what} of {self._shards.names[index]}", failed)
            for index, db in enumerate(self._shards.databases)
            for what, sql in (("ledger", _PURGE_LEDGER), ("messages", _PURGE_SYNCED_MESSAGES))
        ]
        deleted = await asyncio.gather(*runs)
        result = PurgeResult(sum(deleted[0::2]), sum(deleted[1::2]))
        if failed:
            raise PurgeFailed(failed, result)
        return result

    async def _run(self, db: BatchExecutor, sql: str, cutoff_ms: int, what: str, failed: list[str]) -> int:
        deleted = 0
        try:
            for _ in range(BATCHES_PER_RUN):
                changed = await db.execute(sql, [cutoff_ms, BATCH_ROWS])
                deleted += changed
                if changed < BATCH_ROWS:
                    break
        except Exception as exc:
            log_event("edge.purge_failed", level=logging.ERROR, what=what, error=type(exc).__name__)
            failed.append(what)
        return deleted
