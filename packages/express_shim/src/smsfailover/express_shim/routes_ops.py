"""Operational routes: /metrics, /openapi.json, Twilio's status callback, and the operator's breaker action."""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST
from smsfailover.core.errors import ApiError
from smsfailover.express_shim.access import fleet_caller, operator_caller
from smsfailover.express_shim.delivery_status import contract_status
from smsfailover.express_shim.openapi import build_openapi
from smsfailover.express_shim.services import VERSION, OriginServices
from smsfailover.express_shim.twilio_signature import signature_is_valid
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_OPENAPI = build_openapi(VERSION)


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


async def metrics(request: Request) -> Response:
    services = _services(request)
    if not services.config.metrics_public:
        fleet_caller(request, services.config.signing_keys, services.clock)
    services.metrics.ledger_degraded.set(1 if services.degraded else 0)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(_OPENAPI)


def _signed_urls(request: Request, services: OriginServices) -> list[str]:
    """The URL Twilio signed: the callback URL we gave it (public, behind any proxy), else what we received."""
    query = f"?{request.url.query}" if request.url.query else ""
    configured = services.config.twilio_status_callback
    public = configured.split("?")[0] + query if configured.split("?")[0].endswith(request.url.path) else None
    return [url for url in (public, str(request.url)) if url]


async def twilio_status_callback(request: Request) -> Response:
    services = _services(request)
    form = await request.form()
    params = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    signature = request.headers.get("x-twilio-signature", "")
    token = services.config.twilio_auth_token
    if not any(signature_is_valid(token, url, params, signature) for url in _signed_urls(request, services)):
        services.metrics.callbacks.labels("bad_signature").inc()
        raise ApiError(403, "invalid_signature", "X-Twilio-Signature does not match this request.")
    fields = dict(params)
    sid, twilio_status = fields.get("MessageSid", ""), fields.get("MessageStatus", "")
    status = contract_status(twilio_status)
    if not sid or status is None:
        services.metrics.callbacks.labels("malformed").inc()
        raise ApiError(400, "invalid_callback", "MessageSid and a known MessageStatus are required.")
    message_id = request.query_params.get("message_id")  # the message's own callback URL (signed with it)
    if message_id and await services.unknowns.resolve_by_callback(message_id, sid, status):
        services.metrics.callbacks.labels("resolved_unknown").inc()
    advanced = await services.delivery.apply(sid, status, fields.get("ErrorCode"), services.now_ms())
    services.metrics.callbacks.labels("advanced" if advanced else "not_advanced").inc()
    return Response(status_code=204)


async def breaker_action(request: Request) -> Response:
    """POST /v1/breaker {"action": "reset"|"isolate"}: the fleet's shared breaker, for an operator token only
    (it moves every workspace's traffic). Answers the breaker's state after the action."""
    services = _services(request)
    operator_caller(request, services.config.signing_keys, services.clock)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", 'The body must be JSON: {"action": "reset" or "isolate"}.') from None
    action = body.get("action") if isinstance(body, dict) else None
    await services.breaker.steer(action if isinstance(action, str) else "")
    return JSONResponse({"action": action, "breaker": await services.breaker.status()})
