"""HS256 bearer tokens: workspace and service tokens, and who may call what (CONTRACT §3)."""

from __future__ import annotations

import time

import jwt
import pytest
from smsfailover.core.auth import (
    LEEWAY_S,
    Principal,
    SigningKeys,
    issue_token,
    require_operator,
    require_service,
    require_workspace,
    verify_bearer,
    verify_token,
)
from smsfailover.core.errors import ApiError

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-also-long-enough-for-hs256"
SERVICE_KEY = "the-service-key-signs-service-and-operator-tokens"
KEYS = SigningKeys(SECRET, SERVICE_KEY)
OTHER_KEYS = SigningKeys(OTHER_SECRET, "another-service-key-that-is-long-enough")
NOW = 1_800_000_000.0


def unauthorized(keys: SigningKeys, token: str, now: float | None = NOW) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verify_token(keys, token, now)
    error = caught.value
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.headers == {"WWW-Authenticate": "Bearer"}
    return error


def test_a_workspace_token_verifies_to_its_workspace() -> None:
    token = issue_token(SECRET, workspace_id="15213", now=NOW)
    principal = verify_token(KEYS, token, now=NOW + 10)
    assert principal == Principal("15213", "workspace")
    assert not principal.is_service


def test_a_workspace_token_carries_workspace_iat_and_exp() -> None:
    token = issue_token(SECRET, workspace_id="15213", ttl_s=120, now=NOW)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"workspace_id": "15213", "iat": int(NOW), "exp": int(NOW) + 120}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_a_service_token_has_a_role_and_no_workspace() -> None:
    token = issue_token(SERVICE_KEY, service=True, now=NOW)
    claims = jwt.decode(token, SERVICE_KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["role"] == "service"
    assert "workspace_id" not in claims
    principal = verify_token(KEYS, token, now=NOW)
    assert principal == Principal(None, "service")
    assert principal.is_service


def test_tokens_verify_against_the_real_clock_when_no_time_is_given() -> None:
    assert verify_token(KEYS, issue_token(SECRET, workspace_id="w")).workspace_id == "w"
    expired = issue_token(SECRET, workspace_id="w", ttl_s=60, now=time.time() - 3600)
    assert "expired" in unauthorized(KEYS, expired, now=None).message
    assert "not valid" in unauthorized(OTHER_KEYS, issue_token(SECRET, workspace_id="w"), now=None).message


def test_expiry_tolerates_the_leeway_and_no_more() -> None:
    token = issue_token(SECRET, workspace_id="w", ttl_s=60, now=NOW)
    assert verify_token(KEYS, token, now=NOW + 60 + LEEWAY_S).workspace_id == "w"
    assert "expired" in unauthorized(KEYS, token, now=NOW + 60 + LEEWAY_S + 1).message


def test_a_token_signed_with_another_secret_is_refused() -> None:
    unauthorized(KEYS, issue_token(OTHER_SECRET, workspace_id="w", now=NOW))


def test_a_token_verified_once_is_still_refused_under_another_secret_and_once_expired() -> None:
    token = issue_token(SECRET, workspace_id="w", ttl_s=60, now=NOW)
    assert verify_token(KEYS, token, now=NOW).workspace_id == "w"  # now remembered as verified
    unauthorized(OTHER_KEYS, token)
    assert "expired" in unauthorized(KEYS, token, now=NOW + 60 + LEEWAY_S + 1).message


def test_an_unsigned_alg_none_token_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w", "exp": int(NOW) + 60}, None, algorithm="none")
    unauthorized(KEYS, token)
    unauthorized(KEYS, token, now=None)


def test_another_algorithm_with_the_right_secret_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w", "exp": int(NOW) + 60}, SECRET + SECRET, algorithm="HS512")
    unauthorized(SigningKeys(SECRET + SECRET), token)


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = issue_token(SECRET, workspace_id="w", now=NOW).split(".")
    forged_payload = jwt.encode({"role": "service", "exp": int(NOW) + 60}, SECRET).split(".")[1]
    unauthorized(KEYS, f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "é.é.é"])
def test_malformed_tokens_are_refused(token: str) -> None:
    unauthorized(KEYS, token)


def test_a_token_without_exp_is_refused() -> None:
    token = jwt.encode({"workspace_id": "w"}, SECRET, algorithm="HS256")
    unauthorized(KEYS, token)
    unauthorized(KEYS, token, now=None)


