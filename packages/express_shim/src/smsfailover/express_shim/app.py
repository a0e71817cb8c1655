"""The origin: a Starlette app over the services (storage, ledgers, provider, edge client) and its background tasks.

create_app(config, extra_routes=[...])   the settings page mounts its routes through extra_routes and reaches
                                         the services as request.app.state.services
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.provider import HttpPoster
from smsfailover.express_shim import routes_messages, routes_ops, routes_unknowns, routes_workspace
from smsfailover.express_shim.background import BackgroundTasks
from smsfailover.express_shim.body_limit import BodyLimitMiddleware
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.edge_client import EdgeClient
from smsfailover.express_shim.http_errors import (
    api_error_handler,
    http_exception_handler,
    unexpected_error_handler,
)
from smsfailover.express_shim.services import build_services
from smsfailover.express_shim.storage.admission import WriteAdmissionMiddleware
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.storage.open import open_database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Endpoint = Callable[[Request], Awaitable[Response]]


def _instrumented(name: str, endpoint: Endpoint) -> Endpoint:
    """Count and time each request by route name (names, not paths: no workspace id reaches a label)."""

    async def wrapped(request: Request) -> Response:
        metrics = request.app.state.services.metrics
        started = time.perf_counter()
        status = 500
        try:
            response = await endpoint(request)
            status = response.status_code
            return response
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            metrics.requests.labels(name, str(status)).inc()
            metrics.request_seconds.labels(name).observe(time.perf_counter() - started)

    return wrapped


def origin_routes() -> list[BaseRoute]:
    def route(path: str, name: str, endpoint: Endpoint, methods: list[str]) -> Route:
        return Route(path, _instrumented(name, endpoint), methods=methods, name=name)

    shared = routes_messages.shared_route
    return [
        route("/v1/messages", "messages", shared, ["GET", "POST"]),
        route("/v1/messages/{id}", "message", shared, ["GET"]),
        route("/v1/health", "health", shared, ["GET"]),
        route("/v1/workspaces/{ws}/settings", "get_settings", routes_workspace.get_settings, ["GET"]),
        route("/v1/workspaces/{ws}/settings", "patch_settings", routes_workspace.patch_settings, ["PATCH"]),
        route("/v1/workspaces/{ws}/sms-failover/status", "status", routes_workspace.failover_status, ["GET"]),
        route("/v1/workspaces/{ws}/messages", "list_messages", routes_workspace.list_messages, ["GET"]),
        route("/v1/provider/twilio/status", "twilio_status", routes_ops.twilio_status_callback, ["POST"]),
        route("/v1/breaker", "breaker", routes_ops.breaker_action, ["POST"]),
        route("/v1/workspaces/{ws}/unknowns", "unknowns", routes_unknowns.list_unknowns, ["GET"]),
        route(
            "/v1/workspaces/{ws}/unknowns/{id}/mark-failed",
            "unknown_mark_failed",
            routes_unknowns.mark_failed,
            ["POST"],
        ),
        route("/metrics", "metrics", routes_ops.metrics, ["GET"]),
        route("/openapi.json", "openapi", routes_ops.openapi, ["GET"]),
    ]


def create_app(
    config: OriginConfig,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    open_db: Callable[[], Awaitable[Database]] | None = None,
    clock: Clock | None = None,
    poster: HttpPoster | None = None,
    edge: EdgeClient | None = None,
) -> Starlette:
    """The origin app. The keyword hooks after extra_routes let tests inject a database, clock, provider, edge."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await (
            open_db()
            if open_db
            else open_database(config.database_url, max_pending_writes=config.sqlite_max_pending_writes)
        )
        try:
            await migrate(db)
            services = build_services(config, db, clock=clock, poster=poster, edge=edge)
            app.state.services = services
            app.state.message_api = routes_messages.build_message_api(services)
            await services.edge_ledger_queue.push_crash_window(config.lease_s, services.now_ms())
            tasks = BackgroundTasks(on_error=lambda name: services.metrics.task_errors.labels(name).inc())
            if config.background:
                tasks.start(services.periodic_tasks())
            try:
                yield
            finally:
                await tasks.stop()
                await services.aclose()
        finally:
            await db.close()

    return Starlette(
        routes=[*origin_routes(), *extra_routes],
        middleware=[Middleware(BodyLimitMiddleware), Middleware(WriteAdmissionMiddleware)],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """For ASGI servers: `uvicorn --factory smsfailover.express_shim.app:app_from_env`."""
    from smsfailover.express_shim import settings_page

    return create_app(OriginConfig.from_env(), extra_routes=settings_page.routes())
