"""Operational routes: /metrics, /openapi.json, and Twilio's status callback."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST
from smsfailover.core.errors import ApiError
from smsfailover.core.log import log_event
from smsfailover.express_shim.access import service_caller
from smsfailover.express_shim.delivery_status import contract_status, statuses_that_may_advance_to
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
        service_caller(request, services.config.jwt_secret)
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
    advanced = await advance_status(services, sid, status, fields.get("ErrorCode"))
    services.metrics.callbacks.labels("advanced" if advanced else "ignored").inc()
    return Response(status_code=204)


async def advance_status(services: OriginServices, sid: str, status: str, error_code: str | None) -> bool:
    """Move the message with this provider sid forward to status; never backward, never out of a final state."""
    message = await services.messages.get_by_provider_id(sid)
    if message is None:
        log_event("twilio_callback_unknown_sid", level=logging.WARNING)
        return False
    allowed = statuses_that_may_advance_to(status)
    if not allowed:
        return False
    placeholders = ", ".join("?" for _ in allowed)
    assignments = "status = ?, updated_at = ?, seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages)"
    params: list[object] = [status, services.now_ms()]
    if error_code and status in ("failed", "undelivered"):
        assignments += ", error = ?"
        params.append(f'{{"code": "provider_error", "provider_code": "{_digits(error_code)}"}}')
    changed = await services.db.execute(
        f"UPDATE messages SET {assignments} WHERE id = ? AND status IN ({placeholders})",  # noqa: S608
        [*params, str(message["id"]), *allowed],
    )
    if changed:
        log_event("delivery_status_advanced", workspace_id=str(message["workspace_id"]), status=status)
    return changed > 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())[:16]
