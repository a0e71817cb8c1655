"""The call-began mark (issue 15): written just before the provider call in the sender's own ledger, refused once
the lease has passed; an expired claim without it is certainly unsent and resolves to failed / not_sent, final for
the key. Fake clock, the real MessageApi over SQLite and a mock Twilio (test_messages_api's stack)."""

from __future__ import annotations

import json

import httpx2
import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.ledger import Claimed, ClaimOutcome, IdempotencyLedger, LedgerRecord, LedgerState
from smsfailover.core.message import fingerprint, parse_send_request
from smsfailover.core.messages_api import Begin, Conclusion, Settle
from smsfailover.core.sql import SqliteExecutor, SqlLedgerStore, SqlMessageStore

from tests.unit.core.test_messages_api import TO, WS, Stack, created, stack_of


async def _claim_then_crash(stack: Stack, endpoint: str = "edge") -> LedgerRecord:
    """A sender that claimed the key and died before its provider call (no mark)."""
    req = parse_send_request(json.dumps({"to": TO, "content": "Hello", "workspace_id": WS}).encode())
    claim = await stack.ledger.claim(WS, "key-1", fingerprint(req), endpoint)
    assert isinstance(claim, Claimed)
    return claim.record


async def _record(stack: Stack) -> LedgerRecord:
    record = await stack.ledger.store.get(WS, "key-1")
    assert record is not None
    return record


async def test_a_send_marks_its_call_before_the_provider_sees_it() -> None:
    async with stack_of() as stack:
        seen: list[float | None] = []

        async def peek(request: httpx2.Request) -> httpx2.Response:
            seen.append((await _record(stack)).call_began_at)
            return await created()(request)

        stack.twilio.script.append(peek)
        assert (await stack.send()).status == 201
        assert seen == [pytest.approx(stack.clock.time(), abs=0.001)]


async def test_an_expired_claim_of_ours_without_a_mark_is_failed_not_sent_and_final() -> None:
    async with stack_of() as stack:
        claim = await _claim_then_crash(stack)
        stack.clock.advance(31)
        first = await stack.send()
        assert first.status == 200
        assert (first.body["id"], first.body["status"]) == (claim.message_id, "failed")
        error = first.body["error"]
        assert isinstance(error, dict)
        assert error["code"] == "not_sent"
        assert stack.twilio.requests == []  # never sent automatically, now or later
        stored = await _record(stack)
        assert stored.state is LedgerState.COMPLETED
        again = await stack.send()
        assert (again.status, again.body["status"], again.body["error"]) == (200, "failed", error)
        lookup = await stack.call("GET", "/v1/messages", query={"idempotency_key": "key-1"})
        assert (lookup.status, lookup.body["status"]) == (200, "failed")
        assert stack.twilio.requests == []


async def test_an_expired_claim_whose_call_began_stays_unknown() -> None:
    async with stack_of() as stack:
        claim = await _claim_then_crash(stack)
        assert await stack.ledger.mark_call_began(claim)
        stack.clock.advance(31)
        answer = await stack.send()
        assert (answer.status, answer.body["status"]) == (200, "unknown")
        assert (await _record(stack)).state is LedgerState.CLAIMED  # only the provider's record can say
        assert stack.twilio.requests == []


async def test_another_endpoints_claim_without_our_mark_stays_unknown() -> None:
    """The edge cannot see the origin's mark: an origin claim it holds a copy of is never called not sent there."""
    async with stack_of(endpoint="edge") as stack:
        await _claim_then_crash(stack, endpoint="origin")
        stack.clock.advance(31)
        answer = await stack.send()
        assert (answer.status, answer.body["status"]) == (200, "unknown")


async def test_a_lease_that_passes_before_the_mark_means_no_call_and_not_sent() -> None:
    """The claim is taken, then the send stalls past its lease (a paused process) before its provider call."""
    clocks: list[ManualClock] = []

    def stalling_steps(ledger: IdempotencyLedger, messages: SqlMessageStore) -> tuple[Begin, Settle]:
        async def begin(record: LedgerRecord, message: dict[str, object]) -> ClaimOutcome:
            outcome = await ledger.claim_record(record)
            await messages.insert(message)
            clocks[0].advance(31)  # paused (SIGSTOP) between the claim and the call
            return outcome

        async def settle(conclusion: Conclusion) -> None:
            raise AssertionError("a send whose call never began settles through the ledger, not here")

        return begin, settle

    async with stack_of(steps=stalling_steps) as stack:
        clocks.append(stack.clock)
        answer = await stack.send()
        assert (answer.status, answer.body["status"]) == (201, "failed")
        error = answer.body["error"]
        assert isinstance(error, dict)
        assert error["code"] == "not_sent"
        assert stack.twilio.requests == []
        stored = await stack.messages.get(WS, str(answer.body["id"]))
        assert stored is not None
        assert stored["status"] == "failed"
        assert (await _record(stack)).state is LedgerState.COMPLETED


class MarkFails(SqlLedgerStore):
    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        raise RuntimeError("ledger went away")


async def test_a_mark_that_cannot_be_written_frees_the_key_and_sends_nothing() -> None:
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(ledger_store=MarkFails(db)) as stack:
            answer = await stack.send()
            assert answer.status == 503
            assert answer.body["error"]["code"] == "storage_unavailable"  # type: ignore[index]
            assert stack.twilio.requests == []
            record = await stack.ledger.store.get(WS, "key-1")
            assert record is not None
            assert record.state is LedgerState.RELEASED  # a retry with the same key may send
    finally:
        db.close()
