"""A send on the origin's own ledger alone (failover off) in two transactions instead of four (MessageApi's begin
and settle, used only while the ledger is standalone).

    begin    the claim and the write-ahead message row (status unknown), written only if the claim was taken:
             both are committed before the provider call, as when they were two transactions
    settle   the row takes the provider's answer, and the claim is completed (or released), fenced by its message id

Each step is a round trip to the database (SQLite's writer thread, a pooled PostgreSQL connection) that the send
waits for: two fewer per send, and two fewer commits.
"""

from __future__ import annotations

from collections.abc import Callable

from smsfailover.core.ledger import (
    Claimed,
    ClaimOutcome,
    IdempotencyLedger,
    LedgerMoved,
    LedgerRecord,
    LedgerState,
    LedgerUnavailable,
)
from smsfailover.core.messages_api import Conclusion, abandon_claim
from smsfailover.core.sql import (
    Statement,
    claim_params,
    claim_statement,
    conclusion_calls,
    message_insert_if_claimed_call,
)
from smsfailover.express_shim.storage.base import Database, StorageBusy

# core's claim, taken only while the workspace's failover switch is off, checked in the claim's own statement: a send
# that read "off" and whose claim then waited (SQLite's write queue, a PostgreSQL pool) must not commit after an
# enable's seed pass has read the ledger (DESIGN.md rule 4), or the edge would never hear of its key.
_CLAIM_WHILE_OFF = claim_statement(
    "SELECT ?, ?, ?, 'claimed', ?, ?, ?, ?, ?, NULL\n"
    "WHERE NOT EXISTS (SELECT 1 FROM failover_switch WHERE workspace_id = ? AND state <> 'off')"
)
_SWITCH_STATE = "SELECT state FROM failover_switch WHERE workspace_id = ?"


def claim_while_off_call(record: LedgerRecord) -> Statement:
    return _CLAIM_WHILE_OFF, [*claim_params(record), record.workspace_id]


class LocalSendSteps:
    def __init__(self, db: Database, ledger: IdempotencyLedger, on_moved: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._ledger = ledger  # the origin's own ledger on the same database: reads and judges a key held elsewhere
        self._on_moved = on_moved  # the workspace's switch moved: forget its cached state

    async def begin(self, record: LedgerRecord, message: dict[str, object]) -> ClaimOutcome:
        for _ in range(2):  # a second round only if the key's holder let it go between our claim and our read
            if await self._claim_with_row(record, message):
                return Claimed(record)
            held = await self._ledger.store.get(record.workspace_id, record.key)
            if held is not None and held.state is not LedgerState.RELEASED:
                return self._ledger.judge(held, record.fingerprint)
            if await self._switch_moved(record.workspace_id):
                raise LedgerMoved(record.workspace_id)
        raise LedgerUnavailable("the ledger neither took the claim nor showed the row holding the key")

    async def _switch_moved(self, workspace_id: str) -> bool:
        rows = await self._db.fetch(_SWITCH_STATE, (workspace_id,))
        moved = bool(rows) and str(rows[0]["state"]) != "off"
        if moved and self._on_moved is not None:
            self._on_moved(workspace_id)
        return moved

    async def settle(self, conclusion: Conclusion) -> None:
        claim = conclusion.claim
        await self._db.transaction(conclusion_calls(claim, conclusion.fields, conclusion.now, conclusion.message))

    async def _claim_with_row(self, record: LedgerRecord, message: dict[str, object]) -> bool:
        """One transaction; True if the claim was taken (the row is inserted only while our claim holds the key)."""
        try:
            _claim, rows = await self._db.transaction(
                [claim_while_off_call(record), message_insert_if_claimed_call(message, record)]
            )
        except StorageBusy:  # refused before anything was queued: there is no claim to free, only the answer
            raise
        except Exception as exc:  # e.g. a dropped PostgreSQL connection, perhaps after the commit
            raise await abandon_claim(self._db.execute, record, "origin", exc) from None
        return rows == 1
