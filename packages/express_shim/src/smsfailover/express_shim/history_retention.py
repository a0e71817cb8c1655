"""The origin's message history keeps its own retention (SMSFAILOVER_HISTORY_RETENTION_S; 0, the default, keeps
every message).

The history is the product's record of what was sent (the message list, the CRM's conversation view), not an
idempotency aid, so it does not go with the ledger: ledger records (24 h) and the status window's rows follow
`retention_s`, messages follow this. Its purge runs in the ledger purge's round, as deletes of at most BATCH_ROWS
rows, at most BATCHES_PER_ROUND of them per round, so a first purge over years of history never holds the
database's writer for long; the backlog drains over the next rounds.
"""

from __future__ import annotations

from smsfailover.core.log import log_event
from smsfailover.core.sql import SqlMessageStore

BATCH_ROWS = 1000
BATCHES_PER_ROUND = 20


async def purge_history(messages: SqlMessageStore, older_than: float) -> int:
    """Delete messages created before `older_than` (epoch seconds), bounded; how many went."""
    deleted = 0
    for _ in range(BATCHES_PER_ROUND):
        changed = await messages.purge(older_than, limit=BATCH_ROWS)
        deleted += changed
        if changed < BATCH_ROWS:
            break
    if deleted:
        log_event("history_purged", messages=deleted)
    return deleted
