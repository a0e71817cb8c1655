"""Bearer tokens: HS256 JWTs that both endpoints verify the same way (CONTRACT §3, docs/decisions.md "Keys and roles").

Two keys sign them. SMSFAILOVER_JWT_SECRET signs workspace tokens (`workspace_id`, `exp`). SMSFAILOVER_SERVICE_KEY
signs the fleet's own tokens: `role: "service"` (the origin calling the edge: ledger, settings mirror, sync) and
`role: "operator"` (a person acting on the whole fleet: the shared breaker, health details, unknown outcomes). A
token's role picks the key that must have signed it, so whoever holds the workspace key (an SDK process, a tool
that mints workspace tokens) can never make a service or operator token.

Every route on both endpoints calls verify_token: the signature, then `exp` (a number, required), `nbf` and `iat`
(numbers when present), each against the caller's clock with LEEWAY_S of skew.
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
MIN_KEY_BYTES = 32  # HS256's key should be at least as long as its hash (RFC 7518 §3.2)

Role = Literal["workspace", "service", "operator"]
_FLEET_ROLES = frozenset({"service", "operator"})  # signed with the service key


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The two HS256 keys: `workspace` for workspace tokens, `service` for service and operator tokens.

    An empty key verifies nothing: a token of that kind is then refused."""

    workspace: str
    service: str = ""

    def for_role(self, role: Role) -> str:
        return self.service if role in _FLEET_ROLES else self.workspace

    def problems(self, *, workspace_name: str, service_name: str) -> list[str]:
        """What keeps these keys from being used outside development, naming the variables to fix."""
        found = []
        for name, key in ((workspace_name, self.workspace), (service_name, self.service)):
            if not key:
                found.append(f"{name} is not set")
            elif len(key.encode()) < MIN_KEY_BYTES:
                found.append(f"{name} must be at least {MIN_KEY_BYTES} bytes (it is {len(key.encode())})")
        if self.workspace and self.workspace == self.service:
            found.append(f"{service_name} must differ from {workspace_name}")
        return found


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: str | None
    role: Role

    @property
    def is_service(self) -> bool:
        return self.role == "service"

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def is_fleet(self) -> bool:
        """A service or operator token: one the service key signed."""
        return self.role in _FLEET_ROLES


def issue_token(
    key: str,
    *,
    workspace_id: str | None = None,
    service: bool = False,
    operator: bool = False,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A token for one workspace (sign with the workspace key), or a service or operator token (the service key)."""
    if not key:
        raise ValueError("a signing key is required to issue tokens")
    if [workspace_id is not None, service, operator].count(True) != 1:
        raise ValueError("a token is for one workspace, or a service token, or an operator token")
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"iat": int(issued), "exp": int(issued + ttl_s)}
    if service or operator:
        claims["role"] = "service" if service else "operator"
    else:
        claims["workspace_id"] = validate_workspace_id(workspace_id)
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def verify_token(keys: SigningKeys, token: str, now: float | None = None) -> Principal:
    """Who holds this token, at `now` (the caller's clock; the system clock when None); 401 for anything else."""
    try:
        claims = _signed_claims(keys, token)
    except jwt.PyJWTError:
        raise _unauthorized("The token is not valid for this service.") from None
    _check_times(claims, time.time() if now is None else now)
    return _principal(claims)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_times(claims: dict[str, object], now: float) -> None:
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not _is_number(exp) or any(value is not None and not _is_number(value) for value in (nbf, iat)):
        raise _unauthorized("The token's times (exp, nbf, iat) must be numbers.")
    if now > float(exp) + LEEWAY_S:  # type: ignore[arg-type]
        raise _unauthorized("The token has expired; get a new one.")
    if nbf is not None and now < float(nbf) - LEEWAY_S:  # type: ignore[arg-type]
        raise _unauthorized("The token is not valid yet (nbf is in the future).")
    if iat is not None and float(iat) > now + LEEWAY_S:  # type: ignore[arg-type]
        raise _unauthorized("The token was issued in the future (iat); check the issuer's clock.")


@functools.lru_cache(maxsize=4096)
def _signed_claims(keys: SigningKeys, token: str) -> dict[str, object]:
    """The claims of a token whose signature checks out with the key its role calls for, times aside. Cached per
    keys and token: a client sends with one token until it expires, and PyJWT's checks were the largest cost of a
    send's own work in benchmark 3's profile. A token that fails raises, and failures are not cached. The times
    are checked on every use, by the caller; callers never change the dict."""
    unverified = jwt.decode(token, options={"verify_signature": False})
    role = unverified.get("role", "workspace")
    if role not in ("workspace", *_FLEET_ROLES):
        raise jwt.InvalidTokenError("unknown role")
    key = keys.for_role(role)
    if not key:
        raise jwt.InvalidKeyError("no key for this role")
    claims: dict[str, object] = jwt.decode(
        token,
        key,
        algorithms=[ALGORITHM],
        options={"require": ["exp"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def _principal(claims: dict[str, object]) -> Principal:
    role = claims.get("role")
    if role == "service" or role == "operator":
        return Principal(None, role)
    workspace_id = claims.get("workspace_id")
    if not isinstance(workspace_id, str):
        raise _unauthorized("The token names no workspace.")
    try:
        validate_workspace_id(workspace_id)
    except ApiError:
        raise _unauthorized("The token's workspace id is malformed.") from None
    return Principal(workspace_id, "workspace")


def verify_bearer(keys: SigningKeys, authorization: str | None, now: float | None = None) -> Principal:
    """The `Authorization: Bearer <token>` header -> who is calling; 401 for anything else."""
    if not authorization:
        raise _unauthorized("Send `Authorization: Bearer <token>`.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send `Authorization: Bearer <token>`.")
    if not keys.workspace and not keys.service:
        raise not_configured()
    return verify_token(keys, token.strip(), now)


def fleet_caller(keys: SigningKeys, authorization: str | None, now: float | None = None) -> bool:
    """Whether a request carries a valid service or operator token; any other header (or none) is simply not."""
    if not authorization:
        return False
    try:
        return verify_bearer(keys, authorization, now).is_fleet
    except ApiError:
        return False


def not_configured(detail: str | None = None) -> ApiError:
    """An endpoint that cannot serve. What is missing names configuration, so it is said only to a service or
    operator token (`detail`, when the caller holds one); everyone else is told where to look."""
    if detail:
        return ApiError(503, "not_configured", f"This endpoint is not configured to serve: {detail}.")
    message = "This endpoint is not configured to serve; its log and its health check (for an operator) say why."
    return ApiError(503, "not_configured", message)


def require_workspace(principal: Principal, workspace_id: str) -> None:
    """Workspace routes: only that workspace's own token (a service or operator token is refused)."""
    if principal.is_fleet:
        raise ApiError(403, "forbidden", "This route acts for one workspace; use that workspace's token.")
    if principal.workspace_id != workspace_id:
        raise ApiError(403, "forbidden", "This token is for another workspace.", field="workspace_id")


def require_service(principal: Principal) -> None:
    if not principal.is_service:
        raise ApiError(403, "forbidden", "This route is for service tokens only.")


def require_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise ApiError(403, "forbidden", "This is a fleet-wide action: it needs an operator token.")
