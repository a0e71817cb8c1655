"""IdempotencyLedger: decisions from the stored record and the clock, and its invariants under random histories."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from smsfailover.core.clock import ManualClock
from smsfailover.core.ledger import (
    RETENTION_S,
    Claimed,
    IdempotencyLedger,
    InMemoryLedgerStore,
    InProgress,
    KeyReused,
    LedgerRecord,
    LedgerState,
    LedgerUnavailable,
    Replay,
    Unknown,
)

T = TypeVar("T")
T0 = 1_800_000_000.0
FP = "a" * 64


def new_ledger(lease_s: float = 30.0) -> tuple[IdempotencyLedger, InMemoryLedgerStore, ManualClock]:
    store = InMemoryLedgerStore()
    clock = ManualClock(T0)
    return IdempotencyLedger(store, clock, lease_s=lease_s), store, clock


async def claimed(ledger: IdempotencyLedger, key: str = "k1", fp: str = FP, endpoint: str = "origin") -> LedgerRecord:
    outcome = await ledger.claim("ws_a", key, fp, endpoint)
    assert isinstance(outcome, Claimed)
    return outcome.record


async def test_a_first_claim_mints_a_message_id_and_a_lease() -> None:
    ledger, _, _ = new_ledger()
    claim = await claimed(ledger)
    assert claim.message_id.startswith("msg_")
    assert len(claim.message_id) == 30
    assert (claim.state, claim.created_at, claim.lease_expires_at) == (LedgerState.CLAIMED, T0, T0 + 30)


async def test_a_second_claim_while_the_lease_runs_is_in_progress_with_a_bounded_retry_after() -> None:
    ledger, _, clock = new_ledger(lease_s=30)
    await claimed(ledger)
    early = await ledger.claim("ws_a", "k1", FP, "edge")
    assert isinstance(early, InProgress)
    assert early.retry_after_s == 5  # capped: the sender usually finishes long before the lease ends
    clock.advance(28.5)
    late = await ledger.claim("ws_a", "k1", FP, "edge")
    assert isinstance(late, InProgress)
    assert late.retry_after_s == 2


async def test_a_different_payload_under_the_same_key_is_key_reused() -> None:
    ledger, _, _ = new_ledger()
    await claimed(ledger)
    assert isinstance(await ledger.claim("ws_a", "k1", "b" * 64, "origin"), KeyReused)


async def test_a_completed_key_replays_its_message() -> None:
    ledger, _, clock = new_ledger()
    claim = await claimed(ledger)
    await ledger.complete(claim, {"id": claim.message_id, "status": "queued"})
    clock.advance(3600)
    outcome = await ledger.claim("ws_a", "k1", FP, "edge")
    assert isinstance(outcome, Replay)
    assert outcome.message == {"id": claim.message_id, "status": "queued"}


async def test_a_released_key_is_claimed_afresh_with_a_new_message_id() -> None:
    ledger, _, _ = new_ledger()
    first = await claimed(ledger)
    await ledger.release(first)
    second = await claimed(ledger, endpoint="edge")
    assert second.message_id != first.message_id
    assert second.endpoint == "edge"


async def test_an_expired_claim_is_unknown_and_never_claimed_again() -> None:
    ledger, _, clock = new_ledger(lease_s=30)
    first = await claimed(ledger)
    clock.advance(30)
    for _ in range(3):
        outcome = await ledger.claim("ws_a", "k1", FP, "edge")
        assert isinstance(outcome, Unknown)
        assert outcome.record.message_id == first.message_id


async def test_lookup_answers_without_claiming() -> None:
    ledger, store, clock = new_ledger()
    assert await ledger.lookup("ws_a", "k1") is None
    assert await store.get("ws_a", "k1") is None
    claim = await claimed(ledger)
    assert isinstance(await ledger.lookup("ws_a", "k1"), InProgress)
    clock.advance(31)
    assert isinstance(await ledger.lookup("ws_a", "k1"), Unknown)
    await ledger.release(claim)  # too late: whoever was told "unknown" keeps that answer
    assert isinstance(await ledger.lookup("ws_a", "k1"), Unknown)


async def test_release_in_time_frees_the_key_for_lookup() -> None:
    ledger, _, clock = new_ledger()
    claim = await claimed(ledger)
    clock.advance(29)
    await ledger.release(claim)
    assert await ledger.lookup("ws_a", "k1") is None


async def test_purge_never_drops_rows_inside_the_retention_window() -> None:
    ledger, store, clock = new_ledger()
    await claimed(ledger, "old")
    clock.advance(RETENTION_S - 1)
    await claimed(ledger, "new")
    assert await ledger.purge(retention_s=1) == 0  # a shorter retention would break replay inside 24 h
    clock.advance(2)
    assert await ledger.purge() == 1
    assert await store.get("ws_a", "old") is None
    assert await store.get("ws_a", "new") is not None


class VanishingStore(InMemoryLedgerStore):
    """Refuses every claim and shows no row: a store that is broken, or purged under our feet each time."""

    async def try_claim(self, record: LedgerRecord) -> bool:
        return False


async def test_a_store_that_neither_claims_nor_shows_a_row_is_unavailable() -> None:
    ledger = IdempotencyLedger(VanishingStore(), ManualClock(T0))
    with pytest.raises(LedgerUnavailable):
        await ledger.claim("ws_a", "k1", FP, "origin")


class PurgedOnceStore(InMemoryLedgerStore):
    """The first claim loses to a row that is purged before it can be read: the second round must win."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 1

    async def try_claim(self, record: LedgerRecord) -> bool:
        if self.refusals:
            self.refusals -= 1
            return False
        return await super().try_claim(record)


