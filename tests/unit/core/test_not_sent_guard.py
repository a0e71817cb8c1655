"""A not_sent completion applies only while the claim's call has not begun (DESIGN.md, "Unknown outcomes").

The resolution reads a claim with no call-began mark, then completes it `failed / not_sent`. A mark that commits
between that read and the write means the call began: the completion must not apply (in every LedgerStore, and in
the statement the edge batches), and the message row must not be turned `failed` either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import Claimed, LedgerRecord, LedgerState, LedgerStore
from smsfailover.core.messages_api import NOT_SENT_ERROR, settle_not_sent
from smsfailover.core.sql import SqliteExecutor, complete_call

from tests.support.ledger_backends import LEDGER_BACKENDS, ledger_backend_params
from tests.unit.core.test_ledger_store_conformance import M1, MESSAGE, T0, record
from tests.unit.core.test_messages_api import TO, WS, stack_of

NOT_SENT: dict[str, object] = {"id": M1, "status": "failed", "error": dict(NOT_SENT_ERROR)}


@pytest.fixture(params=ledger_backend_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with LEDGER_BACKENDS[request.param](tmp_path) as opened:
        yield opened


async def test_a_not_sent_completion_applies_to_a_claim_without_a_mark(store: LedgerStore) -> None:
    await store.try_claim(record())
    await store.complete("w1", "k1", NOT_SENT, T0 + 31, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert (stored.state, stored.message) == (LedgerState.COMPLETED, NOT_SENT)


async def test_a_not_sent_completion_never_applies_once_the_call_began(store: LedgerStore) -> None:
    await store.try_claim(record())
    assert await store.mark_call_began("w1", "k1", T0 + 1, message_id=M1)  # the late mark
    await store.complete("w1", "k1", NOT_SENT, T0 + 31, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert (stored.state, stored.call_began_at) == (LedgerState.CLAIMED, T0 + 1)
    await store.complete("w1", "k1", MESSAGE, T0 + 32, message_id=M1)  # the send's own outcome still lands
    done = await store.get("w1", "k1")
    assert done is not None
    assert done.state is LedgerState.COMPLETED


async def test_the_edges_batched_completion_statement_keeps_the_guard() -> None:
    db = SqliteExecutor(":memory:")
    try:
        db.create_schema()
        claim = record()
        await db.execute(
            "INSERT INTO idempotency_ledger (workspace_id, idempotency_key, fingerprint, state, endpoint, message_id, "
            "lease_expires_at, created_at, updated_at, call_began_at) VALUES (?, ?, ?, 'claimed', ?, ?, ?, ?, ?, ?)",
            ["w1", "k1", claim.fingerprint, "edge", M1, 0, 0, 0, 1],
        )
        assert await db.execute(*complete_call("w1", "k1", NOT_SENT, T0, M1)) == 0
        assert await db.execute(*complete_call("w1", "k1", MESSAGE, T0, M1)) == 1
    finally:
        db.close()


async def test_a_mark_between_the_resolutions_read_and_write_leaves_the_key_unknown() -> None:
    async with stack_of(endpoint="edge") as stack:
        outcome = await stack.ledger.claim(WS, "key-1", "fp", "edge")
        assert isinstance(outcome, Claimed)
        claim = outcome.record
        await stack.messages.insert(_write_ahead(claim))
        stale: LedgerRecord | None = await stack.ledger.store.get(WS, "key-1")  # the resolution's read: no mark
        assert stale is not None
        assert stale.call_began_at is None
        assert await stack.ledger.mark_call_began(claim)  # the sender's mark commits before the resolution writes
        stack.clock.advance(31)
        body = await settle_not_sent(stack.ledger, stack.messages, stale, stack.clock.time())
        kept = await stack.ledger.store.get(WS, "key-1")
        assert kept is not None
        assert kept.state is LedgerState.CLAIMED
        assert kept.call_began_at is not None
        row = await stack.messages.get(WS, claim.message_id)
        assert row is not None
        assert row["status"] == "unknown"  # never `failed` for a call that began
        assert body["status"] == "unknown"


def _write_ahead(claim: LedgerRecord) -> dict[str, object]:
    created = rfc3339(claim.created_at)
    return {
        "id": claim.message_id,
        "workspace_id": WS,
        "idempotency_key": claim.key,
        "to": TO,
        "content": "Hello",
        "media_urls": [],
        "status": "unknown",
        "endpoint": "edge",
        "ledger": "edge",
        "created_at": created,
        "updated_at": created,
    }
