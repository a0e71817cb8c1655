"""Issue 13: `GET /v1/messages?idempotency_key=` answers the message's current record (a delivery callback's
status included), like `GET /v1/messages/{id}`; a POST replay still answers the original body."""

from __future__ import annotations

from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import Replay
from smsfailover.core.sql import SqliteExecutor, SqlMessageStore

from .test_messages_api import WS, Stack, answer, stack_of

LOOKUP = {"idempotency_key": "key-1"}


async def _deliver(stack: Stack, message_id: str) -> None:
    """What a verified `delivered` callback does to the row (the origin's DeliveryUpdates): the row moves, the
    ledger's completion snapshot does not."""
    stack.clock.advance(5)
    await stack.messages.update(WS, message_id, {"status": "delivered"}, stack.clock.time())


async def _snapshot(stack: Stack) -> dict[str, object]:
    """The ledger's completion snapshot of key-1 (what a lookup answered before issue 13)."""
    outcome = await stack.ledger.lookup(WS, "key-1")
    assert isinstance(outcome, Replay)
    return outcome.message


async def test_get_by_key_says_delivered_after_a_callback_and_a_replay_keeps_the_original_body() -> None:
    async with stack_of(endpoint="origin") as stack:
        sent = await stack.send()
        assert (sent.status, sent.body["status"]) == (201, "queued")
        message_id = str(sent.body["id"])
        await _deliver(stack, message_id)

        by_id = await stack.call("GET", f"/v1/messages/{message_id}")
        by_key = await stack.call("GET", "/v1/messages", query=LOOKUP)
        replay = await stack.send()

        assert by_id.body["status"] == "delivered"
        assert (by_key.status, by_key.body["status"]) == (200, "delivered")
        assert by_key.body == by_id.body
        assert by_key.body["provider_message_id"] == sent.body["provider_message_id"]
        assert by_key.body["updated_at"] == rfc3339(stack.clock.time())
        assert "Idempotent-Replayed" not in by_key.headers
        assert replay.status == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.body == sent.body  # the original body, status "queued"
        assert len(stack.twilio.requests) == 1


async def test_the_current_record_is_the_ledgers_message_not_an_earlier_attempt_of_the_key() -> None:
    async with stack_of(endpoint="origin") as stack:
        stack.twilio.script.append(answer(503, {"code": 20503, "message": "down"}))
        assert (await stack.send()).status == 503  # a first attempt's row, status failed; the key is freed
        stack.clock.advance(1)
        sent = await stack.send()
        assert sent.status == 201
        await _deliver(stack, str(sent.body["id"]))
        # a row of another attempt of the key, newer than the message (clocks of two endpoints disagree)
        await stack.messages.insert({**sent.body, "id": "msg_other", "status": "failed", "created_at": _later(stack)})

        by_key = await stack.call("GET", "/v1/messages", query=LOOKUP)

        assert (by_key.body["id"], by_key.body["status"]) == (sent.body["id"], "delivered")


async def test_a_message_this_endpoint_has_no_row_of_answers_the_ledgers_snapshot() -> None:
    """The other endpoint sent it (its completion is in this ledger) and it is not synced here yet."""
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(messages=SqlMessageStore(db)) as stack:
            sent = await stack.send()
            await db.execute("DELETE FROM messages")  # this endpoint's store never had the row
            by_key = await stack.call("GET", "/v1/messages", query=LOOKUP)
            assert (by_key.status, by_key.body) == (200, await _snapshot(stack))
        assert by_key.body["status"] == sent.body["status"]
    finally:
        db.close()


async def test_a_row_left_unknown_by_a_failed_update_does_not_hide_the_completed_send() -> None:
    async with stack_of(endpoint="origin") as stack:
        sent = await stack.send()
        await stack.messages.update(WS, str(sent.body["id"]), {"status": "unknown"}, stack.clock.time())
        by_key = await stack.call("GET", "/v1/messages", query=LOOKUP)
        assert (by_key.status, by_key.body) == (200, await _snapshot(stack))
        assert by_key.body["status"] == sent.body["status"]


class UnreadableMessages(SqlMessageStore):
    async def get_by_key(self, workspace_id: str, key: str) -> dict[str, object] | None:
        raise RuntimeError("store went away")


async def test_an_unreadable_store_still_answers_the_ledgers_snapshot() -> None:
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(messages=UnreadableMessages(db)) as stack:
            sent = await stack.send()
            by_key = await stack.call("GET", "/v1/messages", query=LOOKUP)
            assert (by_key.status, by_key.body) == (200, await _snapshot(stack))
        assert by_key.body["status"] == sent.body["status"]
    finally:
        db.close()


def _later(stack: Stack) -> str:
    return rfc3339(stack.clock.time() + 3600)
