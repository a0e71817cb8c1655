"""POST /v1/messages and the two GET routes, identical on the origin and the edge (CONTRACT §3)."""

from __future__ import annotations

import concurrent.futures

from tests.contract.kit import (
    Api,
    Simulator,
    assert_error,
    assert_sent_message,
    json_body,
    new_key,
    new_workspace,
    poll,
    send_body,
    unique_content,
)


def test_first_send_is_201_with_the_contract_fields_and_one_provider_call(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws, contact_id="97241048-3d5f-4236-90c6-de499ccd6462")

    resp = api.send(ws, body, key=key)

    assert resp.status_code == 201, resp.text
    assert "idempotent-replayed" not in resp.headers
    sent = json_body(resp)
    assert_sent_message(sent, endpoint=api.name, key=key)
    assert sent["encoding"] == "GSM-7"
    assert sent["segments"] == 1
    assert isinstance(sent["provider_message_id"], str)
    assert sent["provider_message_id"]
    assert len(sim.received(body["content"])) == 1


def test_same_key_and_payload_again_replays_the_original_body_and_sends_nothing(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws)
    first = api.send(ws, body, key=key)
    assert first.status_code == 201, first.text

    again = api.send(ws, body, key=key)

    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert json_body(again) == json_body(first)
    assert len(sim.received(body["content"])) == 1


def test_same_key_with_another_payload_is_422_idempotency_key_reused(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws)
    assert api.send(ws, body, key=key).status_code == 201

    changed = dict(body, content=unique_content("changed"))
    assert_error(api.send(ws, changed, key=key), 422, "idempotency_key_reused")
    assert sim.received(changed["content"]) == []


def test_the_same_key_in_another_workspace_is_another_message(api: Api, sim: Simulator) -> None:
    key = new_key()
    content = unique_content()
    for ws in (new_workspace(), new_workspace()):
        resp = api.send(ws, send_body(ws, content=content), key=key)
        assert resp.status_code == 201, resp.text
    assert len(sim.received(content)) == 2


def test_key_in_flight_is_409_with_retry_after_then_completes(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws)
    sim.set_faults(slow_after_accept_ms=2500)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(api.send, ws, body, key=key)
            poll(lambda: sim.received(body["content"]) or None, timeout_s=10, what="the provider call")

            in_flight = api.send(ws, body, key=key)
            assert_error(in_flight, 409, "idempotency_in_progress")
            assert int(in_flight.headers["retry-after"]) >= 1
            by_key = api.message_by_key(ws, key)
            assert_error(by_key, 409, "idempotency_in_progress")
            assert int(by_key.headers["retry-after"]) >= 1

            done = first.result(timeout=20)
    finally:
        sim.clear_faults()
    assert done.status_code == 201, done.text
    assert json_body(api.message_by_key(ws, key))["id"] == json_body(done)["id"]
    assert len(sim.received(body["content"])) == 1


def test_get_message_by_id_returns_the_recorded_message(api: Api) -> None:
    ws = new_workspace()
    key = new_key()
    sent = json_body(api.send(ws, send_body(ws), key=key))

    resp = api.ws_get(ws, f"/v1/messages/{sent['id']}")

    assert resp.status_code == 200, resp.text
    got = json_body(resp)
    assert_sent_message(got, endpoint=api.name, key=key)
    assert got["id"] == sent["id"]
    assert got["workspace_id"] == ws
    assert "content" not in got or got["content"] != ""


def test_get_message_of_another_workspace_is_not_found(api: Api) -> None:
    ws, other = new_workspace(), new_workspace()
    sent = json_body(api.send(ws, send_body(ws)))

    assert_error(api.ws_get(other, f"/v1/messages/{sent['id']}"), 404, "not_found")


def test_get_unknown_message_id_is_404(api: Api) -> None:
    ws = new_workspace()
    assert_error(api.ws_get(ws, "/v1/messages/msg_01J00000000000000000000000"), 404, "not_found")
    assert_error(api.ws_get(ws, "/v1/messages/not-an-id"), 404, "not_found")


def test_get_by_idempotency_key_returns_the_message_or_404(api: Api) -> None:
    ws = new_workspace()
    key = new_key()
    sent = json_body(api.send(ws, send_body(ws), key=key))

    found = api.message_by_key(ws, key)
    assert found.status_code == 200, found.text
    assert_sent_message(json_body(found), endpoint=api.name, key=key)
    assert json_body(found)["id"] == sent["id"]

    assert_error(api.message_by_key(ws, new_key()), 404, "not_found")
    assert_error(api.message_by_key(new_workspace(), key), 404, "not_found")


def test_unicode_content_is_ucs2_and_counts_segments(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    marker = unique_content("x")
    content = marker + " " + "é€😀" * 30  # 67 code points per UCS-2 segment once over 70
    resp = api.send(ws, send_body(ws, content=content))
    assert resp.status_code == 201, resp.text
    sent = json_body(resp)
    assert sent["encoding"] == "UCS-2"
    assert sent["segments"] >= 2
    assert len(sim.received(marker)) == 1


def test_long_gsm_content_counts_153_septet_segments(api: Api) -> None:
    ws = new_workspace()
    resp = api.send(ws, send_body(ws, content="a" * 161))
    assert resp.status_code == 201, resp.text
    assert json_body(resp)["segments"] == 2
    assert json_body(resp)["encoding"] == "GSM-7"


def test_media_only_message_is_accepted(api: Api) -> None:
    ws = new_workspace()
    body = {"to": "+16266635938", "workspace_id": ws, "media_urls": ["https://example.com/image.jpg"]}
    resp = api.send(ws, body)
    assert resp.status_code == 201, resp.text
    sent = json_body(resp)
    assert sent["endpoint"] == api.name
    assert sent["status"] in {"queued", "sent", "delivered"}


def test_1600_code_points_is_the_longest_content(api: Api) -> None:
    ws = new_workspace()
    assert api.send(ws, send_body(ws, content="😀" * 1600)).status_code == 201
    assert_error(api.send(ws, send_body(ws, content="😀" * 1601)), 422, "invalid_content", field="content")


def test_provider_rejection_is_422_with_the_provider_code_and_nothing_sent(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws)
    sim.set_faults(reject_code=21610)
    try:
        error = assert_error(api.send(ws, body, key=key), 422, "provider_rejected")
    finally:
        sim.clear_faults()
    assert str(error.get("provider_code")) == "21610"
    assert sim.received(body["content"]) == []


def test_provider_down_is_503_and_the_key_is_released_for_a_retry(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    key = new_key()
    body = send_body(ws)
    sim.set_faults(status=503)
    try:
        assert_error(api.send(ws, body, key=key), 503, "provider_unavailable")
    finally:
        sim.clear_faults()

    retry = api.send(ws, body, key=key)
    assert retry.status_code == 201, retry.text
    assert len(sim.received(body["content"])) == 1
