"""One LedgerStore behaviour for every backend in tests/support/ledger_backends.py.

The store does one thing atomically (try_claim: insert, or take over a RELEASED row); complete and release act only
on a CLAIMED row. Expiry is the ledger's business, never the store's: an expired claim is still just "claimed".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.ledger import (
    CALL_BEGAN_UNRECORDED,
    Claimed,
    IdempotencyLedger,
    InProgress,
    LedgerRecord,
    LedgerState,
    LedgerStore,
    NotSent,
    Replay,
    Unknown,
)

from tests.support.ledger_backends import LEDGER_BACKENDS, ledger_backend_params

T0 = 1_800_000_000.25  # whole milliseconds, so SQL backends round-trip times exactly


@pytest.fixture(params=ledger_backend_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LedgerStore]:
    async with LEDGER_BACKENDS[request.param](tmp_path) as opened:
        yield opened


def record(
    key: str = "k1", *, workspace_id: str = "w1", fingerprint: str = "fp-a", at: float = T0, n: int = 1
) -> LedgerRecord:
    return LedgerRecord(
        workspace_id=workspace_id,
        key=key,
        fingerprint=fingerprint,
        state=LedgerState.CLAIMED,
        endpoint="edge",
        lease_expires_at=at + 30,
        created_at=at,
        updated_at=at,
        message=None,
        message_id=f"msg_01KAZZZZZZZZZZZZZZZZZZZZ{n:02d}",
    )


M1 = "msg_01KAZZZZZZZZZZZZZZZZZZZZ01"  # the message id of record(n=1), the fencing token of its claim

MESSAGE: dict[str, object] = {
    "id": "msg_01KAZZZZZZZZZZZZZZZZZZZZ01",
    "status": "queued",
    "segments": 2,
    "latency_ms": 12.5,
    "requires_refresh": True,
    "provider_message_id": None,
    "content": "the message text, which no ledger record keeps",
    "media_urls": ["https://example.com/a.png"],
    "error": {"code": "x", "message": 'héllo 😀 "quoted" \\ back', "nested": [1, {"deep": None}]},
}
KEPT = {name: value for name, value in MESSAGE.items() if name != "content"}  # what a completed record holds


async def test_a_first_claim_is_stored_as_given(store: LedgerStore) -> None:
    claim = record()
    assert await store.try_claim(claim)
    assert await store.get("w1", "k1") == claim


async def test_get_of_an_unknown_key_is_none(store: LedgerStore) -> None:
    assert await store.get("w1", "nothing") is None


async def test_keys_are_per_workspace(store: LedgerStore) -> None:
    assert await store.try_claim(record(workspace_id="w1"))
    assert await store.try_claim(record(workspace_id="w2", n=2))
    stored = await store.get("w2", "k1")
    assert stored is not None
    assert stored.message_id.endswith("02")


async def test_a_live_claim_is_not_taken_over(store: LedgerStore) -> None:
    first = record()
    assert await store.try_claim(first)
    assert not await store.try_claim(record(fingerprint="fp-b", at=T0 + 1, n=2))
    assert await store.get("w1", "k1") == first  # message_id kept


async def test_an_expired_claim_is_not_taken_over(store: LedgerStore) -> None:
    first = record()
    assert await store.try_claim(first)
    assert not await store.try_claim(record(at=T0 + 3600, n=2))
    assert await store.get("w1", "k1") == first


async def test_complete_stores_the_message_and_keeps_the_message_id(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 2, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert stored.state is LedgerState.COMPLETED
    assert stored.message == KEPT
    assert stored.message_id == record().message_id
    assert stored.updated_at == T0 + 2
    assert (stored.created_at, stored.lease_expires_at, stored.fingerprint) == (T0, T0 + 30, "fp-a")


async def test_a_completed_key_is_not_claimed_again(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 2, message_id=M1)
    assert not await store.try_claim(record(at=T0 + 5, n=2))
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert (stored.state, stored.message) == (LedgerState.COMPLETED, KEPT)


async def test_complete_only_from_claimed(store: LedgerStore) -> None:
    await store.complete("w1", "missing", MESSAGE, T0, message_id=M1)
    assert await store.get("w1", "missing") is None

    assert await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 1, message_id=M1)
    await store.complete("w1", "k1", {"id": "second"}, T0 + 2, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert (stored.message, stored.updated_at) == (KEPT, T0 + 1)

    assert await store.try_claim(record("k2"))
    await store.release("w1", "k2", T0 + 1, message_id=M1)
    await store.complete("w1", "k2", MESSAGE, T0 + 2, message_id=M1)
    released = await store.get("w1", "k2")
    assert released is not None
    assert (released.state, released.message) == (LedgerState.RELEASED, None)


async def test_release_frees_the_key(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.release("w1", "k1", T0 + 1, message_id=M1)
    released = await store.get("w1", "k1")
    assert released is not None
    assert (released.state, released.updated_at) == (LedgerState.RELEASED, T0 + 1)


async def test_a_released_key_is_claimed_again_as_a_new_record(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.release("w1", "k1", T0 + 1, message_id=M1)
    again = record(fingerprint="fp-b", at=T0 + 10, n=2)
    assert await store.try_claim(again)
    assert await store.get("w1", "k1") == again
    assert not await store.try_claim(record(at=T0 + 11, n=3))


async def test_release_only_from_claimed(store: LedgerStore) -> None:
    await store.release("w1", "missing", T0, message_id=M1)
    assert await store.get("w1", "missing") is None
    assert await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 1, message_id=M1)
    await store.release("w1", "k1", T0 + 2, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert stored.state is LedgerState.COMPLETED


async def test_purge_removes_rows_created_before_the_cutoff(store: LedgerStore) -> None:
    assert await store.try_claim(record("old-claimed", at=T0))
    assert await store.try_claim(record("old-completed", at=T0 + 1))
    await store.complete("w1", "old-completed", MESSAGE, T0 + 100_000, message_id=M1)  # a late update does not keep it
    assert await store.try_claim(record("at-cutoff", at=T0 + 2))
    assert await store.try_claim(record("new", at=T0 + 3))
    assert await store.purge(T0 + 2) == 2
    assert await store.get("w1", "old-claimed") is None
    assert await store.get("w1", "old-completed") is None
    assert await store.get("w1", "at-cutoff") is not None
    assert await store.get("w1", "new") is not None
    assert await store.purge(T0 + 2) == 0
    assert await store.try_claim(record("old-claimed", at=T0 + 5, n=9))  # a purged key is free


async def test_the_message_round_trips_exactly_through_replace(store: LedgerStore) -> None:
    claim = replace(record(), endpoint="origin")
    assert await store.try_claim(claim)
    await store.complete("w1", "k1", {"only": ["json", 1, 2.5, True, None]}, T0 + 1, message_id=M1)
    stored = await store.get("w1", "k1")
    assert stored is not None
    assert stored.endpoint == "origin"
    assert stored.message == {"only": ["json", 1, 2.5, True, None]}


async def test_exactly_one_of_twenty_concurrent_claims_wins(store: LedgerStore) -> None:
    contenders = [record("race", at=T0 + i / 1000, n=i) for i in range(20)]
    results = await asyncio.gather(*(store.try_claim(c) for c in contenders))
    assert sum(results) == 1
    winner = contenders[results.index(True)]
    assert await store.get("w1", "race") == winner


async def test_after_a_release_exactly_one_of_twenty_concurrent_claims_wins(store: LedgerStore) -> None:
    assert await store.try_claim(record("race"))
    await store.release("w1", "race", T0 + 1, message_id=M1)
    contenders = [record("race", at=T0 + 2 + i / 1000, n=i + 1) for i in range(20)]
    results = await asyncio.gather(*(store.try_claim(c) for c in contenders))
    assert sum(results) == 1
    stored = await store.get("w1", "race")
    assert stored is not None
    assert stored.message_id == contenders[results.index(True)].message_id


async def test_concurrent_ledger_claims_give_one_claim_and_in_progress_for_the_rest(store: LedgerStore) -> None:
    ledger = IdempotencyLedger(store, ManualClock(T0), lease_s=30)
    outcomes = await asyncio.gather(*(ledger.claim("w1", "k1", "fp-a", "origin") for _ in range(10)))
    assert sum(isinstance(o, Claimed) for o in outcomes) == 1
    assert all(isinstance(o, Claimed | InProgress) for o in outcomes)


async def test_the_ledger_over_the_store_replays_and_reports_unknown(store: LedgerStore) -> None:
    clock = ManualClock(T0)
    ledger = IdempotencyLedger(store, clock, lease_s=30)
    done = await ledger.claim("w1", "done", "fp-a", "origin")
    assert isinstance(done, Claimed)
    await ledger.complete(done.record, {"id": done.record.message_id, "status": "queued"})
    lost = await ledger.claim("w1", "lost", "fp-a", "edge")
    assert isinstance(lost, Claimed)
    clock.advance(31)
    await ledger.release(lost.record)  # too late: the expired claim stays unknown in every store
    replay = await ledger.claim("w1", "done", "fp-a", "edge")
    assert isinstance(replay, Replay)
    assert replay.message == {"id": done.record.message_id, "status": "queued"}
    unknown = await ledger.claim("w1", "lost", "fp-a", "origin")
    assert isinstance(unknown, Unknown)
    assert unknown.record.message_id == lost.record.message_id


async def test_complete_and_release_are_fenced_by_the_claims_message_id(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 1, message_id="msg_01KAZZZZZZZZZZZZZZZZZZZZ99")
    await store.release("w1", "k1", T0 + 1, message_id="msg_01KAZZZZZZZZZZZZZZZZZZZZ99")
    assert await store.get("w1", "k1") == record()  # another attempt's completion and release change nothing


async def test_a_late_release_never_frees_the_next_attempts_claim(store: LedgerStore) -> None:
    assert await store.try_claim(record())
    await store.release("w1", "k1", T0 + 1, message_id=M1)
    second = record(at=T0 + 2, n=2)
    assert await store.try_claim(second)
    await store.release("w1", "k1", T0 + 3, message_id=M1)  # the first attempt's release, retried late
    assert await store.get("w1", "k1") == second


async def test_no_record_keeps_the_message_content(store: LedgerStore) -> None:
    """A replay needs the body and the fingerprint; the replaying request brings the content (ledger.ledger_body)."""
    assert await store.try_claim(record("done"))
    await store.complete("w1", "done", MESSAGE, T0 + 1, message_id=M1)
    adopted = replace(record("theirs", n=7), state=LedgerState.COMPLETED, message=MESSAGE, endpoint="edge")
    assert await store.adopt(adopted)
    for key in ("done", "theirs"):
        stored = await store.get("w1", key)
        assert stored is not None
        assert (stored.state, stored.message, stored.fingerprint) == (LedgerState.COMPLETED, KEPT, "fp-a")


def adopted(theirs: LedgerRecord) -> LedgerRecord:
    """Another ledger's record as stored here: its call-began mark "not recorded" (only the sender's ledger knows)."""
    return replace(theirs, call_began_at=CALL_BEGAN_UNRECORDED)


async def test_adopt_stores_a_key_new_here_and_replaces_only_what_it_may(store: LedgerStore) -> None:
    theirs = replace(record(n=7), state=LedgerState.COMPLETED, message=KEPT, endpoint="edge")
    assert await store.adopt(theirs)
    assert await store.get("w1", "k1") == adopted(theirs)
    assert not await store.adopt(replace(theirs, state=LedgerState.CLAIMED, message=None))  # never back to claimed
    assert not await store.adopt(replace(record(n=8), endpoint="edge"))  # another attempt's record: kept out
    assert await store.get("w1", "k1") == adopted(theirs)


async def test_adopt_replaces_the_named_claim_or_a_released_row(store: LedgerStore) -> None:
    ours = record("k2")
    assert await store.try_claim(ours)
    held = replace(record("k2", n=5), endpoint="edge")
    assert await store.adopt(held, replacing=ours.message_id)  # taken at the edge: its record in place of ours
    assert await store.get("w1", "k2") == adopted(held)
    assert await store.try_claim(record("k3"))
    await store.release("w1", "k3", T0 + 1, message_id=M1)
    later = replace(record("k3", n=6), state=LedgerState.COMPLETED, message=KEPT)
    assert await store.adopt(later)
    assert await store.get("w1", "k3") == adopted(later)


# ---- the call-began mark (issue 15) -----------------------------------------------------------------------------


async def test_the_mark_is_written_only_while_the_claim_holds_the_key_with_its_lease_live(store: LedgerStore) -> None:
    first = record()
    await store.try_claim(first)
    assert await store.mark_call_began("w1", "k1", T0 + 1, message_id="msg_other") is False  # another attempt's
    assert (await _get(store)).call_began_at is None
    assert await store.mark_call_began("w1", "k1", T0 + 1, message_id=M1) is True
    assert (await _get(store)).call_began_at == pytest.approx(T0 + 1, abs=0.001)


async def test_no_mark_once_the_lease_has_passed(store: LedgerStore) -> None:
    await store.try_claim(record())
    assert await store.mark_call_began("w1", "k1", T0 + 30, message_id=M1) is False  # the lease ends at T0 + 30
    assert (await _get(store)).call_began_at is None


async def test_no_mark_on_a_completed_or_released_claim(store: LedgerStore) -> None:
    await store.try_claim(record())
    await store.complete("w1", "k1", MESSAGE, T0 + 1, message_id=M1)
    assert await store.mark_call_began("w1", "k1", T0 + 2, message_id=M1) is False
    await store.try_claim(record("k2"))
    await store.release("w1", "k2", T0 + 1, message_id=M1)
    assert await store.mark_call_began("w1", "k2", T0 + 2, message_id=M1) is False


async def test_a_key_claimed_again_after_a_release_starts_without_a_mark(store: LedgerStore) -> None:
    await store.try_claim(record())
    await store.mark_call_began("w1", "k1", T0 + 1, message_id=M1)
    await store.release("w1", "k1", T0 + 2, message_id=M1)
    assert await store.try_claim(record(at=T0 + 3, n=2)) is True
    assert (await _get(store)).call_began_at is None


async def test_an_adopted_copy_never_reads_as_a_call_that_never_began(store: LedgerStore) -> None:
    """Another ledger's copy of a claim cannot say its call never began; this ledger's own mark outlives it."""
    assert await store.adopt(record("k9")) is True
    adopted = await store.get("w1", "k9")
    assert adopted is not None
    assert adopted.call_began_at is not None
    await store.try_claim(record())
    await store.mark_call_began("w1", "k1", T0 + 1, message_id=M1)
    assert await store.adopt(record()) is True  # the same attempt, as the other ledger has it (no mark)
    assert (await _get(store)).call_began_at == pytest.approx(T0 + 1, abs=0.001)


async def test_the_owners_expired_unmarked_claim_is_not_sent_and_anyone_elses_is_unknown(store: LedgerStore) -> None:
    clock = ManualClock(T0 + 31)
    await store.try_claim(record())  # endpoint "edge"
    await store.try_claim(record("k2", n=2))
    await store.mark_call_began("w1", "k2", T0 + 1, message_id="msg_01KAZZZZZZZZZZZZZZZZZZZZ02")
    owner = IdempotencyLedger(store, clock, owner="edge")
    assert isinstance(await owner.lookup("w1", "k1"), NotSent)
    assert isinstance(await owner.lookup("w1", "k2"), Unknown)  # the call began: only the provider can say
    other = IdempotencyLedger(store, clock, owner="origin")
    assert isinstance(await other.lookup("w1", "k1"), Unknown)
    assert isinstance(await IdempotencyLedger(store, clock).lookup("w1", "k1"), Unknown)


async def _get(store: LedgerStore, key: str = "k1") -> LedgerRecord:
    stored = await store.get("w1", key)
    assert stored is not None
    return stored
