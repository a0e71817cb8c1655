"""Fakes for router and client tests: httpx2.MockTransport handlers per host, a fake clock and sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from smsfailover.core.transport import HttpxTransport

ORIGIN = "http://origin.test"
EDGE = "http://edge.test"

Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


class FakeSleep:
    """Records every wait and advances the fake clock instead of sleeping. Time passes only once the other
    runnable tasks have had their turns, as on a virtual-time loop: a fake answer that takes no fake time
    comes before any timer."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
        self.clock.now += seconds


_SETTLE_TURNS = 50  # loop turns for in-memory requests (MockTransport) to finish before fake time moves


class StaticSettings:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.asked: list[tuple[str, str]] = []

    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool:
        self.asked.append((workspace_id, token))
        return self.enabled


def message(endpoint: str, key: str = "k1", **extra: Any) -> dict[str, Any]:
    return {
        "id": "msg_01JTESTTESTTESTTESTTESTTEST",
        "workspace_id": "w1",
        "to": "+16266635938",
        "status": "queued",
        "endpoint": endpoint,
        "idempotency_key": key,
        "provider_message_id": "SM123",
        "segments": 1,
        "encoding": "GSM-7",
        "requires_refresh": endpoint == "edge",
        "ledger": "edge",
        "created_at": "2026-11-23T20:00:00Z",
        **extra,
    }


def sent(endpoint: str, status: int = 201, **headers: str) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        key = request.headers.get("idempotency-key", "k1")
        return httpx2.Response(status, json=message(endpoint, key), headers=headers)

    return handler


def error(status: int, code: str, field_name: str | None = None, **headers: str) -> Handler:
    body: dict[str, Any] = {"code": code, "message": f"{code} happened"}
    if field_name:
        body["field"] = field_name
    return lambda _: httpx2.Response(status, json={"error": body}, headers=headers)


def setting(enabled: bool) -> Handler:
    """A settings GET's answer (the origin's setting, or the edge's mirror of it)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith("/settings"), f"unexpected {request.method} {request.url}"
        return httpx2.Response(200, json={"workspace_id": "w1", "sms_failover_enabled": enabled})

    return handler


def in_progress(retry_after: str = "1") -> Handler:
    return error(409, "idempotency_in_progress", **{"Retry-After": retry_after})


def refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused", request=request)


@dataclass
class Call:
    host: str
    method: str
    path: str
    key: str | None
    timeout_s: float | None
    body: dict[str, Any] | None


@dataclass
class FakeEndpoints:
    """Each host answers from a queue of handlers (the last one repeats); every request is recorded. A host in
    `settings` answers its settings GETs from that handler instead, whenever they come (the router reads the
    setting beside its first attempt, so their order is not fixed)."""

    clock: FakeClock
    origin: list[Handler] = field(default_factory=list)
    edge: list[Handler] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    settings: dict[str, Handler] = field(default_factory=dict)

    def timeout(self) -> Handler:
        """No answer: the fake clock moves on by the request's read timeout, then the client times out."""

        def handler(request: httpx2.Request) -> httpx2.Response:
            self.clock.now += float(request.extensions["timeout"]["read"])
            raise httpx2.ReadTimeout("timed out", request=request)

        return handler

    def black_hole(self) -> Handler:
        """No answer ever: the request waits until it is cancelled; if nobody cancels it within many loop turns
        (longer than any FakeSleep), the fake clock moves on by its read timeout and the client times out."""

        async def handler(request: httpx2.Request) -> httpx2.Response:
            for _ in range(_SETTLE_TURNS * 20):
                await asyncio.sleep(0)
            self.clock.now += float(request.extensions["timeout"]["read"])
            raise httpx2.ReadTimeout("timed out", request=request)

        return handler

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host.split(".")[0]
        timeout = request.extensions.get("timeout", {}).get("read")
        body = json.loads(request.content) if request.content else None
        key = request.headers.get("idempotency-key") or request.url.params.get("idempotency_key")
        self.calls.append(Call(host, request.method, request.url.path, key, timeout, body))
        queue = self.origin if host == "origin" else self.edge
        if request.method == "GET" and request.url.path.endswith("/settings") and host in self.settings:
            queue = [self.settings[host]]
        assert queue, f"unexpected call to {host}"
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        result = handler(request)
        if not isinstance(result, httpx2.Response):
            result = await result
        return result

    def transport(self) -> HttpxTransport:
        return HttpxTransport(transport=httpx2.MockTransport(self))

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    def hosts(self) -> list[str]:
        return [c.host for c in self.calls]
