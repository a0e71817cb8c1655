"""One LedgerStore behaviour over every backend in tests/support/ledger_backends.py (register new ones there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.ledger import (
    Claimed,
    IdempotencyLedger,
    InProgress,
    LedgerRecord,
    LedgerState,
    LedgerStore,
    Replay,
    Unknown,
)

from tests.support.ledger_backends import LEDGER_BACKENDS, ledger_backend_params

T0 = 1_800_000_000.0


@pytest.fixture(params=ledger_backend_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with LEDGER_BACKENDS[request.param](tmp_path) as backend:
        yield backend


def record(key: str = "k1", *, workspace_id: str = "ws_a", at: float = T0, endpoint: str = "origin") -> LedgerRecord:
    return LedgerRecord(
        workspace_id=workspace_id,
        key=key,
        fingerprint="f" * 64,
        state=LedgerState.CLAIMED,
        endpoint=endpoint,
        lease_expires_at=at + 30,
        created_at=at,
        updated_at=at,
        message=None,
        message_id=f"msg_{key.upper():0>26}"[:30],
    )


async def test_a_claim_reads_back_field_for_field(store: LedgerStore) -> None:
    claim = record()
    assert await store.try_claim(claim) is True
    stored = await store.get("ws_a", "k1")
    assert stored == claim


async def test_an_unknown_key_reads_as_none(store: LedgerStore) -> None:
    assert await store.get("ws_a", "never-used") is None


async def test_a_live_claim_cannot_be_taken(store: LedgerStore) -> None:
    await store.try_claim(record())
    assert await store.try_claim(replace(record(), endpoint="edge", message_id="msg_OTHER")) is False
    stored = await store.get("ws_a", "k1")
    assert stored is not None
    assert (stored.endpoint, stored.message_id) == ("origin", record().message_id)


async def test_an_expired_claim_is_not_taken_either(store: LedgerStore) -> None:
    await store.try_claim(record())
    later = record(at=T0 + 3600, endpoint="edge")
    assert await store.try_claim(later) is False
    stored = await store.get("ws_a", "k1")
    assert stored is not None
    assert stored.state is LedgerState.CLAIMED
    assert stored.created_at == T0


async def test_keys_are_per_workspace(store: LedgerStore) -> None:
    assert await store.try_claim(record(workspace_id="ws_a")) is True
    assert await store.try_claim(record(workspace_id="ws_b")) is True


async def test_complete_keeps_the_message_and_closes_the_key(store: LedgerStore) -> None:
    await store.try_claim(record())
    body: dict[str, object] = {"id": "msg_1", "status": "queued", "segments": 2, "error": None, "media_urls": []}
    await store.complete("ws_a", "k1", body, T0 + 1)
    stored = await store.get("ws_a", "k1")
    assert stored is not None
    assert (stored.state, stored.message, stored.updated_at) == (LedgerState.COMPLETED, body, T0 + 1)
    assert await store.try_claim(record(at=T0 + 2)) is False
    await store.release("ws_a", "k1", T0 + 3)  # too late: a completed key stays completed
    after = await store.get("ws_a", "k1")
    assert after is not None
    assert after.state is LedgerState.COMPLETED


async def test_release_frees_the_key_for_the_next_claim(store: LedgerStore) -> None:
    await store.try_claim(record())
    await store.release("ws_a", "k1", T0 + 1)
    released = await store.get("ws_a", "k1")
    assert released is not None
    assert (released.state, released.updated_at) == (LedgerState.RELEASED, T0 + 1)
    second = replace(record(at=T0 + 2, endpoint="edge"), message_id="msg_SECOND")
    assert await store.try_claim(second) is True
    assert await store.get("ws_a", "k1") == second
    assert await store.try_claim(replace(second, message_id="msg_THIRD")) is False


async def test_complete_and_release_of_an_unknown_key_change_nothing(store: LedgerStore) -> None:
    await store.complete("ws_a", "nope", {"id": "x"}, T0)
    await store.release("ws_a", "nope", T0)
    assert await store.get("ws_a", "nope") is None


async def test_a_released_key_cannot_be_completed(store: LedgerStore) -> None:
    await store.try_claim(record())
    await store.release("ws_a", "k1", T0 + 1)
    await store.complete("ws_a", "k1", {"id": "late"}, T0 + 2)
    stored = await store.get("ws_a", "k1")
    assert stored is not None
    assert (stored.state, stored.message) == (LedgerState.RELEASED, None)


async def test_purge_removes_only_rows_created_before_the_cutoff(store: LedgerStore) -> None:
    await store.try_claim(record("old", at=T0))
    await store.try_claim(record("new", at=T0 + 100))
    assert await store.purge(T0 + 50) == 1
    assert await store.get("ws_a", "old") is None
    assert await store.get("ws_a", "new") is not None
    assert await store.purge(T0 + 50) == 0


async def test_concurrent_claims_have_exactly_one_winner(store: LedgerStore) -> None:
    contenders = [replace(record(), message_id=f"msg_{i:026d}", endpoint=f"e{i}") for i in range(20)]
    results = await asyncio.gather(*(store.try_claim(c) for c in contenders))
    assert sum(results) == 1
    winner = contenders[results.index(True)]
    assert await store.get("ws_a", "k1") == winner


async def test_concurrent_ledger_claims_give_one_claim_and_in_progress_for_the_rest(store: LedgerStore) -> None:
    ledger = IdempotencyLedger(store, ManualClock(T0), lease_s=30)
    outcomes = await asyncio.gather(*(ledger.claim("ws_a", "k1", "f" * 64, "origin") for _ in range(10)))
    assert sum(isinstance(o, Claimed) for o in outcomes) == 1
    assert all(isinstance(o, Claimed | InProgress) for o in outcomes)


async def test_the_ledger_over_the_store_replays_and_reports_unknown(store: LedgerStore) -> None:
    clock = ManualClock(T0)
    ledger = IdempotencyLedger(store, clock, lease_s=30)
    done = await ledger.claim("ws_a", "done", "f" * 64, "origin")
    assert isinstance(done, Claimed)
    await ledger.complete(done.record, {"id": done.record.message_id, "status": "queued"})
    lost = await ledger.claim("ws_a", "lost", "f" * 64, "edge")
    assert isinstance(lost, Claimed)
    clock.advance(31)
    replay = await ledger.claim("ws_a", "done", "f" * 64, "edge")
    assert isinstance(replay, Replay)
    assert replay.message == {"id": done.record.message_id, "status": "queued"}
    unknown = await ledger.claim("ws_a", "lost", "f" * 64, "origin")
    assert isinstance(unknown, Unknown)
    assert unknown.record.message_id == lost.record.message_id
