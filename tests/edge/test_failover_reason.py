"""The edge records the router's failover reason with the message it sends (D1 migration 0006) and its sync feed
carries it to the origin; only words of the fixed vocabulary are ever stored, and the message object is unchanged."""

from __future__ import annotations

from typing import Any

from smsfailover.core.failover_reason import HEADER
from smsfailover.core.messages_api import ApiRequest, ApiResponse

from .test_app import TO, WS, Edge, edge, listed, service_token, ws_token

__all__ = ["edge"]  # the fixture, shared with test_app


async def _send(edge: Edge, key: str, reason: str | None, content: str = "hello") -> ApiResponse:
    headers = {"authorization": f"Bearer {ws_token(edge.clock)}", "idempotency-key": key}
    if reason is not None:
        headers[HEADER.lower()] = reason
    body = f'{{"to": "{TO}", "content": "{content}", "workspace_id": "{WS}"}}'.encode()
    return await edge.app.handle(ApiRequest("POST", "/v1/messages", {}, headers, body))


async def _feed(edge: Edge) -> dict[str, dict[str, Any]]:
    page = await edge.call(
        "GET", "/v1/sync/messages", token=service_token(edge.clock), query={"after": "0", "limit": "100"}
    )
    assert page.status == 200, page.body
    return {str(item["id"]): item for item in listed(page.body["data"])}


def _stored(edge: Edge, message_id: object) -> object:
    row = edge.db._conn.execute("SELECT failover_reason FROM messages WHERE id = ?", (message_id,)).fetchone()
    return row[0]


async def test_the_reason_goes_with_the_message_into_the_sync_feed(edge: Edge) -> None:
    timed_out = await _send(edge, "k1", "timeout")
    direct = await _send(edge, "k2", None)
    assert (timed_out.status, direct.status) == (201, 201)
    feed = await _feed(edge)
    assert feed[str(timed_out.body["id"])]["failover_reason"] == "timeout"
    assert "failover_reason" not in feed[str(direct.body["id"])]
    assert "failover_reason" not in timed_out.body  # the API's message object is unchanged
    got = await edge.call("GET", f"/v1/messages/{timed_out.body['id']}", token=ws_token(edge.clock))
    assert "failover_reason" not in got.body


async def test_only_the_vocabulary_is_stored(edge: Edge) -> None:
    odd = await _send(edge, "k1", "<img src=x>" * 200)
    shouting = await _send(edge, "k2", "  BREAKER_OPEN ")
    empty = await _send(edge, "k3", "")
    assert _stored(edge, odd.body["id"]) == "other"
    assert _stored(edge, shouting.body["id"]) == "breaker_open"
    assert _stored(edge, empty.body["id"]) is None


async def test_a_replay_keeps_the_first_sends_reason(edge: Edge) -> None:
    first = await _send(edge, "k1", "timeout")
    again = await _send(edge, "k1", "hedge")
    assert again.status == 200
    assert again.body["id"] == first.body["id"]
    assert _stored(edge, first.body["id"]) == "timeout"
    assert edge.db._conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
