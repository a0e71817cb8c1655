"""The glue entry.py calls: one EdgeApp per isolate, built from the Worker's bindings on first use.

workerd makes a new `Default` instance per event but keeps module state for the isolate's life, so the app
(its rate limiter included) lives here. A var the edge cannot use answers 503 `not_configured` on every route
instead of failing the isolate; the log says which var (the answer does not: it goes to anyone).
"""

from __future__ import annotations

import logging
from typing import Any

from smsfailover.core.auth import not_configured
from smsfailover.core.clock import SystemClock
from smsfailover.core.log import log_event
from smsfailover.core.messages_api import ApiResponse
from smsfailover.edge_worker.app import EdgeApp
from smsfailover.edge_worker.bridge import to_api_request, to_worker_response
from smsfailover.edge_worker.config import EdgeConfig, EdgeConfigError
from smsfailover.edge_worker.d1 import D1Executor
from smsfailover.edge_worker.js_fetch import JsFetchPoster

_app: EdgeApp | None = None


def _binding(env: Any, name: str) -> Any:
    try:
        return getattr(env, name)
    except AttributeError:
        return None


def app_for(env: Any) -> EdgeApp:
    global _app
    if _app is None:
        config = EdgeConfig.from_env(lambda name: _binding(env, name))
        raw_env = getattr(env, "_env", env)  # the SDK's env wrapper keeps the JS env here (d1.py says why)
        databases = []
        for name in config.d1_shards:
            db = _binding(raw_env, name)
            if db is None:
                raise EdgeConfigError(f"the D1 binding {name} is missing (wrangler.toml [[d1_databases]])")
            databases.append(D1Executor(db))
        _app = EdgeApp(
            config=config,
            db=databases,
            poster=JsFetchPoster(),
            clock=SystemClock(),
            shard_names=config.d1_shards,
        )
    return _app


async def handle_fetch(request: Any, env: Any) -> Any:
    try:
        app = app_for(env)
    except EdgeConfigError as exc:
        log_event("edge.not_configured", level=logging.ERROR, problems=str(exc))
        error = not_configured()
        return to_worker_response(ApiResponse(503, error.envelope(), {}))
    return to_worker_response(await app.handle(await to_api_request(request)))


async def handle_scheduled(controller: Any, env: Any) -> None:
    await app_for(env).scheduled()
