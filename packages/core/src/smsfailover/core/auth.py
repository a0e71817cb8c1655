"""Bearer tokens: HS256 JWTs that both endpoints verify with SMSFAILOVER_JWT_SECRET (CONTRACT §3).

A workspace token carries `workspace_id` and `exp`; a service token carries `role: "service"` and no workspace,
and may call only the service routes (ledger, settings mirror, sync).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Literal

import jwt
from smsfailover.core.errors import ApiError
from smsfailover.core.message import validate_workspace_id

ALGORITHM = "HS256"
DEFAULT_TTL_S = 3600
LEEWAY_S = 30  # tolerated clock skew between a token's issuer and its verifier


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: str | None
    role: Literal["workspace", "service"]

    @property
    def is_service(self) -> bool:
        return self.role == "service"


def issue_token(
    secret: str,
    *,
    workspace_id: str | None = None,
    service: bool = False,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    if not secret:
        raise ValueError("a JWT secret is required to issue tokens")
    if service == (workspace_id is not None):
        raise ValueError("a token is either for one workspace or a service token, not both or neither")
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"iat": int(issued), "exp": int(issued + ttl_s)}
    if service:
        claims["role"] = "service"
    else:
        claims["workspace_id"] = validate_workspace_id(workspace_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def verify_token(secret: str, token: str, now: float | None = None) -> Principal:
    try:
        if now is None:
            claims: dict[str, object] = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]}, leeway=LEEWAY_S
            )
        else:
            claims = _decode_at(secret, token, now)
    except jwt.ExpiredSignatureError:
        raise _unauthorized("The token has expired; get a new one.") from None
    except jwt.PyJWTError:
        raise _unauthorized("The token is not valid for this service.") from None
    return _principal(claims)


def _decode_at(secret: str, token: str, now: float) -> dict[str, object]:
    """Decode with an explicit "now" (the endpoints, with their injected clock); expiry is checked on every call."""
    claims = _signed_claims(secret, token)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > float(exp) + LEEWAY_S:
        raise jwt.ExpiredSignatureError("expired")
    return dict(claims)


@functools.lru_cache(maxsize=4096)
def _signed_claims(secret: str, token: str) -> dict[str, object]:
    """The claims of a token whose signature checks out, expiry aside. Cached per secret and token: a client sends
    with one token until it expires, and PyJWT's checks were the largest cost of a send's own work in benchmark 3's
    profile. A token that fails raises, and failures are not cached. Callers copy the dict before it leaves here."""
    claims: dict[str, object] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        options={"require": ["exp"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def _principal(claims: dict[str, object]) -> Principal:
    if claims.get("role") == "service":
        return Principal(None, "service")
    workspace_id = claims.get("workspace_id")
    if not isinstance(workspace_id, str):
        raise _unauthorized("The token names no workspace.")
    try:
        validate_workspace_id(workspace_id)
    except ApiError:
        raise _unauthorized("The token's workspace id is malformed.") from None
    return Principal(workspace_id, "workspace")


def verify_bearer(secret: str, authorization: str | None, now: float | None = None) -> Principal:
    """The `Authorization: Bearer <token>` header -> who is calling; 401 for anything else."""
    if not authorization:
        raise _unauthorized("Send `Authorization: Bearer <token>`.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send `Authorization: Bearer <token>`.")
    if not secret:
        raise ApiError(503, "not_configured", "This endpoint has no JWT secret configured.")
    return verify_token(secret, token.strip(), now)


def require_workspace(principal: Principal, workspace_id: str) -> None:
    """Workspace routes: only that workspace's own token (a service token is refused)."""
    if principal.is_service:
        raise ApiError(403, "forbidden", "A service token cannot act for a workspace; use a workspace token.")
    if principal.workspace_id != workspace_id:
        raise ApiError(403, "forbidden", "This token is for another workspace.", field="workspace_id")


def require_service(principal: Principal) -> None:
    if not principal.is_service:
        raise ApiError(403, "forbidden", "This route is for service tokens only.")
