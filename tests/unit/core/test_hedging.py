from __future__ import annotations

import asyncio

import httpx2
import pytest
from smsfailover.core.errors import SendFailed
from smsfailover.core.hedging import HEDGE_MIN_S, HedgeBudget, hedge_delay_s
from smsfailover.core.router import BreakerRegistry, FailoverRouter, RouterConfig, RouteResult

from .fakes import EDGE, ORIGIN, FakeClock, FakeEndpoints, FakeSleep, Handler, StaticSettings, message, sent

BODY = {"to": "+16266635938", "content": "hi", "workspace_id": "w1"}


class HedgeRig:
    """A hedging router over fake endpoints; `gate` holds gated origin answers until the test (or an edge
    handler, or the hedge timer) opens it."""

    def __init__(self, *, samples: int = 20, p95_ms: float = 300.0) -> None:
        self.clock = FakeClock()
        self.gate = asyncio.Event()
        self.fake_sleep = FakeSleep(self.clock)
        self.endpoints = FakeEndpoints(self.clock)
        self.transport = self.endpoints.transport()
        self.router = FailoverRouter(
            self.transport,
            StaticSettings(True),
            RouterConfig(ORIGIN, EDGE, hedging=True),
            clock=self.clock,
            sleep=self.sleep,
            breakers=BreakerRegistry(),
        )
        for _ in range(samples):
            self.router.metrics.record("origin", ok=True, latency_ms=p95_ms)

    async def sleep(self, seconds: float) -> None:
        await self.fake_sleep(seconds)

    def gated(self, status: int = 201) -> Handler:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            await self.gate.wait()
            if status >= 500:
                return httpx2.Response(status, json={"error": {"code": "boom", "message": "boom"}})
            return httpx2.Response(status, json=message("origin", request.headers["idempotency-key"]))

        return handler

    def edge_failing_then_open_gate(self) -> Handler:
        def handler(_: httpx2.Request) -> httpx2.Response:
            self.gate.set()
            return httpx2.Response(503, json={"error": {"code": "down", "message": "down"}})

        return handler

    async def send(self, key: str = "k1") -> RouteResult:
        try:
            return await self.router.send(BODY, token="tok", idempotency_key=key)
        finally:
            await self.transport.aclose()


def test_delay_is_the_p95_clamped_to_the_floor_and_below_the_timeout() -> None:
    assert hedge_delay_s(300.0, samples=20, origin_timeout_s=2.0) == pytest.approx(0.3)
    assert hedge_delay_s(10.0, samples=20, origin_timeout_s=2.0) == HEDGE_MIN_S
    assert hedge_delay_s(5000.0, samples=20, origin_timeout_s=2.0) is None  # plain failover does it anyway
    assert hedge_delay_s(300.0, samples=3, origin_timeout_s=2.0) is None
    assert hedge_delay_s(None, samples=0, origin_timeout_s=2.0) is None


def test_budget_caps_hedges_at_its_share_of_sends() -> None:
    budget = HedgeBudget(0.1)
    hedges = 0
    for _ in range(1000):
        budget.deposit()
        hedges += budget.try_spend()  # a brownout: every send would like a hedge
    assert hedges <= 0.1 * 1000 + 1
    assert hedges >= 0.1 * 1000 - 1
    assert budget.refused == 1000 - hedges


def test_budget_saves_at_most_its_burst() -> None:
    budget = HedgeBudget(0.5, burst=3.0)
    for _ in range(100):
        budget.deposit()
    assert budget.tokens == 3.0
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


class EmptyBudgetOpeningGate(HedgeBudget):
    """No token ever; asking for one lets the gated origin answer (so the plain path can be observed)."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(0.0, initial=0.0)
        self.gate = gate

    def try_spend(self) -> bool:
        self.gate.set()
        return super().try_spend()


async def test_slow_origin_is_hedged_and_the_edge_wins() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated()]
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert rig.fake_sleep.waits == [pytest.approx(0.3, abs=0.05)]
    assert sorted((a.endpoint, a.outcome) for a in result.attempts) == [("edge", "sent"), ("origin", "cancelled")]
    assert [(c.host, c.key) for c in rig.endpoints.calls] == [("origin", "k1"), ("edge", "k1")]
    assert rig.router.hedge_budget.spent == 1
    assert rig.router.breaker.consecutive_failures == 0  # outrun is not a failure


async def test_fast_origin_is_never_hedged() -> None:
    rig = HedgeRig()
    never = asyncio.Event()

    async def slow_timer(_: float) -> None:
        await never.wait()  # the hedge timer never fires before the origin answers

    rig.router._sleep = slow_timer
    rig.endpoints.origin = [sent("origin")]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert rig.endpoints.hosts() == ["origin"]
    assert rig.router.hedge_budget.spent == 0


async def test_origin_wins_when_the_hedged_edge_fails() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated()]
    rig.endpoints.edge = [rig.edge_failing_then_open_gate()]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert sorted((a.endpoint, a.outcome) for a in result.attempts) == [("edge", "server_error"), ("origin", "sent")]


async def test_spent_budget_means_plain_failover() -> None:
    rig = HedgeRig()
    rig.router.hedge_budget = EmptyBudgetOpeningGate(rig.gate)
    rig.endpoints.origin = [rig.gated(status=503)]
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "server_error"), ("edge", "sent")]
    assert rig.router.hedge_budget.refused == 1


async def test_no_hedge_without_enough_origin_samples() -> None:
    rig = HedgeRig(samples=2)
    rig.endpoints.origin = [sent("origin")]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert rig.fake_sleep.waits == []


async def test_open_breaker_skips_the_origin_and_the_hedge() -> None:
    rig = HedgeRig()
    rig.router.breaker.force_open(30.0)
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert rig.endpoints.hosts() == ["edge"]
    assert result.endpoint == "edge"
    assert rig.router.hedge_budget.spent == 0


async def test_both_failing_in_the_race_is_a_send_failure() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated(status=503)]
    rig.endpoints.edge = [rig.edge_failing_then_open_gate()]
    with pytest.raises(SendFailed) as failed:
        await rig.send()
    assert sorted(a.outcome for a in failed.value.attempts) == ["server_error", "server_error"]
    assert rig.router.breaker.consecutive_failures == 1
