"""The workspace routes only the origin serves: settings, failover status, and the message list."""

from __future__ import annotations

import json

from smsfailover.core.auth import require_workspace
from smsfailover.core.errors import ApiError
from smsfailover.core.ids import rfc3339
from smsfailover.core.message import validate_workspace_id
from smsfailover.core.numbers import whole_number
from smsfailover.core.sql import is_valid_cursor
from smsfailover.express_shim import read_limits
from smsfailover.express_shim.access import caller, workspace_caller
from smsfailover.express_shim.failover_status import workspace_status
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.workspace_settings import WorkspaceSettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 50


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


def _workspace(request: Request, services: OriginServices) -> str:
    return workspace_caller(request, services.config.signing_keys, services.clock, request.path_params["ws"])


def settings_body(settings: WorkspaceSettings) -> dict[str, object]:
    updated = settings.updated_at_ms
    return {
        "workspace_id": settings.workspace_id,
        "sms_failover_enabled": settings.sms_failover_enabled,
        "updated_at": rfc3339(updated / 1000) if updated is not None else None,
        # where the two-phase switch has got to: off | enabling | on | disabling (docs/decisions.md)
        "failover_state": settings.failover_state,
    }


async def get_settings(request: Request) -> Response:
    services = _services(request)
    ws = _workspace(request, services)
    return JSONResponse(settings_body(await services.settings.get(ws)))


def _invalid_settings(message: str, field: str = "sms_failover_enabled") -> ApiError:
    return ApiError(422, "invalid_settings", message, field=field)


def parse_settings_patch(body: bytes) -> tuple[bool, bool]:
    """`{"sms_failover_enabled": true|false}`, and `"force": true` to end a disable at once while the edge cannot
    acknowledge it (the residual risk is the operator's call); anything else is refused. (enabled, force)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _invalid_settings('Send a JSON object such as {"sms_failover_enabled": true}.')
    unknown = sorted(set(data) - {"sms_failover_enabled", "force"})
    if unknown:
        raise _invalid_settings(f"Unknown setting {unknown[0]!r}; only sms_failover_enabled exists.", unknown[0])
    value = data.get("sms_failover_enabled")
    if not isinstance(value, bool):
        raise _invalid_settings("sms_failover_enabled must be true or false.")
    force = data.get("force", False)
    if not isinstance(force, bool) or (force and value):
        raise _invalid_settings("force is true or false, and only forces a disable.", "force")
    return value, force


def require_operator_to_force(force: bool, *, operator: bool) -> None:
    """A forced disable drops the workspace to the origin's ledger while the edge may still hold sends the origin has
    not synced (a residual double-send risk): the operator's call, never a workspace's (DESIGN.md rule 5)."""
    if force and not operator:
        raise ApiError(
            403,
            "forbidden",
            "Forcing a disable skips the edge's acknowledgement and risks a double send: it needs an operator. "
            "Disable without force, and the switch turns off once the edge has acknowledged.",
            field="force",
        )


async def patch_settings(request: Request) -> Response:
    """The workspace's own token, or an operator token (who alone may `force`; any workspace, as on the page)."""
    services = _services(request)
    principal = caller(request, services.config.signing_keys, services.clock)
    ws = request.path_params["ws"]
    validate_workspace_id(ws, field="ws")
    if not principal.is_operator:
        require_workspace(principal, ws)
    enabled, force = parse_settings_patch(await request.body())
    require_operator_to_force(force, operator=principal.is_operator)
    settings = await services.set_failover(ws, enabled, force=force)
    return JSONResponse(settings_body(settings))


async def failover_status(request: Request) -> Response:
    services = _services(request)
    ws = _workspace(request, services)
    services.read_limiter.check(read_limits.STATUS, ws)
    return JSONResponse(await workspace_status(services, ws))


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIST_LIMIT
    limit = whole_number(raw, minimum=1, maximum=MAX_LIST_LIMIT)
    if limit is None:
        raise ApiError(422, "invalid_limit", f"limit is a whole number from 1 to {MAX_LIST_LIMIT}.", field="limit")
    return limit


async def list_messages(request: Request) -> Response:
    services = _services(request)
    ws = _workspace(request, services)
    limit = _limit(request.query_params.get("limit"))
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not is_valid_cursor(cursor):
        raise ApiError(422, "invalid_cursor", "cursor must be a next_cursor this route returned.", field="cursor")
    page, next_cursor = await services.messages.list(ws, limit=limit, cursor=cursor)
    data = [{k: v for k, v in message.items() if k != "seq"} for message in page]
    return JSONResponse({"data": data, "next_cursor": next_cursor})
