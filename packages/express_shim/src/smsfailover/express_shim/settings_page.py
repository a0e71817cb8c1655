"""Settings > Advanced > SMS Failover: the operator's page, served by the origin (routes mounted via extra_routes).

    GET  /settings/advanced/sms-failover?workspace=WS          the page, or the sign-in form
    POST /settings/advanced/sms-failover/session               sign in (form: workspace, token, csrf_token)
    POST /settings/advanced/sms-failover/sign-out              sign out (form: csrf_token)
    POST /settings/advanced/sms-failover/toggle                the switch without JavaScript (form: enabled, ...)
    GET  /settings/advanced/sms-failover/live?workspace=WS     JSON the page's script polls: status (its probes no
                                                               older than a second), chart and failover events
    PUT  /settings/advanced/sms-failover/settings?workspace=WS JSON {"sms_failover_enabled": bool}, X-CSRF-Token;
                                                               "force": true (a disable at once) for an operator only
    POST /settings/advanced/sms-failover/breaker?workspace=WS  the shared breaker's Reset / Isolate (form: action);
                                                               an operator's session only: it acts on every tenant
    POST /settings/advanced/sms-failover/unknowns/mark-failed?workspace=WS
                                                               an unknown outcome marked failed (form: message_id);
                                                               an operator's session only (unknown_outcomes.py)
    GET  /settings/general?workspace=WS                        the frame's other page
Writes go through the same services as PATCH /v1/workspaces/{ws}/settings (settings + outbox to the edge mirror).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import jinja2
from smsfailover.core.errors import ApiError
from smsfailover.core.message import validate_workspace_id
from smsfailover.express_shim import page_auth, read_limits
from smsfailover.express_shim.failover_events import EVENTS_SHOWN
from smsfailover.express_shim.failover_status import workspace_status
from smsfailover.express_shim.latency_chart import latency_chart
from smsfailover.express_shim.page_sessions import PageSession
from smsfailover.express_shim.routes_workspace import parse_settings_patch, require_operator_to_force, settings_body
from smsfailover.express_shim.services import OriginServices
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

PAGE_PATH = "/settings/advanced/sms-failover"
GENERAL_PATH = "/settings/general"
STATIC_PATH = "/settings/static"
_HERE = Path(__file__).parent
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)

# Strict: no inline script or style, nothing framed, forms post only here.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send `Origin: null` on our own posts
    "Cache-Control": "no-store",
}


# The live poll shows probes at most this old (probes.py): an endpoint that stops answering is shown down by the
# first poll (every 2.5 s, static/page.js) that begins after it stopped. A poll waits at most LIVE_PROBE_WAIT_S.
LIVE_PROBE_MAX_AGE_S = 1.0
LIVE_PROBE_WAIT_S = 1.0

# The router's failover reasons (core/failover_reason.py) as the page says them; None: the sender gave none.
REASON_LABELS = {
    "timeout": "Origin timed out",
    "connection_refused": "Could not connect to the origin",
    "connection_lost": "Connection to the origin lost",
    "server_error_5xx": "Origin answered 5xx",
    "gateway_error": "Gateway error (502/504)",
    "ledger_unavailable": "Origin could not reach the ledger",
    "provider_unavailable": "Origin's provider failed",
    "storage_unavailable": "Origin could not store the message",
    "storage_busy": "Origin's storage was busy",
    "breaker_open": "Breaker open: origin skipped",
    "hedge": "Hedge: origin slower than usual",
    "other": "Other",
}
_OUTCOME_CLASS = {"queued": "ok", "sent": "ok", "delivered": "ok", "failed": "bad", "undelivered": "bad"}
UNKNOWNS_SHOWN = 20
# What unknown_outcomes.py says of an unknown so far (its `resolution`).
RESOLUTION_LABELS = {
    "in_flight": "In flight: its lease has not run out",
    "pending": "Waiting for the next check",
    "not_found": "Not found at the provider",
    "ambiguous": "Ambiguous at the provider",
    "lookup_failed": "The provider lookup failed",
}


def _events_context(status: dict[str, object]) -> dict[str, object]:
    """What templates/_failover_events.html needs, from a status body."""
    return {
        "events": status["failover_events"],
        "events_shown": EVENTS_SHOWN,
        "reason_labels": REASON_LABELS,
        "not_given": "Not given",
        "outcome_class": _OUTCOME_CLASS,
    }


async def _unknowns_context(services: OriginServices, ws: str, operator: bool) -> dict[str, object]:
    """What templates/_unknowns.html needs: the workspace's unknown outcomes, newest first (one bounded read)."""
    return {
        "unknowns": await services.unknowns.listing(ws, limit=UNKNOWNS_SHOWN),
        "unknowns_shown": UNKNOWNS_SHOWN,
        "resolution_labels": RESOLUTION_LABELS,
        "operator": operator,
    }


def _services(request: Request) -> OriginServices:
    services: OriginServices = request.app.state.services
    return services


