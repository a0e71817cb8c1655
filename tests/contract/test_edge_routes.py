"""The edge's own routes (docs/architecture.md): the settings mirror, the service-only routes."""

from __future__ import annotations

import pytest

from tests.contract.kit import Api, assert_error, json_body, new_workspace

SERVICE_ROUTES = [
    ("POST", "/v1/ledger/claim"),
    ("POST", "/v1/ledger/complete"),
    ("POST", "/v1/ledger/release"),
    ("POST", "/v1/ledger/reconcile"),
    ("GET", "/v1/ledger/ws1/key1"),
    ("GET", "/v1/sync/messages?after=0&limit=10"),
    ("PUT", "/v1/settings-mirror/ws1"),
]


@pytest.mark.parametrize(("method", "path"), SERVICE_ROUTES)
def test_service_routes_refuse_workspace_tokens_and_anonymous_callers(edge_api: Api, method: str, path: str) -> None:
    ws_token = edge_api.tokens.workspace("ws1")
    anonymous = edge_api.http.request(method, path, json={})
    assert_error(anonymous, 401, "unauthorized")
    as_workspace = edge_api.http.request(method, path, json={}, headers={"Authorization": f"Bearer {ws_token}"})
    assert_error(as_workspace, 403, "forbidden")


def test_mirrored_settings_default_to_off(edge_api: Api) -> None:
    ws = new_workspace()
    resp = edge_api.ws_get(ws, f"/v1/workspaces/{ws}/settings")
    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert body["workspace_id"] == ws
    assert body["sms_failover_enabled"] is False


def test_settings_mirror_round_trip_with_a_service_token(edge_api: Api) -> None:
    ws = new_workspace()
    service = {"Authorization": f"Bearer {edge_api.tokens.service()}"}
    put = edge_api.http.put(
        f"/v1/settings-mirror/{ws}",
        json={"sms_failover_enabled": True, "updated_at": "2026-11-23T20:00:00Z"},
        headers=service,
    )
    assert put.status_code in {200, 204}, put.text

    body = json_body(edge_api.ws_get(ws, f"/v1/workspaces/{ws}/settings"))
    assert body["sms_failover_enabled"] is True
    assert_error(
        edge_api.get(f"/v1/workspaces/{ws}/settings", token=edge_api.tokens.workspace("other")),
        403,
        "forbidden",
    )


def test_sync_feed_pages_with_a_cursor(edge_api: Api) -> None:
    resp = edge_api.get("/v1/sync/messages", token=edge_api.tokens.service(), params={"after": "0", "limit": "5"})
    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert isinstance(body["data"], list)
    assert len(body["data"]) <= 5
    assert "next_cursor" in body
