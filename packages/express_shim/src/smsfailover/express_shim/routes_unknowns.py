"""Unknown outcomes of a workspace (issue 15): what is still unknown and what was checked, and an operator's decision.

GET  /v1/workspaces/{ws}/unknowns                     the workspace's token, or an operator's
POST /v1/workspaces/{ws}/unknowns/{id}/mark-failed    an operator's token only: failed, so the caller may send
                                                      again under a new key (logged, kept with who did it)
"""

from __future__ import annotations

from smsfailover.core.auth import require_operator
from smsfailover.core.errors import ApiError
from smsfailover.core.message import validate_workspace_id
from smsfailover.express_shim.access import caller
from smsfailover.express_shim.services import OriginServices
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


def _workspace_or_operator(request: Request, services: OriginServices) -> str:
    principal = caller(request, services.config.signing_keys, services.clock)
    workspace_id = validate_workspace_id(request.path_params["ws"], field="ws")
    if principal.is_operator or principal.workspace_id == workspace_id:
        return workspace_id
    raise ApiError(403, "forbidden", "This token is for another workspace.", field="ws")


async def list_unknowns(request: Request) -> Response:
    services = _services(request)
    workspace_id = _workspace_or_operator(request, services)
    data = await services.unknowns.listing(workspace_id)
    return JSONResponse({"workspace_id": workspace_id, "data": data})


async def mark_failed(request: Request) -> Response:
    services = _services(request)
    principal = caller(request, services.config.signing_keys, services.clock)
    require_operator(principal)
    workspace_id = validate_workspace_id(request.path_params["ws"], field="ws")
    message_id = request.path_params["id"]
    if not message_id.startswith("msg_") or len(message_id) > 64:
        raise ApiError(404, "not_found", "No such message.")
    body = await services.unknowns.mark_failed(workspace_id, message_id, operator="operator token")
    return JSONResponse(body)