def page_url(workspace_id: str) -> str:
    return f"{PAGE_PATH}?{urlencode({'workspace': workspace_id})}"


def _render(request: Request, template: str, http_status: int = 200, **context: object) -> HTMLResponse:
    csrf = page_auth.csrf_token(request)
    html = _templates.get_template(template).render(
        csrf_token=csrf, page_path=PAGE_PATH, general_path=GENERAL_PATH, static_path=STATIC_PATH, **context
    )
    response = HTMLResponse(html, status_code=http_status, headers=_SECURITY_HEADERS)
    page_auth.remember_csrf(response, request, _services(request), csrf)
    return response


def _error_page(request: Request, status: int, title: str, message: str, workspace: str | None = None) -> Response:
    return _render(request, "error.html", status, title=title, message=message, workspace=workspace, active="")


def _requested_workspace(request: Request) -> str | None:
    """The ?workspace= of the request, validated (ApiError 422 when malformed), or None when absent."""
    raw = request.query_params.get("workspace")
    if raw is None or raw == "":
        return None
    return validate_workspace_id(raw, field="workspace")


_NO_SESSION = PageSession("workspace", None)


async def _guarded(request: Request, active: str) -> tuple[str, PageSession, Response | None]:
    """(workspace, session, None) when the browser may see this workspace; otherwise the page to answer with."""
    try:
        wanted = _requested_workspace(request)
    except ApiError as exc:
        return "", _NO_SESSION, _error_page(request, 422, "Not a workspace id", exc.message)
    session = await page_auth.current_session(request, _services(request))
    if session is None:
        sign_in_page = _render(request, "sign_in.html", 200, workspace=wanted or "", error=None, active=active)
        return "", _NO_SESSION, sign_in_page
    if wanted is None and session.workspace_id is not None:
        return (
            "",
            session,
            RedirectResponse(f"{request.url.path}?{urlencode({'workspace': session.workspace_id})}", 303),
        )
    if wanted is None:
        message = "You are signed in as an operator: open a workspace's page with ?workspace=WS."
        return "", session, _error_page(request, 422, "Which workspace?", message)
    if not session.may_open(wanted):
        message = "You are signed in to another workspace. Sign out, then sign in with this workspace's token."
        return "", session, _error_page(request, 403, "Not your workspace", message, workspace=session.workspace_id)
    return wanted, session, None


async def page(request: Request) -> Response:
    ws, session, refused = await _guarded(request, "sms-failover")
    if refused is not None:
        return refused
    services = _services(request)
    status = await workspace_status(services, ws)
    chart = await latency_chart(services.db, ws, services.now_ms())
    return _render(
        request,
        "sms_failover.html",
        200,
        workspace=ws,
        status=status,
        chart=chart,
        active="sms-failover",
        **_events_context(status),
        **await _unknowns_context(services, ws, session.is_operator),
    )


async def general(request: Request) -> Response:
    ws, _, refused = await _guarded(request, "general")
    if refused is not None:
        return refused
    return _render(request, "general.html", workspace=ws, active="general")


async def sign_in(request: Request) -> Response:
    form = await request.form()
    workspace = str(form.get("workspace", "")).strip()
    token = str(form.get("token", ""))
    services = _services(request)
    try:
        page_auth.check_write(request, services, str(form.get(page_auth.CSRF_FIELD, "")))
    except ApiError as exc:
        return _error_page(request, 403, "Request refused", exc.message)
    try:
        validate_workspace_id(workspace, field="workspace")
        if not token.strip():
            raise ApiError(401, "unauthorized", "Paste this workspace's token.", field="token")
        session_id, _ = await page_auth.sign_in(services, token, workspace)
    except ApiError as exc:
        return _render(request, "sign_in.html", exc.status, workspace=workspace, error=exc.message, active="")
    response = RedirectResponse(page_url(workspace), 303)
    page_auth.set_session(response, request, services, session_id)
    return response


async def sign_out(request: Request) -> Response:
    form = await request.form()
    services = _services(request)
    try:
        page_auth.check_write(request, services, str(form.get(page_auth.CSRF_FIELD, "")))
    except ApiError as exc:
        return _error_page(request, 403, "Request refused", exc.message)
    await page_auth.sign_out(request, services)
    response = RedirectResponse(PAGE_PATH, 303)
    page_auth.clear_session(response, request, services)
    return response


async def _guarded_form(request: Request) -> tuple[FormData, str, PageSession, Response | None]:
    """A page form post: CSRF checked, then the same workspace guard as the page itself."""
    form = await request.form()
    try:
        page_auth.check_write(request, _services(request), str(form.get(page_auth.CSRF_FIELD, "")))
    except ApiError as exc:
        return form, "", _NO_SESSION, _error_page(request, 403, "Request refused", exc.message)
    ws, session, refused = await _guarded(request, "sms-failover")
    return form, ws, session, refused


async def toggle_form(request: Request) -> Response:
    """The switch as a plain form post (no JavaScript): set, then back to the page."""
    form, ws, _, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    await _services(request).set_failover(ws, form.get("enabled") == "true")
    return RedirectResponse(page_url(ws), 303)


