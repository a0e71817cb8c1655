"""Who may call an origin route: 401 without a valid token, 422 for a malformed workspace id, 403 otherwise."""

from __future__ import annotations

from smsfailover.core.auth import Principal, require_service, require_workspace, verify_bearer
from smsfailover.core.message import validate_workspace_id
from starlette.requests import Request


def caller(request: Request, secret: str) -> Principal:
    return verify_bearer(secret, request.headers.get("authorization"))


def workspace_caller(request: Request, secret: str, workspace_id: str) -> str:
    """The path's workspace id, once the caller is known to hold that workspace's own token."""
    principal = caller(request, secret)
    validate_workspace_id(workspace_id, field="ws")
    require_workspace(principal, workspace_id)
    return workspace_id


def service_caller(request: Request, secret: str) -> None:
    require_service(caller(request, secret))
