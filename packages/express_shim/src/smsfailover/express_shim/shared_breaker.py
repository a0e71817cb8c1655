"""The origin's view of the fleet's shared circuit breaker (SMSFAILOVER_BREAKER_REDIS_URL), for status and the
settings page's Reset and Isolate buttons.

The breaker belongs to the client processes; the origin only reads and steers the shared state, keyed by its
own URL (SMSFAILOVER_ORIGIN_URL, the key the clients use). Each call opens a short-lived Redis connection: the
status route and two buttons are rare, and nothing then outlives an app or an event loop. Without the variable
the status says `breaker: null`, as the contract asks, and the buttons are not shown.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from smsfailover.core.breaker import BreakerPolicy
from smsfailover.core.clock import SystemClock
from smsfailover.core.errors import ApiError
from smsfailover.core.redis_breaker import RedisBreakerStore

ISOLATE_S = 3600.0  # Isolate means "until someone resets it"; an hour bounds a forgotten click
REDIS_URL_ENV = "SMSFAILOVER_BREAKER_REDIS_URL"
_UNREACHABLE = {"state": "unknown", "consecutive_failures": None, "remaining_open_s": None, "reachable": False}


def redis_url() -> str | None:
    return os.environ.get(REDIS_URL_ENV, "").strip() or None


@asynccontextmanager
async def _store(url: str, origin_url: str) -> AsyncIterator[RedisBreakerStore]:
    clock = SystemClock()
    policy = BreakerPolicy()
    store = RedisBreakerStore.from_url(url, origin_url, policy=policy, fallback=policy.build(clock), clock=clock)
    try:
        yield store
    finally:
        await store.aclose()


async def breaker_status(origin_url: str) -> dict[str, object] | None:
    """`{"state","consecutive_failures","remaining_open_s"}` of the shared breaker; None when none is configured."""
    url = redis_url()
    if url is None:
        return None
    async with _store(url, origin_url) as store:
        snapshot = await store.snapshot()
    if not snapshot.pop("shared", False):
        return dict(_UNREACHABLE)
    return {**snapshot, "reachable": True}


async def steer_breaker(origin_url: str, action: str) -> None:
    """`reset` closes the fleet's breaker; `isolate` forces it open (every client skips the origin)."""
    url = redis_url()
    if url is None:
        raise ApiError(409, "breaker_not_shared", f"No shared breaker: set {REDIS_URL_ENV} on the origin and clients.")
    if action not in {"reset", "isolate"}:
        raise ApiError(422, "invalid_action", "The action must be reset or isolate.", field="action")
    async with _store(url, origin_url) as store:
        if action == "reset":
            await store.reset()
        else:
            await store.force_open(ISOLATE_S)
        if store.degraded:
            raise ApiError(503, "breaker_store_unavailable", "The shared breaker store (Redis) cannot be reached.")
