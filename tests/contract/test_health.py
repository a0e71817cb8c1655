"""GET /v1/health on both endpoints, and the behaviour every route shares (unknown routes, methods)."""

from __future__ import annotations

from tests.contract.kit import Api, assert_error, json_body


def test_health_needs_no_auth_and_has_the_contract_shape(api: Api) -> None:
    resp = api.get("/v1/health")

    assert resp.status_code == 200, resp.text
    body = json_body(resp)
    assert body["status"] in {"ok", "degraded"}
    assert body["endpoint"] == api.name
    assert isinstance(body["version"], str)
    assert body["version"]
    assert body["ledger"] in {"edge", "local"}


def test_health_ignores_a_bad_token(api: Api) -> None:
    resp = api.get("/v1/health", token="not.a.jwt")
    assert resp.status_code == 200
    assert json_body(resp)["endpoint"] == api.name


def test_edge_health_reports_its_own_ledger(edge_api: Api) -> None:
    body = json_body(edge_api.get("/v1/health"))
    assert body["ledger"] == "edge"
    assert body["status"] == "ok"


def test_unknown_route_is_404_in_the_envelope(api: Api) -> None:
    assert_error(api.get("/v1/no-such-route"), 404, "not_found")


def test_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    resp = api.http.delete("/v1/health")
    assert_error(resp, 405, "method_not_allowed")