async def breaker_form(request: Request) -> Response:
    """Reset or Isolate the fleet's shared breaker (form: action=reset|isolate), then back to the page."""
    form, ws, session, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    if not session.is_operator:
        message = "Reset and Isolate act on every workspace's traffic: sign in with an operator token to use them."
        return _error_page(request, 403, "Operators only", message, workspace=ws)
    try:
        await _services(request).breaker.steer(str(form.get("action", "")))
    except ApiError as exc:
        return _error_page(request, exc.status, "Breaker not changed", exc.message, workspace=ws)
    return RedirectResponse(page_url(ws), 303)


async def mark_unknown_failed(request: Request) -> Response:
    """An operator's decision for an unknown outcome (form: message_id): failed, so its caller may send again under
    a new key (unknown_outcomes.py logs it and keeps who did it); then back to the page."""
    form, ws, session, refused = await _guarded_form(request)
    if refused is not None:
        return refused
    if not session.is_operator:
        message = "Marking an unknown outcome failed lets its caller send it again: sign in with an operator token."
        return _error_page(request, 403, "Operators only", message, workspace=ws)
    message_id = str(form.get("message_id", ""))
    if not message_id.startswith("msg_") or len(message_id) > 64:
        return _error_page(request, 404, "No such message", "That is not a message id.", workspace=ws)
    try:
        await _services(request).unknowns.mark_failed(ws, message_id, operator="operator (settings page)")
    except ApiError as exc:
        return _error_page(request, exc.status, "Not marked failed", exc.message, workspace=ws)
    return RedirectResponse(page_url(ws), 303)


async def _api_session(request: Request) -> tuple[str, PageSession]:
    """The signed-in workspace and its session for the JSON routes, in the contract's error envelope otherwise."""
    try:
        wanted = _requested_workspace(request)
    except ApiError as exc:
        raise ApiError(422, exc.code, exc.message, field="workspace") from None
    session = await page_auth.current_session(request, _services(request))
    if session is None:
        raise ApiError(401, "unauthorized", "Your session has ended; reload the page and sign in again.")
    workspace = wanted or session.workspace_id
    if workspace is None:
        raise ApiError(422, "invalid_workspace_id", "Name the workspace: ?workspace=WS.", field="workspace")
    if not session.may_open(workspace):
        raise ApiError(403, "forbidden", "You are signed in to another workspace.", field="workspace")
    return workspace, session


async def live(request: Request) -> Response:
    ws, session = await _api_session(request)
    services = _services(request)
    services.read_limiter.check(read_limits.LIVE, ws)
    await services.probes.refresh(max_age_s=LIVE_PROBE_MAX_AGE_S, wait_s=LIVE_PROBE_WAIT_S)
    status = await workspace_status(services, ws)
    chart = await latency_chart(services.db, ws, services.now_ms())
    chart_html = _templates.get_template("_chart.html").render(chart=chart)
    events_html = _templates.get_template("_failover_events.html").render(**_events_context(status))
    unknowns_html = _templates.get_template("_unknowns.html").render(
        csrf_token=page_auth.csrf_token(request),
        page_path=PAGE_PATH,
        workspace=ws,
        **await _unknowns_context(services, ws, session.is_operator),
    )
    body = {
        "status": status,
        "chart_html": chart_html,
        "events_html": events_html,
        "unknowns_html": unknowns_html,
        "server_time_ms": services.now_ms(),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def put_settings(request: Request) -> Response:
    page_auth.check_write(request, _services(request), request.headers.get(page_auth.CSRF_HEADER))
    ws, session = await _api_session(request)
    enabled, force = parse_settings_patch(await request.body())
    require_operator_to_force(force, operator=session.is_operator)
    settings = await _services(request).set_failover(ws, enabled, force=force)
    return JSONResponse(settings_body(settings), headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    return [
        Route(PAGE_PATH, page, methods=["GET"], name="settings_page"),
        Route(f"{PAGE_PATH}/session", sign_in, methods=["POST"], name="settings_sign_in"),
        Route(f"{PAGE_PATH}/sign-out", sign_out, methods=["POST"], name="settings_sign_out"),
        Route(f"{PAGE_PATH}/toggle", toggle_form, methods=["POST"], name="settings_toggle"),
        Route(f"{PAGE_PATH}/live", live, methods=["GET"], name="settings_live"),
        Route(f"{PAGE_PATH}/breaker", breaker_form, methods=["POST"], name="settings_breaker"),
        Route(f"{PAGE_PATH}/unknowns/mark-failed", mark_unknown_failed, methods=["POST"], name="settings_mark_failed"),
        Route(f"{PAGE_PATH}/settings", put_settings, methods=["PUT"], name="settings_put"),
        Route(GENERAL_PATH, general, methods=["GET"], name="settings_general"),
        Mount(STATIC_PATH, app=StaticFiles(directory=_HERE / "static"), name="settings_static"),
    ]
