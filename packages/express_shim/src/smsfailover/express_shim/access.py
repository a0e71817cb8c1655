"""Who may call an origin route: 401 without a valid token, 422 for a malformed workspace id, 403 otherwise.

Every route verifies through core's verify_bearer with the origin's clock: the same checks as the message routes
and the edge (CONTRACT §3)."""

from __future__ import annotations

from smsfailover.core.auth import (
    Principal,
    SigningKeys,
    require_operator,
    require_workspace,
    verify_bearer,
)
from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.message import validate_workspace_id
from starlette.requests import Request


def caller(request: Request, keys: SigningKeys, clock: Clock) -> Principal:
    return verify_bearer(keys, request.headers.get("authorization"), clock.time())


def workspace_caller(request: Request, keys: SigningKeys, clock: Clock, workspace_id: str) -> str:
    """The path's workspace id, once the caller is known to hold that workspace's own token."""
    principal = caller(request, keys, clock)
    validate_workspace_id(workspace_id, field="ws")
    require_workspace(principal, workspace_id)
    return workspace_id


def fleet_caller(request: Request, keys: SigningKeys, clock: Clock) -> None:
    """A service or operator token (the service key signed it): /metrics."""
    if not caller(request, keys, clock).is_fleet:
        raise ApiError(403, "forbidden", "This route is for service and operator tokens only.")


def operator_caller(request: Request, keys: SigningKeys, clock: Clock) -> None:
    require_operator(caller(request, keys, clock))
