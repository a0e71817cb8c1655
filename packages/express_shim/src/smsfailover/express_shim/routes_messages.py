"""The routes both endpoints serve, answered by core's MessageApi (endpoint "origin"); Starlette is only the host."""

from __future__ import annotations

from collections.abc import Mapping

from smsfailover.core.ids import parse_rfc3339
from smsfailover.core.messages_api import ApiRequest, MessageApi
from smsfailover.express_shim.ledger.local_steps import LocalSendSteps
from smsfailover.express_shim.ledger.origin_ledger import OriginLedger
from smsfailover.express_shim.services import VERSION, OriginServices
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_OK_STATUSES = frozenset({"queued", "sent", "delivered"})


def build_message_api(services: OriginServices) -> MessageApi:
    async def health(detailed: bool) -> dict[str, object]:
        """`problems` (they name configuration) only for a service or operator token."""
        degraded = services.degraded
        body: dict[str, object] = {
            "status": "degraded" if degraded else "ok",
            "endpoint": "origin",
            "version": VERSION,
            "ledger": "local" if degraded else "edge",
        }
        problems = services.problems()
        if detailed and problems:
            body["problems"] = problems
        return body

    async def on_recorded(message: Mapping[str, object]) -> None:
        """Each send's outcome enters the send log (the status window); provider refusals are not failures."""
        error = message.get("error")
        if isinstance(error, dict) and error.get("code") == "provider_rejected":
            services.metrics.sends.labels("provider_rejected").inc()
            return
        status = str(message.get("status"))
        latency = message.get("latency_ms")
        services.metrics.sends.labels(status).inc()
        await services.send_log.record(
            workspace_id=str(message["workspace_id"]),
            endpoint="origin",
            ok=status in _OK_STATUSES,
            status=status,
            latency_ms=float(latency) if isinstance(latency, int | float) else 0.0,
            at_ms=int(parse_rfc3339(str(message["created_at"])) * 1000),
            message_id=str(message["id"]),
        )
        sid = message.get("provider_message_id")
        if isinstance(sid, str) and sid:
            await services.delivery.apply_parked(sid, services.now_ms())  # callbacks faster than our write

    # A failover-off send claims and records in one transaction, and settles in one (ledger/local_steps.py).
    steps = LocalSendSteps(
        services.db, OriginLedger(services.ledgers.parts, edge_may_accept=False), on_moved=services.flags.invalidate
    )
    return MessageApi(
        endpoint="origin",
        ledger_for=services.ledgers.ledger_for,
        messages=services.messages,
        provider=services.provider,
        keys=services.config.signing_keys,
        clock=services.clock,
        limiter=services.limiter,
        version=VERSION,
        status_callback_url=services.config.twilio_status_callback,
        health=health,
        on_recorded=on_recorded,
        begin=steps.begin,
        settle=steps.settle,
    )


async def to_api_request(request: Request) -> ApiRequest:
    body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
    return ApiRequest(
        method="GET" if request.method == "HEAD" else request.method,  # the server drops a HEAD answer's body
        path=request.url.path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )


async def shared_route(request: Request) -> Response:
    services: OriginServices = request.app.state.services
    api: MessageApi = request.app.state.message_api
    answer = await api.handle(await to_api_request(request))
    if answer is None:
        return JSONResponse({"error": {"code": "not_found", "message": "There is no such route."}}, 404)
    if answer.status == 429:
        services.metrics.rate_limited.inc()
    return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))
