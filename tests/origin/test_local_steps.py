"""A failover-off send's two transactions (ledger/local_steps.py) on a SQLite file and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.errors import ApiError
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import (
    Claimed,
    IdempotencyLedger,
    InProgress,
    LedgerMoved,
    LedgerRecord,
    LedgerState,
    Replay,
)
from smsfailover.core.messages_api import Conclusion
from smsfailover.core.sql import SqlLedgerStore, SqlMessageStore
from smsfailover.express_shim.ledger.local_steps import LocalSendSteps
from smsfailover.express_shim.storage.base import Database, Statement
from smsfailover.express_shim.storage.migrations import migrate

WS = "15213"


def message_of(record: LedgerRecord) -> dict[str, object]:
    created = rfc3339(record.created_at)
    return {
        "id": record.message_id,
        "workspace_id": record.workspace_id,
        "idempotency_key": record.key,
        "to": "+16266635938",
        "content": "hello",
        "media_urls": [],
        "status": "unknown",
        "endpoint": "origin",
        "ledger": "local",
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": created,
        "updated_at": created,
    }


async def opened(database: Database) -> tuple[LocalSendSteps, IdempotencyLedger, SqlMessageStore]:
    await migrate(database)
    ledger = IdempotencyLedger(SqlLedgerStore(database), ManualClock(), lease_s=30, mode="local")
    return LocalSendSteps(database, ledger), ledger, SqlMessageStore(database)


async def test_begin_claims_and_writes_the_row_together_and_only_once(database: Database) -> None:
    steps, ledger, messages = await opened(database)
    first = ledger.new_claim(WS, "key-1", "fp", "origin")
    second = ledger.new_claim(WS, "key-1", "fp", "origin")  # a concurrent retry: its own message id

    assert await steps.begin(first, message_of(first)) == Claimed(first)
    assert isinstance(await steps.begin(second, message_of(second)), InProgress)

    held = await ledger.store.get(WS, "key-1")
    assert held is not None
    assert (held.state, held.message_id) == (LedgerState.CLAIMED, first.message_id)
    row = await messages.get_by_key(WS, "key-1")
    assert row is not None
    assert (row["id"], row["status"]) == (first.message_id, "unknown")
    assert await messages.get(WS, second.message_id) is None  # the retry wrote no row


async def test_settle_records_the_answer_and_completes_or_releases(database: Database) -> None:
    steps, ledger, messages = await opened(database)
    sent, refused = ledger.new_claim(WS, "sent", "fp", "origin"), ledger.new_claim(WS, "refused", "fp", "origin")
    for record in (sent, refused):
        await steps.begin(record, message_of(record))
    answer = {**message_of(sent), "status": "queued", "provider_message_id": "SM1"}

    await steps.settle(Conclusion(sent, {"status": "queued", "provider_message_id": "SM1"}, sent.created_at, answer))
    await steps.settle(Conclusion(refused, {"status": "failed"}, refused.created_at, None))

    row = await messages.get(WS, sent.message_id)
    assert row is not None
    assert (row["status"], row["provider_message_id"]) == ("queued", "SM1")
    assert isinstance(await ledger.claim(WS, "sent", "fp", "origin"), Replay)
    released = await ledger.store.get(WS, "refused")
    assert released is not None
    assert released.state is LedgerState.RELEASED


class FailingTransactions:
    """A database whose transactions fail (the rest passes through): the begin's one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.executed: list[str] = []

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        raise OSError("disk I/O error")

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        self.executed.append(sql)
        return await self._db.execute(sql, params)


async def test_a_failed_begin_is_503_with_nothing_held(database: Database) -> None:
    _steps, ledger, messages = await opened(database)
    failing = FailingTransactions(database)
    steps = LocalSendSteps(failing, ledger)  # type: ignore[arg-type]
    record = ledger.new_claim(WS, "key-1", "fp", "origin")

    with pytest.raises(ApiError) as caught:
        await steps.begin(record, message_of(record))

    assert (caught.value.status, caught.value.code) == (503, "storage_unavailable")
    assert await ledger.store.get(WS, "key-1") is None
    assert await messages.get_by_key(WS, "key-1") is None
    assert any("released" in sql for sql in failing.executed)  # a commit whose answer was lost is freed


async def test_a_claim_that_commits_after_the_switch_left_off_is_refused_and_asks_again(database: Database) -> None:
    """The enabling race (rule 4): a send read the switch as off, its claim waited, an enable began meanwhile. Its
    claim must not commit (the seed pass may already have read the ledger): nothing written, LedgerMoved."""
    await migrate(database)
    moved: list[str] = []
    ledger = IdempotencyLedger(SqlLedgerStore(database), ManualClock(), lease_s=30, mode="local")
    steps = LocalSendSteps(database, ledger, on_moved=moved.append)
    await database.execute(
        "INSERT INTO failover_switch (workspace_id, state, changed_at) VALUES (?, 'enabling', 1)", (WS,)
    )
    record = ledger.new_claim(WS, "key-late", "fp", "origin")

    with pytest.raises(LedgerMoved):
        await steps.begin(record, message_of(record))

    assert await ledger.store.get(WS, "key-late") is None
    assert await SqlMessageStore(database).get(WS, record.message_id) is None
    assert moved == [WS]
    await database.execute("UPDATE failover_switch SET state = 'off' WHERE workspace_id = ?", (WS,))
    assert await steps.begin(record, message_of(record)) == Claimed(record)
