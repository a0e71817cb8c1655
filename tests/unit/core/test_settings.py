from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx2
import pytest
from smsfailover.core.settings import CachedSettings, settings_path
from smsfailover.core.transport import HttpxTransport, TransportReply

ORIGIN = "http://origin.test"
EDGE = "http://edge.test"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


Handler = Callable[[httpx2.Request], httpx2.Response]


def _settings(enabled: object, status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, json={"workspace_id": "w1", "sms_failover_enabled": enabled})


def _down(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("refused", request=request)


def _always(response: httpx2.Response) -> Handler:
    return lambda _: response


class Endpoints:
    """Routes requests to per-host handlers and counts calls."""

    def __init__(self, origin: Handler, edge: Handler) -> None:
        self.origin = origin
        self.edge = edge
        self.calls: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host.split(".")[0]
        self.calls.append(host)
        assert request.url.path == "/v1/workspaces/w1/settings"
        assert request.headers["authorization"] == "Bearer tok"
        return self.origin(request) if host == "origin" else self.edge(request)


def _cache(endpoints: Endpoints, clock: FakeClock, ttl_s: float = 30) -> CachedSettings:
    transport = HttpxTransport(transport=httpx2.MockTransport(endpoints))
    return CachedSettings(transport, origin_url=ORIGIN + "/", edge_url=EDGE, clock=clock, ttl_s=ttl_s)


async def test_reads_the_origin_and_caches_for_the_ttl() -> None:
    clock = FakeClock()
    endpoints = Endpoints(lambda _: _settings(True), _down)
    cache = _cache(endpoints, clock)
    assert await cache.failover_enabled("w1", token="tok") is True
    clock.now += 29
    assert await cache.failover_enabled("w1", token="tok") is True
    assert endpoints.calls == ["origin"]
    assert cache.source_of("w1") == "origin"
    clock.now += 1
    endpoints.origin = lambda _: _settings(False)
    assert await cache.failover_enabled("w1", token="tok") is False
    assert endpoints.calls == ["origin", "origin"]


async def test_falls_back_to_the_edge_mirror_when_the_origin_is_down() -> None:
    endpoints = Endpoints(_down, lambda _: _settings(True))
    cache = _cache(endpoints, FakeClock())
    assert await cache.failover_enabled("w1", token="tok") is True
    assert endpoints.calls == ["origin", "edge"]
    assert cache.source_of("w1") == "edge"


async def test_a_5xx_or_malformed_origin_answer_also_uses_the_edge() -> None:
    for bad in (_settings(True, status=503), _settings("yes"), httpx2.Response(200, text="<html>")):
        endpoints = Endpoints(_always(bad), lambda _: _settings(True))
        assert await _cache(endpoints, FakeClock()).failover_enabled("w1", token="tok") is True


async def test_keeps_the_last_known_value_when_both_fail(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    endpoints = Endpoints(lambda _: _settings(True), _down)
    cache = _cache(endpoints, clock, ttl_s=10)
    assert await cache.failover_enabled("w1", token="tok") is True
    endpoints.origin = _down
    clock.now += 10
    caplog.set_level(logging.WARNING, logger="smsfailover")
    assert await cache.failover_enabled("w1", token="tok") is True
    assert cache.source_of("w1") == "origin"
    assert "settings.default_disabled" not in caplog.text
    calls = len(endpoints.calls)
    clock.now += 5  # the failure is remembered for a TTL: no new fetch
    assert await cache.failover_enabled("w1", token="tok") is True
    assert len(endpoints.calls) == calls


async def test_default_is_disabled_and_logged_when_nothing_was_ever_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="smsfailover")
    cache = _cache(Endpoints(_down, _down), FakeClock())
    assert await cache.failover_enabled("w1", token="tok") is False
    assert cache.source_of("w1") == "default"
    assert "settings.default_disabled" in caplog.text
    assert "tok" not in caplog.text


async def test_concurrent_lookups_share_one_fetch() -> None:
    gate = asyncio.Event()
    calls: list[str] = []

    class SlowTransport:
        async def get_json(self, url: str, *, token: str | None, timeout_s: float) -> object:
            calls.append(url)
            await gate.wait()
            return TransportReply(200, {"sms_failover_enabled": True})

    cache = CachedSettings(SlowTransport(), origin_url=ORIGIN, edge_url=EDGE, clock=FakeClock())  # type: ignore[arg-type]
    tasks = [asyncio.create_task(cache.failover_enabled("w1", token="tok")) for _ in range(5)]
    for _ in range(10):
        await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [True] * 5
    assert len(calls) == 1


async def test_a_cancelled_origin_read_sends_its_waiters_on_to_the_edge_mirror() -> None:
    gate = asyncio.Event()

    class HangingOrigin:
        async def get_json(self, url: str, *, token: str | None, timeout_s: float) -> TransportReply:
            if url.startswith(ORIGIN):
                await gate.wait()
                raise AssertionError("never answers")
            return TransportReply(200, {"sms_failover_enabled": True}, {})

    cache = CachedSettings(HangingOrigin(), origin_url=ORIGIN, edge_url=EDGE, clock=FakeClock())  # type: ignore[arg-type]
    first = asyncio.create_task(cache.failover_enabled("w1", token="tok"))
    for _ in range(5):
        await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.failover_enabled("w1", token="tok"))
    for _ in range(5):
        await asyncio.sleep(0)
    first.cancel()
    assert await waiter is True  # not cancelled itself: it asks the next source
    assert cache.source_of("w1") == "edge"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_remember_and_invalidate() -> None:
    clock = FakeClock()
    endpoints = Endpoints(lambda _: _settings(False), _down)
    cache = _cache(endpoints, clock)
    cache.remember("w1", True)
    assert await cache.failover_enabled("w1", token="tok") is True
    cache.invalidate("w1")
    assert cache.source_of("w1") is None
    assert await cache.failover_enabled("w1", token="tok") is False
    cache.invalidate()
    assert cache.source_of("w1") is None


def test_settings_path_quotes_the_workspace() -> None:
    assert settings_path("a/b") == "/v1/workspaces/a%2Fb/settings"