async def test_a_row_purged_between_claim_and_read_gets_a_second_round() -> None:
    ledger = IdempotencyLedger(PurgedOnceStore(), ManualClock(T0))
    assert isinstance(await ledger.claim("ws_a", "k1", FP, "origin"), Claimed)


def test_is_expired_only_for_claims() -> None:
    claim = LedgerRecord("ws", "k", FP, LedgerState.CLAIMED, "origin", T0 + 30, T0, T0)
    assert not claim.is_expired(T0 + 29.9)
    assert claim.is_expired(T0 + 30)
    assert not replace(claim, state=LedgerState.COMPLETED).is_expired(T0 + 99)


# ---- properties ---------------------------------------------------------------------------------------------------

KEYS = st.sampled_from(["k1", "k2", "k3"])
FINGERPRINTS = st.sampled_from(["a" * 64, "b" * 64])


class LedgerMachine(RuleBasedStateMachine):
    """Random claim / complete / release / clock histories against a model of what each key may still do."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.store = InMemoryLedgerStore()
        self.ledger = IdempotencyLedger(self.store, self.clock, lease_s=30)
        self.owners: dict[str, LedgerRecord] = {}  # key -> the open claim this test holds
        self.sent: dict[str, dict[str, object]] = {}  # key -> the message its completion stored
        self.stuck: set[str] = set()  # released too late: the key stays unknown for good
        self.fingerprint: dict[str, str] = {}

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(step)

    @rule(key=KEYS, fp=FINGERPRINTS)
    def claim(self, key: str, fp: str) -> None:
        outcome = self.run(self.ledger.claim("ws", key, fp, "origin"))
        now = self.clock.time()
        if isinstance(outcome, Claimed):
            assert key not in self.owners, "two owners for one key"
            assert key not in self.sent, "a completed key was claimed again"
            assert key not in self.stuck, "an unknown key was claimed again"
            self.owners[key] = outcome.record
            self.fingerprint[key] = fp
        elif isinstance(outcome, Replay):
            assert fp == self.fingerprint[key]
            assert outcome.message == self.sent[key]
        elif isinstance(outcome, KeyReused):
            assert fp != self.fingerprint[key]
        elif isinstance(outcome, Unknown):
            assert fp == self.fingerprint[key]
            assert key in self.stuck or self.owners[key].is_expired(now)
        else:
            assert isinstance(outcome, InProgress)
            assert not self.owners[key].is_expired(now)

    @precondition(lambda self: bool(self.owners))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.owners)))
        claim = self.owners.pop(key)
        message: dict[str, object] = {"id": claim.message_id, "status": "queued"}
        self.run(self.ledger.complete(claim, message))
        self.sent[key] = message

    @precondition(lambda self: bool(self.owners))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.owners)))
        claim = self.owners.pop(key)
        self.run(self.ledger.release(claim))
        if claim.is_expired(self.clock.time()):
            self.stuck.add(key)
        else:
            del self.fingerprint[key]

    @rule(seconds=st.sampled_from([0.5, 5.0, 29.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def every_open_claim_is_the_stored_one(self) -> None:
        for key, owner in self.owners.items():
            stored = self.run(self.store.get("ws", key))
            assert stored is not None
            assert (stored.message_id, stored.state) == (owner.message_id, LedgerState.CLAIMED)


LedgerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLedgerProperties = LedgerMachine.TestCase
