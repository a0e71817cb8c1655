from __future__ import annotations

import asyncio

import httpx2
import pytest
from smsfailover.core.errors import MessageRejected, SendFailed
from smsfailover.core.hedging import HEDGE_MIN_S, HedgeBudget, OriginLatency, hedge_delay_s
from smsfailover.core.router import LEDGER_VIEW_MAX, BreakerRegistry, FailoverRouter, RouterConfig, RouteResult

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
        slow = samples // 5  # a fifth at p95_ms, the rest at a third of it: the p95 is p95_ms, 2 x p50 below it
        for n in range(samples):
            self.router.hedge_latency.record(p95_ms if n < slow else p95_ms / 3)

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
    assert hedge_delay_s(10.0, samples=20, origin_timeout_s=2.0) == HEDGE_MIN_S == 0.02
    assert hedge_delay_s(40.0, samples=20, origin_timeout_s=2.0) == pytest.approx(0.04)  # the old 250 ms floor is gone
    assert hedge_delay_s(5000.0, samples=20, origin_timeout_s=2.0) is None  # plain failover does it anyway
    assert hedge_delay_s(300.0, samples=3, origin_timeout_s=2.0) is None
    assert hedge_delay_s(None, samples=0, origin_timeout_s=2.0) is None


def test_a_tight_distribution_hedges_at_twice_the_median() -> None:
    # p95 barely above p50: hedging at the p95 would copy ordinary calls; 2 x p50 waits for a real outlier.
    assert hedge_delay_s(33.0, p50_ms=30.0, samples=20, origin_timeout_s=2.0) == pytest.approx(0.06)
    assert hedge_delay_s(300.0, p50_ms=30.0, samples=20, origin_timeout_s=2.0) == pytest.approx(0.3)


def test_the_delay_is_read_from_the_window_at_most_once_a_second() -> None:
    clock = FakeClock()
    latency = OriginLatency(clock)
    for _ in range(20):
        latency.record(100.0)
    first = latency.delay_s(origin_timeout_s=2.0)
    for _ in range(200):
        latency.record(500.0)
    assert latency.delay_s(origin_timeout_s=2.0) == first  # same second: the reading is reused
    clock.now += 1.0
    assert latency.delay_s(origin_timeout_s=2.0) == pytest.approx(1.0, rel=0.05)  # 2 x the new p50


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


# -- what ends a race (issue 11) ------------------------------------------------------------------------------


def origin_answer(status: int, *, ledger: str = "edge") -> httpx2.Response:
    if status >= 300:
        return httpx2.Response(status, json={"error": {"code": f"http_{status}", "message": "no"}})
    return httpx2.Response(status, json=message("origin", ledger=ledger))


async def test_a_rate_limited_edge_does_not_win_the_race() -> None:
    rig = HedgeRig()

    async def origin(request: httpx2.Request) -> httpx2.Response:
        await rig.gate.wait()
        for _ in range(20):  # answer well after the router has seen the edge's 429
            await asyncio.sleep(0)
        return httpx2.Response(201, json=message("origin", request.headers["idempotency-key"]))

    rig.endpoints.origin = [origin]

    def edge(_: httpx2.Request) -> httpx2.Response:
        rig.gate.set()
        return httpx2.Response(429, json={"error": {"code": "rate_limited", "message": "slow down"}})

    rig.endpoints.edge = [edge]
    result = await rig.send()  # the edge waits out its 429; meanwhile the origin sends and ends the race
    assert result.endpoint == "origin"
    assert sorted((a.endpoint, a.outcome) for a in result.attempts) == [("edge", "cancelled"), ("origin", "sent")]
    assert [c.host for c in rig.endpoints.posts()].count("edge") == 1