def test_a_token_with_a_non_numeric_exp_is_refused() -> None:
    unauthorized(KEYS, jwt.encode({"workspace_id": "w", "exp": "soon"}, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("claims", [{}, {"workspace_id": 15213}, {"workspace_id": None}])
def test_a_token_naming_no_workspace_is_refused(claims: dict[str, object]) -> None:
    error = unauthorized(KEYS, jwt.encode({**claims, "exp": int(NOW) + 60}, SECRET, algorithm="HS256"))
    assert "no workspace" in error.message


def test_a_token_with_a_malformed_workspace_is_refused() -> None:
    token = jwt.encode({"workspace_id": "a/b", "exp": int(NOW) + 60}, SECRET, algorithm="HS256")
    assert "malformed" in unauthorized(KEYS, token).message


def test_issuing_needs_a_key_and_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="key"):
        issue_token("", workspace_id="w")
    with pytest.raises(ValueError, match="one workspace"):
        issue_token(SECRET)
    with pytest.raises(ValueError, match="one workspace"):
        issue_token(SECRET, workspace_id="w", service=True)
    with pytest.raises(ValueError, match="one workspace"):
        issue_token(SERVICE_KEY, service=True, operator=True)
    with pytest.raises(ApiError):
        issue_token(SECRET, workspace_id="not a workspace")


# ---- the Authorization header -----------------------------------------------------------------------------------


def test_a_bearer_header_verifies() -> None:
    token = issue_token(SECRET, workspace_id="w", now=NOW)
    assert verify_bearer(KEYS, f"Bearer {token}", now=NOW).workspace_id == "w"
    assert verify_bearer(KEYS, f"bearer   {token}  ", now=NOW).workspace_id == "w"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_missing_or_malformed_authorization_header_is_a_401(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        verify_bearer(KEYS, header, now=NOW)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"


def test_an_endpoint_without_keys_says_it_is_not_configured_and_not_what_is_missing() -> None:
    with pytest.raises(ApiError) as caught:
        verify_bearer(SigningKeys(""), "Bearer abc.def.ghi", now=NOW)
    assert (caught.value.status, caught.value.code) == (503, "not_configured")
    assert "SMSFAILOVER" not in caught.value.message
    assert "secret" not in caught.value.message.lower()


# ---- who may call what ------------------------------------------------------------------------------------------

WORKSPACE = Principal("15213", "workspace")
SERVICE = Principal(None, "service")
OPERATOR = Principal(None, "operator")


def test_a_workspace_token_may_act_for_its_own_workspace() -> None:
    require_workspace(WORKSPACE, "15213")


@pytest.mark.parametrize(
    ("principal", "workspace_id", "field"),
    [(WORKSPACE, "other", "workspace_id"), (SERVICE, "15213", None), (OPERATOR, "15213", None)],
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


def test_require_operator_admits_only_operator_tokens() -> None:
    require_operator(OPERATOR)
    for principal in (WORKSPACE, SERVICE):
        with pytest.raises(ApiError) as caught:
            require_operator(principal)
        assert (caught.value.status, caught.value.code) == (403, "forbidden")


# ---- two keys: the workspace key cannot make a fleet token ------------------------------------------------------


@pytest.mark.parametrize("role", ["service", "operator"])
def test_a_fleet_token_signed_with_the_workspace_key_is_refused(role: str) -> None:
    forged = jwt.encode({"role": role, "exp": int(NOW) + 60}, SECRET, algorithm="HS256")
    unauthorized(KEYS, forged)


def test_service_and_operator_tokens_verify_with_the_service_key() -> None:
    assert verify_token(KEYS, issue_token(SERVICE_KEY, service=True, now=NOW), now=NOW) == SERVICE
    assert verify_token(KEYS, issue_token(SERVICE_KEY, operator=True, now=NOW), now=NOW) == OPERATOR


def test_a_workspace_token_signed_with_the_service_key_is_refused() -> None:
    unauthorized(KEYS, issue_token(SERVICE_KEY, workspace_id="w", now=NOW))


def test_without_a_service_key_fleet_tokens_are_refused_and_workspace_tokens_still_verify() -> None:
    keys = SigningKeys(SECRET)
    unauthorized(keys, issue_token(SERVICE_KEY, service=True, now=NOW))
    assert verify_token(keys, issue_token(SECRET, workspace_id="w", now=NOW), now=NOW).workspace_id == "w"


@pytest.mark.parametrize("role", ["admin", "workspace-admin", 7])
def test_an_unknown_role_is_refused(role: object) -> None:
    unauthorized(KEYS, jwt.encode({"role": role, "workspace_id": "w", "exp": int(NOW) + 60}, SECRET, "HS256"))


def test_key_problems_name_short_missing_and_shared_keys() -> None:
    names = {"workspace_name": "W", "service_name": "S"}
    assert SigningKeys("x" * 32, "y" * 32).problems(**names) == []
    assert SigningKeys("x" * 31, "y" * 32).problems(**names) == ["W must be at least 32 bytes (it is 31)"]
    assert SigningKeys("x" * 32).problems(**names) == ["S is not set"]
    assert SigningKeys("x" * 32, "x" * 32).problems(**names) == ["S must differ from W"]
    assert SigningKeys("é" * 16, "y" * 32).problems(**names) == []  # bytes, not characters


# ---- one set of time checks, with or without an explicit clock --------------------------------------------------


@pytest.mark.parametrize("now", [NOW, None])
def test_a_token_not_valid_yet_is_refused(now: float | None) -> None:
    start = (NOW if now is not None else time.time()) + 3600
    token = jwt.encode({"workspace_id": "w", "nbf": int(start), "exp": int(start) + 60}, SECRET, "HS256")
    assert "not valid yet" in unauthorized(KEYS, token, now=now).message


@pytest.mark.parametrize("now", [NOW, None])
def test_a_token_issued_in_the_future_is_refused(now: float | None) -> None:
    issued = (NOW if now is not None else time.time()) + 3600
    token = jwt.encode({"workspace_id": "w", "iat": int(issued), "exp": int(issued) + 60}, SECRET, "HS256")
    assert "future" in unauthorized(KEYS, token, now=now).message


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("now", [NOW, None])
def test_a_time_claim_that_is_not_a_number_is_refused(claim: str, now: float | None) -> None:
    base = NOW if now is not None else time.time()
    claims: dict[str, object] = {"workspace_id": "w", "exp": int(base) + 60, claim: str(int(base) + 60)}
    assert "numbers" in unauthorized(KEYS, jwt.encode(claims, SECRET, "HS256"), now=now).message


def test_nbf_and_iat_tolerate_the_leeway() -> None:
    token = jwt.encode(
        {"workspace_id": "w", "nbf": int(NOW) + LEEWAY_S, "iat": int(NOW) + LEEWAY_S, "exp": int(NOW) + 600},
        SECRET,
        "HS256",
    )
    assert verify_token(KEYS, token, now=NOW).workspace_id == "w"
