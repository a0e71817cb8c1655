"""The glue entry.py calls: one EdgeApp per isolate, built from the Worker's bindings on first use.

workerd makes a new `Default` instance per event but keeps module state for the isolate's life, so the app
(its rate limiter included) lives here. A var the edge cannot use answers 503 `not_configured` on every route
instead of failing the isolate; the log says which var (the answer does not: it goes to anyone).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from smsfailover.core.auth import not_configured
from smsfailover.core.clock import SystemClock
from smsfailover.core.log import log_event
from smsfailover.core.messages_api import ApiRequest, ApiResponse
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


async def handle_fetch(request: Any, env: Any, ctx: Any = None) -> Any:
    try:
        app = app_for(env)
    except EdgeConfigError as exc:
        log_event("edge.not_configured", level=logging.ERROR, problems=str(exc))
        error = not_configured()
        return to_worker_response(ApiResponse(503, error.envelope(), {}))
    return to_worker_response(await serve(app, await to_api_request(request), ctx))


async def serve(app: EdgeApp, request: ApiRequest, ctx: Any) -> ApiResponse:
    """The app's answer, from a task the request's cancellation does not reach and the runtime waits for.

    Cloudflare cancels a request's outstanding work when its client disconnects, unless it was passed to
    `ctx.waitUntil`. A send cut there, between its call-began mark and its settle, would leave a claim that reads
    "may have sent" without the provider's sid, though the provider answered. So the whole request runs as one
    task: shielded from Python-side cancellation, and registered with waitUntil, which keeps the request's I/O (the
    provider call, the settle's D1 batch) alive until the task ends (Cloudflare allows 30 s more; the provider
    timeout is well under that). Every route goes this way: each one's work is best finished once begun."""
    task = asyncio.ensure_future(app.handle(request))
    _keep_alive(ctx, task)
    return await asyncio.shield(task)


def _keep_alive(ctx: Any, task: asyncio.Future[ApiResponse]) -> None:
    wait_until = getattr(ctx, "waitUntil", None)
    if wait_until is None:
        return

    async def finished() -> None:  # ends with the task, with nothing to convert to JavaScript (no proxy to leak)
        await asyncio.wait([task])

    kept = asyncio.ensure_future(finished())
    try:
        from pyodide.ffi import create_proxy
    except ImportError:  # CPython (tests): no JavaScript boundary to cross
        wait_until(kept)
        return
    # As the workers SDK hands its own tasks to waitUntil: a proxy (a thenable in JavaScript), destroyed once done.
    # workerd (and the local host) make it a promise when waitUntil is called.
    proxy = create_proxy(kept)
    kept.add_done_callback(lambda _: proxy.destroy())
    wait_until(proxy)


async def handle_scheduled(controller: Any, env: Any) -> None:
    await app_for(env).scheduled()
