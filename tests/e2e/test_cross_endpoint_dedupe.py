"""One logical message reaches the provider at most once, whichever endpoint sends it (CONTRACT §1.5)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from tests.contract.kit import (
    Api,
    Simulator,
    assert_sent_message,
    json_body,
    new_key,
    poll,
    send_body,
    unique_content,
)
from tests.e2e.conftest import ClientFactory
from tests.support.fixtures import Stack


async def test_origin_answers_after_the_client_timeout_and_the_edge_does_not_send_again(
    make_client: ClientFactory, sim: Simulator, failover_ws: str
) -> None:
    """The origin sends, then answers after the client's timeout; the failover to the edge finds the claim."""
    client = make_client(workspace_id=failover_ws, SMSFAILOVER_ORIGIN_TIMEOUT_S="1")
    content = unique_content("slow-origin")
    sim.set_faults(slow_after_accept_ms=2500)  # the provider records the message, then answers late

    result = await client.send_message(to="+16266635938", content=content, workspace_id=failover_ws)

    assert len(sim.received(content)) == 1
    assert result.endpoint == "origin"
    assert result.requires_refresh is False
    assert result.status in {"queued", "sent", "delivered"}
    endpoints_tried = [attempt[0] if isinstance(attempt, tuple) else attempt.endpoint for attempt in result.attempts]
    assert "edge" in endpoints_tried, result.attempts


async def test_origin_down_the_edge_sends_and_a_retry_at_the_origin_replays(
    stack: Stack, make_client: ClientFactory, sim: Simulator, origin_api: Api, failover_ws: str
) -> None:
    key = new_key("origin-down")
    content = unique_content("origin-down")
    stack.stop_origin()
    client = make_client(workspace_id=failover_ws)  # starts while the origin is down: settings from the edge mirror

    result = await client.send_message(
        to="+16266635938", content=content, workspace_id=failover_ws, idempotency_key=key
    )

    assert result.endpoint == "edge"
    assert result.requires_refresh is True
    assert result.idempotency_key == key
    assert len(sim.received(content)) == 1

    stack.start_origin()
    replay = origin_api.send(failover_ws, send_body(failover_ws, content=content), key=key)
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    replayed = json_body(replay)
    assert_sent_message(replayed, endpoint="edge", key=key)
    assert replayed["id"] == result.message_id
    assert len(sim.received(content)) == 1


async def test_edge_sends_appear_in_the_origin_list_once_it_is_back(
    stack: Stack, make_client: ClientFactory, sim: Simulator, origin_api: Api, failover_ws: str
) -> None:
    stack.stop_origin()
    client = make_client(workspace_id=failover_ws)
    ids = []
    for _ in range(3):
        result = await client.send_message(to="+16266635938", content=unique_content("sync"), workspace_id=failover_ws)
        assert result.endpoint == "edge"
        ids.append(result.message_id)
    stack.start_origin()

    def listed() -> list[dict[str, object]] | None:
        page = json_body(origin_api.ws_get(failover_ws, f"/v1/workspaces/{failover_ws}/messages", {"limit": "50"}))
        found = [m for m in page["data"] if m["id"] in ids]
        return found if len(found) == len(ids) else None

    messages = poll(listed, timeout_s=20, interval_s=0.2, what="edge sends synced to the origin")
    assert [m["id"] for m in messages] == list(reversed(ids))
    for message in messages:
        assert message["endpoint"] == "edge"
        assert message["requires_refresh"] is True


def test_the_same_key_at_both_endpoints_at_once_is_one_provider_call(
    origin_api: Api, edge_api: Api, sim: Simulator, failover_ws: str
) -> None:
    sim.set_faults(slow_after_accept_ms=300)  # keeps both requests in flight together
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(4):
            key = new_key("both")
            body = send_body(failover_ws)
            futures = [pool.submit(api.send, failover_ws, body, key=key) for api in (origin_api, edge_api)]
            statuses = sorted(f.result(timeout=30).status_code for f in futures)

            assert len(sim.received(body["content"])) == 1
            assert statuses in ([201, 409], [200, 201]), statuses
            # Afterwards both endpoints agree on the one message.
            ids = {json_body(api.message_by_key(failover_ws, key))["id"] for api in (origin_api, edge_api)}
            assert len(ids) == 1


async def test_a_client_that_starts_while_the_origin_is_down_knows_the_setting(
    stack: Stack, make_client: ClientFactory, failover_ws: str
) -> None:
    stack.stop_origin()
    client = make_client(workspace_id=failover_ws)

    status = await client.get_sms_failover_status(failover_ws)

    assert status["enabled"] is True


def test_an_edge_sent_message_reaches_delivered_at_the_origin(
    origin_api: Api, edge_api: Api, sim: Simulator, failover_ws: str
) -> None:
    """The provider's status callbacks go to the origin; they apply to edge sends too once synced."""
    body = send_body(failover_ws)
    sent = json_body(edge_api.send(failover_ws, body))
    assert sent["endpoint"] == "edge"

    def delivered() -> dict[str, Any] | None:
        resp = origin_api.ws_get(failover_ws, f"/v1/messages/{sent['id']}")
        message = json_body(resp) if resp.status_code == 200 else None
        return message if message is not None and message["status"] == "delivered" else None

    try:
        message = poll(delivered, timeout_s=20, interval_s=0.2, what="the edge send, delivered, at the origin")
    except AssertionError:
        print(origin_api.ws_get(failover_ws, f"/v1/messages/{sent['id']}").text, sim.received(body["content"]))
        raise
    assert message["endpoint"] == "edge"
    assert message["requires_refresh"] is True
    assert len(sim.received(body["content"])) == 1


def test_edge_down_the_origin_says_local_ledger_and_reconciles_when_it_is_back(
    stack: Stack, origin_api: Api, edge_api: Api, sim: Simulator, failover_ws: str
) -> None:
    """The one stated exception (CONTRACT §1.5): the origin keeps sending on its own ledger and says so."""
    key = new_key("degraded")
    body = send_body(failover_ws)
    stack.stop_edge()
    poll(  # degraded mode only after the failover budget without a ledger round trip (7 s), never on a request
        lambda: True if json_body(origin_api.get("/v1/health"))["ledger"] == "local" else None,
        timeout_s=30,
        interval_s=0.25,
        what="the origin on its own ledger",
    )

    sent = origin_api.send(failover_ws, body, key=key)

    assert sent.status_code == 201, sent.text
    assert json_body(sent)["ledger"] == "local"
    health = json_body(origin_api.get("/v1/health"))
    assert (health["status"], health["ledger"]) == ("degraded", "local")
    status = json_body(origin_api.ws_get(failover_ws, f"/v1/workspaces/{failover_ws}/sms-failover/status"))
    assert status["degraded"] is True
    assert status["ledger"] == "local"

    stack.start_edge()

    def reconciled() -> bool | None:
        resp = edge_api.message_by_key(failover_ws, key)
        return True if resp.status_code == 200 else None

    poll(reconciled, timeout_s=30, interval_s=0.25, what="the local claim reconciled into the edge ledger")
    replay = edge_api.send(failover_ws, body, key=key)
    assert replay.status_code == 200, replay.text
    assert json_body(replay)["id"] == json_body(sent)["id"]
    assert len(sim.received(body["content"])) == 1
    poll(
        lambda: True if json_body(origin_api.get("/v1/health"))["ledger"] == "edge" else None,
        timeout_s=30,
        interval_s=0.25,
        what="the origin back on the edge ledger",
    )
