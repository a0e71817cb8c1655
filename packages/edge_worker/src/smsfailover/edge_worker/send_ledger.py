"""The edge's own sends claim keys only for workspaces it holds as enabled (DESIGN.md, "Ledger authority" rule 4).

The check and the claim are one statement: `INSERT ... SELECT ... WHERE EXISTS (enabled in settings_mirror)`.
D1 runs one write at a time, so once the origin's disable has been written to the mirror (and acknowledged), no
isolate can claim a new key for that workspace; there is no per-isolate cache for a disable to miss. A key this
ledger already holds is still answered from its record (replay, 409, unknown) whatever the setting (rule 1).
Every edge send claims through SendOpening (MessageApi's `begin`), in the same D1 batch as its message row. The
origin's claims through the service routes go to the plain store: it claims at the edge while enabling and
disabling too.

The same batch stores why the router sent the message here (core/failover_reason.py, migration 0006) when its POST
said so: the sync can never read the row without it.
"""

from __future__ import annotations

from contextvars import ContextVar

from smsfailover.core.errors import ApiError
from smsfailover.core.ledger import Claimed, ClaimOutcome, IdempotencyLedger, LedgerRecord, LedgerState
from smsfailover.core.messages_api import abandon_claim
from smsfailover.core.sql import (
    Statement,
    claim_params,
    claim_statement,
    get_call,
    message_insert_if_claimed_call,
    record_from_row,
)
from smsfailover.edge_worker.shards import Shards

# core's claim with the mirror's check: the same row, then the workspace for the EXISTS.
_CLAIM_IF_ENABLED = claim_statement(
    "SELECT ?, ?, ?, 'claimed', ?, ?, ?, ?, ?, NULL\n"
    "WHERE EXISTS (SELECT 1 FROM settings_mirror WHERE workspace_id = ? AND sms_failover_enabled = 1)"
)


# The checked failover reason of the POST being handled, set by EdgeApp for each request: MessageApi, which both
# endpoints share, knows nothing of it, and it must reach this batch.
FAILOVER_REASON: ContextVar[str | None] = ContextVar("smsfailover_failover_reason", default=None)
# The new row's reason; a row not written (the key was not claimed) is not touched: its id is this attempt's.
_SET_REASON = "UPDATE messages SET failover_reason = ? WHERE workspace_id = ? AND id = ?"


def failover_disabled() -> ApiError:
    return ApiError(
        403,
        "failover_disabled",
        "SMS failover is not enabled for this workspace, so the edge does not send for it; nothing was sent.",
    )


class SendOpening:
    """The start of an edge send as one D1 batch in the key's shard: the enabled-only claim, the message row
    (written only if the claim was taken) and the key's record (the answer when it was not)."""

    def __init__(self, shards: Shards, ledger: IdempotencyLedger) -> None:
        self._shards = shards
        self._ledger = ledger

    async def __call__(self, record: LedgerRecord, message: dict[str, object]) -> ClaimOutcome:
        claim: Statement = (_CLAIM_IF_ENABLED, [*claim_params(record), record.workspace_id])
        statements = [claim, message_insert_if_claimed_call(message, record)]
        reason = FAILOVER_REASON.get()
        if reason is not None:
            statements.append((_SET_REASON, [reason, record.workspace_id, record.message_id]))
        statements.append(get_call(record.workspace_id, record.key))
        index = self._shards.index(record.workspace_id, record.key)
        try:
            answers = await self._shards.batch(index, statements, round(record.created_at * 1000))
        except Exception as exc:
            raise await abandon_claim(self._shards.databases[index].execute, record, "edge", exc) from None
        taken, held = answers[0], answers[-1]
        if taken:
            return Claimed(record)
        existing = record_from_row(held[0]) if held else None
        if existing is None or existing.state is LedgerState.RELEASED:
            raise failover_disabled()
        return self._ledger.judge(existing, record.fingerprint)