@pytest.mark.parametrize("status", [429, 408, 503])
async def test_an_origin_that_answers_no_verdict_waits_for_the_edge(status: int) -> None:
    rig = HedgeRig()
    edge_gate = asyncio.Event()

    async def origin(_: httpx2.Request) -> httpx2.Response:
        await rig.gate.wait()
        edge_gate.set()
        return origin_answer(status)

    async def edge(request: httpx2.Request) -> httpx2.Response:
        rig.gate.set()
        await edge_gate.wait()
        return httpx2.Response(201, json=message("edge", request.headers["idempotency-key"]))

    rig.endpoints.origin = [origin]
    rig.endpoints.edge = [edge]
    result = await rig.send()
    assert result.endpoint == "edge"


async def test_failover_disabled_at_the_edge_cannot_settle_a_race_the_origin_may_have_sent() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated(status=504)]

    def edge(_: httpx2.Request) -> httpx2.Response:
        rig.gate.set()
        return httpx2.Response(403, json={"error": {"code": "failover_disabled", "message": "off"}})

    rig.endpoints.edge = [edge]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")  # unknown, not MessageRejected


async def test_a_refusal_both_must_meet_ends_the_race() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated()]  # never opened: the refusal ends the race without it
    rig.endpoints.edge = [lambda _: httpx2.Response(422, json={"error": {"code": "invalid_content", "message": "x"}})]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert caught.value.code == "invalid_content"
    assert sorted((a.endpoint, a.outcome) for a in caught.value.attempts) == [
        ("edge", "rejected"),
        ("origin", "cancelled"),
    ]


async def test_a_cancelled_hedged_attempt_is_neither_a_success_nor_a_failure() -> None:
    rig = HedgeRig()
    rig.endpoints.origin = [rig.gated()]
    rig.endpoints.edge = [sent("edge")]
    await rig.send()
    origin = rig.router.metrics.snapshot().get("origin", {"requests": 0})
    assert origin["requests"] == 0
    assert rig.router.breaker.consecutive_failures == 0
    # The hedge delay still sees the outrun attempt (censored at its cancel time), so its p95 does not drift down.
    assert rig.router.hedge_latency.requests == 21


# -- no hedge while the origin is on its local ledger ---------------------------------------------------------


async def test_no_hedge_while_the_origin_answers_from_its_local_ledger() -> None:
    rig = HedgeRig()
    never = asyncio.Event()

    async def no_timer(_: float) -> None:
        await never.wait()

    rig.router._sleep = no_timer  # the first send answers before any hedge
    rig.endpoints.origin = [lambda _: origin_answer(201, ledger="local")]
    await rig.router.send(BODY, token="tok", idempotency_key="k1")
    assert rig.router.origin_ledger_of("w1") == "local"
    rig.router._sleep = rig.sleep
    rig.endpoints.origin = [lambda _: origin_answer(201, ledger="edge")]
    rig.endpoints.calls.clear()
    result = await rig.router.send(BODY, token="tok", idempotency_key="k2")  # slow, but a hedge would double-send
    assert result.endpoint == "origin"
    assert rig.endpoints.hosts() == ["origin"]
    assert rig.router.hedge_budget.spent == 0
    assert rig.router.origin_ledger_of("w1") == "edge"
    rig.endpoints.origin = [rig.gated()]
    rig.endpoints.edge = [sent("edge")]
    again = await rig.send("k3")  # back on the shared ledger: hedging again
    assert again.endpoint == "edge"
    assert rig.router.hedge_budget.spent == 1


async def test_plain_failover_stays_allowed_on_a_local_ledger() -> None:
    rig = HedgeRig()
    rig.router.observe_origin_ledger("local", workspace_id="w1")
    rig.endpoints.origin = [lambda _: origin_answer(503)]
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "server_error"), ("edge", "sent")]
    assert rig.router.hedge_budget.spent == 0


