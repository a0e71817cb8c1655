"""HS256 bearer tokens: workspace and service tokens, and who may call what (CONTRACT §3)."""

from __future__ import annotations

import time

import jwt
import pytest
from smsfailover.core.auth import (
    LEEWAY_S,
    Principal,
    issue_token,
    require_service,
    require_workspace,
    verify_bearer,
    verify_token,
)
from smsfailover.core.errors import ApiError

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"
NOW = 1_800_000_000.0


def unauthorized(secret: str, token: str, now: float | None = NOW) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verify_token(secret, token, now)
    error = caught.value
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.headers == {"WWW-Authenticate": "Bearer"}
    return error


def test_a_workspace_token_verifies_to_its_workspace() -> None:
    token = issue_token(SECRET, workspace_id="15213", now=NOW)
    principal = verify_token(SECRET, token, now=NOW + 10)
    assert principal == Principal("15213", "workspace")
    assert not principal.is_service


def test_a_workspace_token_carries_workspace_iat_and_exp() -> None:
    token = issue_token(SECRET, workspace_id="15213", ttl_s=120, now=NOW)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"workspace_id": "15213", "iat": int(NOW), "exp": int(NOW) + 120}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_a_service_token_has_a_role_and_no_workspace() -> None:
    token = issue_token(SECRET, service=True, now=NOW)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["role"] == "service"
    assert "workspace_id" not in claims
    principal = verify_token(SECRET, token, now=NOW)
    assert principal == Principal(None, "service")
    assert principal.is_service


def test_tokens_verify_against_the_real_clock_when_no_time_is_given() -> None:
    assert verify_token(SECRET, issue_token(SECRET, workspace_id="w")).workspace_id == "w"
    expired = issue_token(SECRET, workspace_id="w", ttl_s=60, now=time.time() - 3600)
    assert "expired" in unauthorized(SECRET, expired, now=None).message
    assert "not valid" in unauthorized(OTHER_SECRET, issue_token(SECRET, workspace_id="w"), now=None).message


def test_expiry_tolerates_the_leeway_and_no_more() -> None:
    token = issue_token(SECRET, workspace_id="w", ttl_s=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 60 + LEEWAY_S).workspace_id == "w"
    assert "expired" in unauthorized(SECRET, token, now=NOW + 60 + LEEWAY_S + 1).message


def test_a_token_signed_with_another_secret_is_refused() -> None:
    unauthorized(SECRET, issue_token(OTHER_SECRET, workspace_id="w", now=NOW))


def test_a_token_verified_once_is_still_refused_under_another_secret_and_once_expired() -> None:
    token = issue_token(SECRET, workspace_id="w", ttl_s=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW).workspace_id == "w"  # now remembered as verified
    unauthorized(OTHER_SECRET, token)
    assert "expired" in unauthorized(SECRET, token, now=NOW + 60 + LEEWAY_S + 1).message


def test_an_unsigned_alg_none_token_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w", "exp": int(NOW) + 60}, None, algorithm="none")
    unauthorized(SECRET, token)
    unauthorized(SECRET, token, now=None)


def test_another_algorithm_with_the_right_secret_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w", "exp": int(NOW) + 60}, SECRET + SECRET, algorithm="HS512")
    unauthorized(SECRET + SECRET, token)


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = issue_token(SECRET, workspace_id="w", now=NOW).split(".")
    forged_payload = jwt.encode({"role": "service", "exp": int(NOW) + 60}, SECRET).split(".")[1]
    unauthorized(SECRET, f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "é.é.é"])
def test_malformed_tokens_are_refused(token: str) -> None:
    unauthorized(SECRET, token)


def test_a_token_without_exp_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w"}, SECRET, algorithm="HS256")
    unauthorized(SECRET, token)
    unauthorized(SECRET, token, now=None)


def test_a_token_with_a_non_numeric_exp_is_refused() -> None:
    unauthorized(SECRET, jwt.encode({"workspace_id": "w", "exp": "soon"}, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("claims", [{}, {"workspace_id": 15213}, {"role": "admin"}, {"workspace_id": None}])
def test_a_token_naming_no_workspace_is_refused(claims: dict[str, object]) -> None:
    error = unauthorized(SECRET, jwt.encode({**claims, "exp": int(NOW) + 60}, SECRET, algorithm="HS256"))
    assert "no workspace" in error.message


def test_a_token_with_a_malformed_workspace_is_refused() -> None:
    token = jwt.encode({"workspace_id": "a/b", "exp": int(NOW) + 60}, SECRET, algorithm="HS256")
    assert "malformed" in unauthorized(SECRET, token).message


def test_issuing_needs_a_secret_and_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="secret"):
        issue_token("", workspace_id="w")
    with pytest.raises(ValueError, match="either"):
        issue_token(SECRET)
    with pytest.raises(ValueError, match="either"):
        issue_token(SECRET, workspace_id="w", service=True)
    with pytest.raises(ApiError):
        issue_token(SECRET, workspace_id="not a workspace")


# ---- the Authorization header -----------------------------------------------------------------------------------


def test_a_bearer_header_verifies() -> None:
    token = issue_token(SECRET, workspace_id="w", now=NOW)
    assert verify_bearer(SECRET, f"Bearer {token}", now=NOW).workspace_id == "w"
    assert verify_bearer(SECRET, f"bearer   {token}  ", now=NOW).workspace_id == "w"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_missing_or_malformed_authorization_header_is_a_401(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        verify_bearer(SECRET, header, now=NOW)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"


def test_an_endpoint_without_a_secret_says_it_is_not_configured() -> None:
    with pytest.raises(ApiError) as caught:
        verify_bearer("", "Bearer abc.def.ghi", now=NOW)
    assert (caught.value.status, caught.value.code) == (503, "not_configured")


# ---- who may call what ------------------------------------------------------------------------------------------

WORKSPACE = Principal("15213", "workspace")
SERVICE = Principal(None, "service")


def test_a_workspace_token_may_act_for_its_own_workspace() -> None:
    require_workspace(WORKSPACE, "15213")


@pytest.mark.parametrize(
    ("principal", "workspace_id", "field"),
    [(WORKSPACE, "other", "workspace_id"), (SERVICE, "15213", None)],
)
def test_require_workspace_refuses_other_workspaces_and_service_tokens(
    principal: Principal, workspace_id: str, field: str | None
) -> None:
    with pytest.raises(ApiError) as caught:
        require_workspace(principal, workspace_id)
    assert (caught.value.status, caught.value.code, caught.value.field) == (403, "forbidden", field)


def test_require_service_admits_only_service_tokens() -> None:
    require_service(SERVICE)
    with pytest.raises(ApiError) as caught:
        require_service(WORKSPACE)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
