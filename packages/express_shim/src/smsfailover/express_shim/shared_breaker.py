"""The origin's view of the fleet's shared circuit breaker (SMSFAILOVER_BREAKER_REDIS_URL), for status and the
Reset and Isolate actions.

The breaker belongs to the client processes; the origin only reads and steers the shared state, keyed by its
own URL (SMSFAILOVER_ORIGIN_URL, the key the clients use). One SharedBreakerView per app (OriginServices.breaker)
holds one Redis client, so one connection pool for the process: made at the first call that needs it (the variable
is read then), closed with the app. Every status call and settings-page poll reads the breaker, so a connection
per call would cost a TCP (and AUTH) handshake each time and churn Redis's connections per open page. Without
the variable the status says `breaker: null`, as the contract asks, and the buttons are not shown.

A Redis that cannot be reached is reported (`reachable: false`, 503 for an action), never a 500; each call tries
again, within the store's 0.25 s timeouts (the status route and the page's poll are rate limited).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from smsfailover.core.breaker import BreakerPolicy
from smsfailover.core.clock import SystemClock
from smsfailover.core.errors import ApiError
from smsfailover.core.redis_breaker import RedisBreakerStore, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

ISOLATE_S = 3600.0  # Isolate means "until someone resets it"; an hour bounds a forgotten click
REDIS_URL_ENV = "SMSFAILOVER_BREAKER_REDIS_URL"
_UNREACHABLE = {"state": "unknown", "consecutive_failures": None, "remaining_open_s": None, "reachable": False}


def redis_url() -> str | None:
    return os.environ.get(REDIS_URL_ENV, "").strip() or None


class SharedBreakerView:
    """The origin's one Redis client for the shared breaker: made on first use, closed by aclose (app shutdown)."""

    def __init__(self, origin_url: str, *, url: Callable[[], str | None] = redis_url) -> None:
        self._origin_url = origin_url
        self._url = url
        self._client: Redis | None = None
        self._client_url: str | None = None
        self.clients_made = 0  # observability and tests: one per process, unless the setting changes

    @property
    def connected(self) -> bool:
        """Whether the process's Redis client exists (made at first use, until aclose)."""
        return self._client is not None

    async def _store(self) -> RedisBreakerStore | None:
        """A store over the process's client; None when no shared store is configured. The store is made per call
        (cheap: no connection of its own) so its process-local fallback never outlives the call: the origin sends
        nothing through this breaker, and a stale fallback must not re-open the fleet's when Redis comes back."""
        url = self._url()
        if url != self._client_url:  # first use, or the setting changed under a running process: follow it
            await self.aclose()
        if url is None:
            return None
        if self._client is None:
            self._client = redis_client(url)
            self._client_url = url
            self.clients_made += 1
        clock = SystemClock()
        policy = BreakerPolicy()
        return RedisBreakerStore(
            self._client, self._origin_url, policy=policy, fallback=policy.build(clock), clock=clock
        )

    async def status(self) -> dict[str, object] | None:
        """`{"state","consecutive_failures","remaining_open_s"}` of the shared breaker; None when none is
        configured."""
        store = await self._store()
        if store is None:
            return None
        snapshot = await store.snapshot()
        if not snapshot.pop("shared", False):
            return dict(_UNREACHABLE)
        return {**snapshot, "reachable": True}

    async def steer(self, action: str) -> None:
        """`reset` closes the fleet's breaker; `isolate` forces it open (every client skips the origin)."""
        store = await self._store()
        if store is None:
            message = f"No shared breaker: set {REDIS_URL_ENV} on the origin and clients."
            raise ApiError(409, "breaker_not_shared", message)
        if action not in {"reset", "isolate"}:
            raise ApiError(422, "invalid_action", "The action must be reset or isolate.", field="action")
        if action == "reset":
            await store.reset()
        else:
            await store.force_open(ISOLATE_S)
        if store.degraded:
            raise ApiError(503, "breaker_store_unavailable", "The shared breaker store (Redis) cannot be reached.")

    async def aclose(self) -> None:
        client, self._client, self._client_url = self._client, None, None
        if client is not None:
            await client.aclose()
