"""The routes only the origin serves (CONTRACT §3): settings, failover status, the message list, /metrics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.kit import (
    Api,
    Simulator,
    assert_error,
    assert_rfc3339_utc,
    assert_sent_message,
    bearer,
    json_body,
    new_workspace,
    poll,
    send_body,
)

ENDPOINT_STATS = {
    "healthy",
    "latency_ms",
    "checked_at",
    "window_s",
    "requests",
    "success_rate",
    "p50_ms",
    "p95_ms",
}


def _settings(origin_api: Api, ws: str) -> dict[str, Any]:
    resp = origin_api.ws_get(ws, f"/v1/workspaces/{ws}/settings")
    assert resp.status_code == 200, resp.text
    return json_body(resp)


def _patch_settings(origin_api: Api, ws: str, body: object, token: str | None = "") -> Any:
    tok = origin_api.tokens.workspace(ws) if token == "" else token
    headers = {} if tok is None else {"Authorization": f"Bearer {tok}"}
    return origin_api.http.patch(f"/v1/workspaces/{ws}/settings", json=body, headers=headers)


def test_settings_of_a_new_workspace_default_to_failover_off(origin_api: Api) -> None:
    ws = new_workspace()
    body = _settings(origin_api, ws)
    assert body["workspace_id"] == ws
    assert body["sms_failover_enabled"] is False
    assert body["updated_at"] is None or assert_rfc3339_utc(body["updated_at"])


def test_patch_settings_enables_and_disables_failover(origin_api: Api) -> None:
    ws = new_workspace()
    on = _patch_settings(origin_api, ws, {"sms_failover_enabled": True})
    assert on.status_code == 200, on.text
    assert json_body(on)["sms_failover_enabled"] is True
    assert_rfc3339_utc(json_body(on)["updated_at"])
    assert _settings(origin_api, ws)["sms_failover_enabled"] is True

    off = _patch_settings(origin_api, ws, {"sms_failover_enabled": False})
    assert json_body(off)["sms_failover_enabled"] is False
    assert _settings(origin_api, ws)["sms_failover_enabled"] is False


@pytest.mark.parametrize("body", [{"sms_failover_enabled": "yes"}, {"sms_failover_enabled": 1}, [], {}])
def test_patch_settings_rejects_bad_values(origin_api: Api, body: object) -> None:
    ws = new_workspace()
    resp = _patch_settings(origin_api, ws, body)
    assert_error(resp, 422, "invalid_settings")
    assert _settings(origin_api, ws)["sms_failover_enabled"] is False


def test_patch_settings_with_invalid_json_is_400(origin_api: Api) -> None:
    ws = new_workspace()
    resp = origin_api.http.patch(
        f"/v1/workspaces/{ws}/settings",
        content=b"{nope",
        headers={
            "Authorization": f"Bearer {origin_api.tokens.workspace(ws)}",
            "Content-Type": "application/json",
        },
    )
    assert_error(resp, 400, "invalid_json")


def test_settings_auth(origin_api: Api) -> None:
    ws, other = new_workspace(), new_workspace()
    path = f"/v1/workspaces/{ws}/settings"
    assert_error(origin_api.get(path), 401, "unauthorized")
    assert_error(origin_api.get(path, token=origin_api.tokens.expired(ws)), 401, "unauthorized")
    assert_error(origin_api.get(path, token=origin_api.tokens.workspace(other)), 403, "forbidden")
    denied = _patch_settings(origin_api, ws, {"sms_failover_enabled": True}, token=origin_api.tokens.workspace(other))
    assert_error(denied, 403, "forbidden")
    assert _settings(origin_api, ws)["sms_failover_enabled"] is False


def test_settings_of_an_invalid_workspace_id_is_422(origin_api: Api) -> None:
    token = origin_api.tokens.workspace(new_workspace())
    resp = origin_api.get("/v1/workspaces/bad%20id/settings", token=token)
    assert_error(resp, 422, "invalid_workspace_id", field="ws")


def test_a_token_naming_a_malformed_workspace_is_401(origin_api: Api) -> None:
    resp = origin_api.get("/v1/workspaces/ok/settings", token=origin_api.tokens.workspace("bad id"))
    assert_error(resp, 401, "unauthorized")


def test_status_has_the_contract_shape(origin_api: Api) -> None:
    ws = new_workspace()
    assert origin_api.send(ws, send_body(ws)).status_code == 201

    resp = origin_api.ws_get(ws, f"/v1/workspaces/{ws}/sms-failover/status")

    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert body["workspace_id"] == ws
    assert body["enabled"] is False
    assert body["ledger"] in {"edge", "local"}
    assert isinstance(body["degraded"], bool)
    assert isinstance(body["failovers_15m"], int)
    assert isinstance(body["unknown_15m"], int)
    assert "breaker" in body
    assert set(body["endpoints"]) == {"origin", "edge"}
    for stats in body["endpoints"].values():
        assert set(stats) >= ENDPOINT_STATS, stats
        assert "p99_ms" in stats
        assert isinstance(stats["healthy"], bool)
    assert body["endpoints"]["origin"]["requests"] >= 1


def test_status_auth(origin_api: Api) -> None:
    ws, other = new_workspace(), new_workspace()
    path = f"/v1/workspaces/{ws}/sms-failover/status"
    assert_error(origin_api.get(path), 401, "unauthorized")
    assert_error(origin_api.get(path, token=origin_api.tokens.workspace(other)), 403, "forbidden")


def test_list_is_newest_first_and_pages_with_a_cursor(origin_api: Api) -> None:
    ws = new_workspace()
    ids = [json_body(origin_api.send(ws, send_body(ws)))["id"] for _ in range(5)]

    first = origin_api.ws_get(ws, f"/v1/workspaces/{ws}/messages", {"limit": "2"})
    assert first.status_code == 200, first.text
    page = json_body(first)
    seen = [m["id"] for m in page["data"]]
    for message in page["data"]:
        assert_sent_message(message, endpoint="origin")
        assert message["workspace_id"] == ws
    pages = 1
    while page["next_cursor"] is not None and pages < 10:
        nxt = origin_api.ws_get(ws, f"/v1/workspaces/{ws}/messages", {"limit": "2", "cursor": page["next_cursor"]})
        assert nxt.status_code == 200, nxt.text
        page = json_body(nxt)
        assert len(page["data"]) <= 2
        seen += [m["id"] for m in page["data"]]
        pages += 1

    assert seen == list(reversed(ids))


def test_list_of_a_new_workspace_is_empty(origin_api: Api) -> None:
    ws = new_workspace()
    body = json_body(origin_api.ws_get(ws, f"/v1/workspaces/{ws}/messages"))
    assert body == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "1001"}])
def test_list_rejects_a_bad_limit(origin_api: Api, params: dict[str, str]) -> None:
    ws = new_workspace()
    assert_error(origin_api.ws_get(ws, f"/v1/workspaces/{ws}/messages", params), 422, "invalid_limit", field="limit")


def test_list_rejects_a_bad_cursor(origin_api: Api) -> None:
    ws = new_workspace()
    resp = origin_api.ws_get(ws, f"/v1/workspaces/{ws}/messages", {"cursor": "!!not-a-cursor!!"})
    assert_error(resp, 422, "invalid_cursor", field="cursor")


def test_list_auth(origin_api: Api) -> None:
    ws, other = new_workspace(), new_workspace()
    path = f"/v1/workspaces/{ws}/messages"
    assert_error(origin_api.get(path), 401, "unauthorized")
    assert_error(origin_api.get(path, token=origin_api.tokens.workspace(other)), 403, "forbidden")


def test_metrics_is_prometheus_text_without_workspace_labels(origin_api: Api) -> None:
    ws = new_workspace()
    assert origin_api.send(ws, send_body(ws)).status_code == 201

    resp = origin_api.get("/metrics", token=origin_api.tokens.service())

    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in resp.text
    assert ws not in resp.text
    assert "workspace" not in resp.text.lower().replace("workspaces_", "")


def test_metrics_auth(origin_api: Api) -> None:
    assert_error(origin_api.get("/metrics"), 401, "unauthorized")
    assert_error(origin_api.get("/metrics", token=origin_api.tokens.workspace(new_workspace())), 403, "forbidden")


def test_provider_status_callbacks_advance_the_message_to_delivered(origin_api: Api, sim: Simulator) -> None:
    """The simulator posts Twilio-signed status callbacks to the origin, as Twilio would."""
    ws = new_workspace()
    body = send_body(ws)
    sent = json_body(origin_api.send(ws, body))

    def delivered() -> dict[str, Any] | None:
        message = json_body(origin_api.ws_get(ws, f"/v1/messages/{sent['id']}"))
        return message if message["status"] == "delivered" else None

    message = poll(delivered, timeout_s=20, interval_s=0.1, what="the delivered callback")
    assert_rfc3339_utc(message["updated_at"])
    callbacks = sim.received(body["content"])[0]["callbacks"]
    assert callbacks, "the simulator reports the callbacks it made"
    assert all(200 <= c["http_status"] < 300 for c in callbacks), callbacks


def test_an_unsigned_or_forged_status_callback_is_refused(origin_api: Api) -> None:
    ws = new_workspace()
    sent = json_body(origin_api.send(ws, send_body(ws)))
    form = {"MessageSid": str(sent["provider_message_id"]), "MessageStatus": "failed"}

    unsigned = origin_api.http.post("/v1/provider/twilio/status", data=form)
    forged = origin_api.http.post(
        "/v1/provider/twilio/status", data=form, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )

    for refused in (unsigned, forged):
        assert refused.status_code == 403, refused.text
        assert json_body(refused)["error"]["code"] in {"forbidden", "invalid_signature"}
    assert json_body(origin_api.ws_get(ws, f"/v1/messages/{sent['id']}"))["status"] != "failed"


def test_the_fleet_breaker_action_needs_an_operator_token(origin_api: Api) -> None:
    """POST /v1/breaker moves every tenant's traffic: a workspace or service token is refused; an operator's
    reaches the action (this stack has no shared breaker, so it answers 409 breaker_not_shared)."""
    ws = new_workspace()
    tokens = origin_api.tokens
    for token, status, code in (
        (None, 401, "unauthorized"),
        (tokens.workspace(ws), 403, "forbidden"),
        (tokens.service(), 403, "forbidden"),
        (tokens.operator(), 409, "breaker_not_shared"),
    ):
        resp = origin_api.http.post("/v1/breaker", json={"action": "isolate"}, headers=bearer(token))
        assert_error(resp, status, code)
    refused = origin_api.http.post("/v1/breaker", content=b"{", headers=bearer(tokens.operator()))
    assert_error(refused, 400, "invalid_json")
