"""`smsfailover reset-breaker` with SMSFAILOVER_BREAKER_REDIS_URL closes the fleet's breaker in the real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from smsfailover.core.breaker import BreakerPolicy
from smsfailover.core.cli import main
from smsfailover.core.clock import SystemClock
from smsfailover.core.redis_breaker import DEFAULT_PREFIX, RedisBreakerStore

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _with_store(origin_url: str, action: str) -> dict[str, object]:
    clock = SystemClock()
    store = RedisBreakerStore.from_url(
        REDIS_URL, origin_url, policy=BreakerPolicy(), fallback=BreakerPolicy().build(clock), clock=clock
    )
    try:
        if action == "isolate":
            await store.force_open(600.0)
        elif action == "forget":
            await store._redis.delete(DEFAULT_PREFIX + origin_url, DEFAULT_PREFIX + origin_url + ":probe")
        return await store.snapshot()
    finally:
        await store.aclose()


def test_reset_breaker_closes_the_shared_breaker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    origin_url = f"http://origin-{uuid.uuid4().hex[:12]}.test"
    monkeypatch.setenv("SMSFAILOVER_ORIGIN_URL", origin_url)
    monkeypatch.setenv("SMSFAILOVER_BREAKER_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("SMSFAILOVER_JWT_SECRET", "x" * 32)
    try:
        assert asyncio.run(_with_store(origin_url, "isolate"))["state"] == "open"
        assert main(["reset-breaker", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer == {"reset": True, "origin_url": origin_url, "shared": True}
        assert asyncio.run(_with_store(origin_url, "read"))["state"] == "closed"
        assert main(["reset-breaker"]) == 0
        assert "for every process" in capsys.readouterr().out
    finally:
        asyncio.run(_with_store(origin_url, "forget"))