async def test_a_replayed_answer_does_not_move_the_ledger_view() -> None:
    rig = HedgeRig()
    rig.router.observe_origin_ledger("edge", workspace_id="w1")
    never = asyncio.Event()

    async def no_timer(_: float) -> None:
        await never.wait()

    rig.router._sleep = no_timer
    replay = {"Idempotent-Replayed": "true"}
    rig.endpoints.origin = [lambda _: httpx2.Response(200, json=message("origin", ledger="local"), headers=replay)]
    await rig.send()  # a replay says how the key was first sent, not which ledger the origin uses now
    assert rig.router.origin_ledger_of("w1") == "edge"


# -- the ledger view is per workspace -------------------------------------------------------------------------


def _body(workspace_id: str) -> dict[str, str]:
    return {**BODY, "workspace_id": workspace_id}


async def _fresh_answer(rig: HedgeRig, workspace_id: str, ledger: str, key: str) -> None:
    """A send in `workspace_id` that the origin answers at once, saying which ledger it used."""
    never = asyncio.Event()

    async def no_timer(_: float) -> None:
        await never.wait()

    rig.router._sleep = no_timer
    rig.endpoints.origin = [lambda _: origin_answer(201, ledger=ledger)]
    await rig.router.send(_body(workspace_id), token="tok", idempotency_key=key)
    rig.router._sleep = rig.sleep


async def _slow_send(rig: HedgeRig, workspace_id: str, key: str) -> RouteResult:
    """An origin that does not answer: hedged (the edge wins the race) or, without a hedge, plain failover."""
    rig.endpoints.origin = [rig.endpoints.black_hole()]
    rig.endpoints.edge = [sent("edge")]
    return await rig.router.send(_body(workspace_id), token="tok", idempotency_key=key)


async def test_a_local_ledger_in_one_workspace_leaves_hedging_on_for_another() -> None:
    rig = HedgeRig()
    await _fresh_answer(rig, "w1", "local", "k1")
    result = await _slow_send(rig, "w2", "k2")
    await rig.transport.aclose()
    assert result.endpoint == "edge"
    assert rig.router.hedge_budget.spent == 1
    assert [a.outcome for a in result.attempts if a.endpoint == "origin"] == ["cancelled"]
    assert (rig.router.origin_ledger_of("w1"), rig.router.origin_ledger_of("w2")) == ("local", None)


async def test_an_edge_ledger_in_another_workspace_does_not_reenable_hedging() -> None:
    rig = HedgeRig()
    await _fresh_answer(rig, "w1", "local", "k1")
    await _fresh_answer(rig, "w2", "edge", "k2")
    result = await _slow_send(rig, "w1", "k3")  # a hedge here would be a second send
    await rig.transport.aclose()
    assert rig.router.hedge_budget.spent == 0
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "timeout"), ("edge", "sent")]


async def test_a_process_wide_view_covers_only_workspaces_without_their_own() -> None:
    rig = HedgeRig()
    rig.router.observe_origin_ledger("local")  # an answer with no workspace (e.g. the origin's health)
    rig.router.observe_origin_ledger("edge", workspace_id="w2")
    await rig.transport.aclose()
    assert rig.router.origin_ledger == "local"
    assert (rig.router.origin_ledger_of("w1"), rig.router.origin_ledger_of("w2")) == ("local", "edge")
    assert rig.router.origin_ledger_of(None) == "local"


async def test_the_ledger_view_keeps_the_most_recently_seen_workspaces() -> None:
    rig = HedgeRig()
    await rig.transport.aclose()
    for n in range(LEDGER_VIEW_MAX):
        rig.router.observe_origin_ledger("local", workspace_id=f"w{n}")
    rig.router.observe_origin_ledger("local", workspace_id="w0")  # seen again: now the newest
    rig.router.observe_origin_ledger("local", workspace_id="new")
    assert rig.router.origin_ledger_of("w0") == "local"
    assert rig.router.origin_ledger_of("w1") is None  # the oldest entry went
    assert rig.router.origin_ledger_of("new") == "local"
