"""Runs inside Pyodide (npm `pyodide`, under Node): import smsfailover.core and exercise breaker, ledger, router.

`run()` returns one JSON line for tests/pyodide/test_core_in_pyodide.py to check. No network: the router
talks to an in-Python fake transport.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

started = time.perf_counter()
import smsfailover.core  # noqa: E402
from smsfailover.core.breaker import BreakerState, CircuitBreaker  # noqa: E402
from smsfailover.core.client import SendResult  # noqa: E402
from smsfailover.core.clock import ManualClock  # noqa: E402
from smsfailover.core.ledger import Claimed, IdempotencyLedger, InMemoryLedgerStore, InProgress, Replay  # noqa: E402
from smsfailover.core.router import BreakerRegistry, FailoverRouter, RouterConfig  # noqa: E402
from smsfailover.core.transport import TransportReply, TransportTimeout  # noqa: E402

import_ms = (time.perf_counter() - started) * 1000


class FakeTransport:
    """The origin times out, the edge sends: the failover path, entirely in Python."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str]] = []

    async def post_message(
        self, base_url: str, body: Any, *, token: str, idempotency_key: str, timeout_s: float, headers: Any = None
    ) -> TransportReply:
        self.calls.append((base_url, idempotency_key))
        if "origin" in base_url:
            self.clock.advance(timeout_s)
            raise TransportTimeout(base_url, "no answer")
        message = {
            "id": "msg_1",
            "status": "queued",
            "endpoint": "edge",
            "requires_refresh": True,
            "idempotency_key": idempotency_key,
            "segments": 1,
            "encoding": "GSM-7",
            "ledger": "edge",
        }
        return TransportReply(201, message, {})

    async def get_message_by_key(self, *args: Any, **kwargs: Any) -> TransportReply:
        raise AssertionError("not used")

    async def get_json(self, *args: Any, **kwargs: Any) -> TransportReply:
        raise AssertionError("not used")

    async def patch_json(self, *args: Any, **kwargs: Any) -> TransportReply:
        raise AssertionError("not used")

    async def post_json(self, *args: Any, **kwargs: Any) -> TransportReply:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        return None


class Enabled:
    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool:
        return True


async def main() -> dict[str, Any]:
    clock = ManualClock()

    breaker = CircuitBreaker(clock, failure_threshold=3, open_s=30)
    for _ in range(3):
        breaker.record_failure(breaker.try_acquire())
    opened = breaker.state is BreakerState.OPEN and not breaker.try_acquire().allowed
    clock.advance(30)
    probe = breaker.try_acquire()
    second = breaker.try_acquire()
    breaker.record_success(probe)
    breaker_ok = opened and probe.allowed and not second.allowed and breaker.state is BreakerState.CLOSED

    ledger = IdempotencyLedger(InMemoryLedgerStore(), clock, lease_s=30)
    first = await ledger.claim("w1", "k1", "fp", "edge")
    busy = await ledger.claim("w1", "k1", "fp", "origin")
    assert isinstance(first, Claimed)
    await ledger.complete(first.record, {"id": "msg_1"})
    replay = await ledger.claim("w1", "k1", "fp", "origin")
    ledger_ok = isinstance(busy, InProgress) and isinstance(replay, Replay)

    transport = FakeTransport(clock)
    router = FailoverRouter(
        transport, Enabled(), RouterConfig("http://origin.test", "http://edge.test"),
        clock=clock, breakers=BreakerRegistry(),
    )  # fmt: skip
    route = await router.send({"to": "+16266635938", "content": "hi", "workspace_id": "w1"},
                              token="t", idempotency_key="key-1")  # fmt: skip
    result = SendResult.from_route(route)
    router_ok = (
        result.endpoint == "edge"
        and result.requires_refresh
        and [a.endpoint for a in result.attempts] == ["origin", "edge"]
        and {key for _, key in transport.calls} == {"key-1"}
    )
    return {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "import_ms": round(import_ms, 1),
        "breaker_ok": breaker_ok,
        "ledger_ok": ledger_ok,
        "router_ok": router_ok,
        "httpx2_imported": "httpx2" in sys.modules,
        "public_names": sorted(smsfailover.core.__all__)[:3],
    }


async def run() -> str:
    return json.dumps(await main())
