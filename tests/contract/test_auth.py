"""The auth matrix of CONTRACT §3 on both endpoints: 401 for a missing, bad or expired token, 403 for the
wrong principal."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest

from tests.contract.kit import Api, Simulator, assert_error, json_body, new_workspace, send_body

# A route each endpoint serves to service tokens only.
SERVICE_ROUTE = {"origin": "/metrics", "edge": "/v1/sync/messages?after=0&limit=1"}


def _bad_tokens(api: Api, ws: str) -> dict[str, str | None]:
    secret = api.tokens.secret
    return {
        "none": None,
        "garbage": "not.a.jwt",
        "bad_signature": api.tokens.forged(ws),
        "expired": api.tokens.expired(ws),
        "no_exp": jwt.encode({"workspace_id": ws}, secret, algorithm="HS256"),
        "alg_none": jwt.encode({"workspace_id": ws, "exp": int(time.time()) + 60}, None, algorithm="none"),
        "hs512": _hs512({"workspace_id": ws, "exp": int(time.time()) + 60}, secret),
    }


def _hs512(claims: dict[str, object], secret: str) -> str:
    """A token signed with the right secret but another algorithm than the contract's HS256."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for SHA-512: that is not the point
        return jwt.encode(claims, secret, algorithm="HS512")


@pytest.mark.parametrize("kind", ["none", "garbage", "bad_signature", "expired", "no_exp", "alg_none", "hs512"])
def test_send_without_a_valid_token_is_401_and_sends_nothing(api: Api, sim: Simulator, kind: str) -> None:
    ws = new_workspace()
    body = send_body(ws)
    token = _bad_tokens(api, ws)[kind]

    resp = api.send(ws, body, token=token)

    assert_error(resp, 401, "unauthorized")
    assert sim.received(body["content"]) == []


def test_non_bearer_authorization_is_401(api: Api) -> None:
    ws = new_workspace()
    token = api.tokens.workspace(ws)
    resp = api.send(ws, send_body(ws), token=None, headers={"Authorization": f"Basic {token}"})
    assert_error(resp, 401, "unauthorized")


def test_reads_need_a_token(api: Api) -> None:
    assert_error(api.get("/v1/messages/msg_01J00000000000000000000000"), 401, "unauthorized")
    assert_error(api.get("/v1/messages", params={"idempotency_key": "k"}), 401, "unauthorized")
    ws = new_workspace()
    expired = api.tokens.expired(ws)
    assert_error(api.get("/v1/messages", token=expired, params={"idempotency_key": "k"}), 401, "unauthorized")


def test_token_of_another_workspace_is_403_and_sends_nothing(api: Api, sim: Simulator) -> None:
    ws, other = new_workspace(), new_workspace()
    body = send_body(ws)

    resp = api.send(ws, body, token=api.tokens.workspace(other))

    assert_error(resp, 403, "forbidden")
    assert sim.received(body["content"]) == []


def test_service_token_on_a_workspace_route_is_403(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    body = send_body(ws)
    service = api.tokens.service()

    assert_error(api.send(ws, body, token=service), 403, "forbidden")
    assert_error(api.get("/v1/messages", token=service, params={"idempotency_key": "k"}), 403, "forbidden")
    assert sim.received(body["content"]) == []


def test_workspace_token_on_a_service_route_is_403(api: Api) -> None:
    ws = new_workspace()
    assert_error(api.get(SERVICE_ROUTE[api.name], token=api.tokens.workspace(ws)), 403, "forbidden")


def test_service_route_without_a_token_is_401(api: Api) -> None:
    assert_error(api.get(SERVICE_ROUTE[api.name]), 401, "unauthorized")


def test_service_token_may_call_the_service_route(api: Api) -> None:
    resp = api.get(SERVICE_ROUTE[api.name], token=api.tokens.service())
    assert resp.status_code == 200, resp.text


def test_errors_never_echo_the_token(api: Api) -> None:
    ws = new_workspace()
    token = api.tokens.forged(ws)
    resp = api.send(ws, send_body(ws), token=token)
    assert resp.status_code == 401
    assert token not in resp.text
    assert json_body(resp)["error"]["code"] == "unauthorized"


# ---- issue 13: one verification path, two keys, an operator role -----------------------------------------------


def _claims_token(api: Api, claims: dict[str, object]) -> str:
    return jwt.encode(claims, api.tokens.secret, algorithm="HS256")


def _odd_time_tokens(api: Api, ws: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "nbf_in_the_future": _claims_token(api, {"workspace_id": ws, "nbf": now + 3600, "exp": now + 7200}),
        "iat_in_the_future": _claims_token(api, {"workspace_id": ws, "iat": now + 3600, "exp": now + 7200}),
        "string_exp": _claims_token(api, {"workspace_id": ws, "exp": str(now + 3600)}),
    }


@pytest.mark.parametrize("kind", ["nbf_in_the_future", "iat_in_the_future", "string_exp"])
def test_every_route_checks_exp_nbf_and_iat_the_same_way(api: Api, sim: Simulator, kind: str) -> None:
    ws = new_workspace()
    token = _odd_time_tokens(api, ws)[kind]
    body = send_body(ws)
    assert_error(api.send(ws, body, token=token), 401, "unauthorized")
    assert_error(api.get("/v1/messages", token=token, params={"idempotency_key": "k"}), 401, "unauthorized")
    if api.name == "origin":  # the origin's workspace routes went through another check before
        for path in (f"/v1/workspaces/{ws}/settings", f"/v1/workspaces/{ws}/sms-failover/status"):
            assert_error(api.get(path, token=token), 401, "unauthorized")
    else:
        assert_error(api.get(f"/v1/workspaces/{ws}/settings", token=token), 401, "unauthorized")
    assert sim.received(body["content"]) == []


@pytest.mark.parametrize("role", ["service", "operator"])
def test_a_fleet_token_made_with_the_workspace_secret_is_refused(api: Api, role: str) -> None:
    forged = _claims_token(api, {"role": role, "exp": int(time.time()) + 600})
    assert_error(api.get(SERVICE_ROUTE[api.name], token=forged), 401, "unauthorized")


def test_an_operator_token_is_not_a_service_token(api: Api) -> None:
    if api.name == "edge":  # the edge's service routes are for the origin's service token only
        assert_error(api.get(SERVICE_ROUTE["edge"], token=api.tokens.operator()), 403, "forbidden")
    else:  # the origin's /metrics is for either of the fleet's tokens
        assert api.get(SERVICE_ROUTE["origin"], token=api.tokens.operator()).status_code == 200
