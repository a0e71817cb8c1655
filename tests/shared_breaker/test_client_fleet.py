"""Two FailoverClients (two processes' worth: separate breaker registries) configured with the same Redis: when
one trips the breaker the other skips the origin at once; a reset from either closes it for both."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from smsfailover.core.client import FailoverClient
from smsfailover.core.config import ClientConfig
from smsfailover.core.redis_breaker import DEFAULT_PREFIX
from smsfailover.core.router import BreakerRegistry

from tests.unit.core.fakes import FakeClock, FakeEndpoints, StaticSettings, refused, sent

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_a_fleet_of_clients_trips_and_resets_together() -> None:
    origin_url = f"http://origin.{uuid.uuid4().hex[:12]}.test"  # the fakes route on the first label
    config = ClientConfig(origin_url=origin_url, edge_url="http://edge.test", token="tok", breaker_redis_url=REDIS_URL)
    endpoints = FakeEndpoints(FakeClock())
    endpoints.origin = [refused]
    endpoints.edge = [sent("edge")]
    clients = [
        FailoverClient(config, transport=endpoints.transport(), breakers=BreakerRegistry(), settings=StaticSettings())
        for _ in range(2)
    ]
    first, second = clients
    try:
        for n in range(3):
            await first.send_message(to="+16266635938", content="hi", workspace_id="w1", idempotency_key=f"k{n}")
        endpoints.calls.clear()
        result = await second.send_message(to="+16266635938", content="hi", workspace_id="w1", idempotency_key="k9")
        assert [a[0] for a in result.attempts] == ["edge"]  # the second process never tried the origin
        assert endpoints.hosts() == ["edge"]
        assert second.router.breaker.consecutive_failures == 0  # it learned that from Redis, not by itself
        assert (await second.router.breaker_store.snapshot())["state"] == "open"
        await second.reset_shared_circuit_breaker()
        assert (await first.router.breaker_store.snapshot())["state"] == "closed"
    finally:
        for client in clients:
            await client.aclose()
        redis = Redis.from_url(REDIS_URL)
        await redis.delete(DEFAULT_PREFIX + origin_url, DEFAULT_PREFIX + origin_url + ":probe")
        await redis.aclose()
