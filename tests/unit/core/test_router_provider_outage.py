"""Issue 13: the breaker counts the origin's own failures. `503 provider_unavailable` (the origin worked, its
provider failed) and `503 ledger_unavailable` (the origin is up, its ledger peer is not; DESIGN.md "Ledger
authority" rule 5) still fail over once per send but count as an origin success; other 5xx still count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest
from smsfailover.core.breaker import BreakerState
from smsfailover.core.breaker_store import LocalBreakerStore, StorePermission
from smsfailover.core.errors import SendFailed
from smsfailover.core.router import BreakerRegistry, FailoverRouter, RouterConfig

from .fakes import EDGE, ORIGIN, Handler, error, message, refused, sent
from .test_hedging import HedgeRig
from .test_router import BODY, Rig

PROVIDER_DOWN = error(503, "provider_unavailable", **{"Retry-After": "1"})
LEDGER_DOWN = error(503, "ledger_unavailable")
PEER_DOWN = pytest.mark.parametrize("peer_down", [PROVIDER_DOWN, LEDGER_DOWN], ids=["provider", "ledger"])


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    await made.transport.aclose()


@PEER_DOWN
async def test_a_peer_outage_fails_over_every_send_once_and_leaves_the_breaker_closed(
    rig: Rig, peer_down: Handler
) -> None:
    rig.endpoints.origin = [peer_down]
    rig.endpoints.edge = [sent("edge")]
    for n in range(6):  # twice the threshold
        result = await rig.send(f"k{n}")
        assert result.endpoint == "edge"
        assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "server_error"), ("edge", "sent")]
    assert rig.router.breaker.state is BreakerState.CLOSED
    assert rig.router.breaker.consecutive_failures == 0
    assert [(c.host, c.key) for c in rig.endpoints.posts()] == [
        (host, f"k{n}") for n in range(6) for host in ("origin", "edge")
    ]


@pytest.mark.parametrize(
    "origin",
    [
        error(503, "storage_unavailable"),
        error(503, "storage_busy"),
        error(503, "overloaded"),
        error(500, "internal_error"),
        error(500, "provider_unavailable"),  # the code only excuses the 503 the contract gives it
        error(500, "ledger_unavailable"),
    ],
)
async def test_the_origins_own_5xx_still_open_the_breaker(rig: Rig, origin: Handler) -> None:
    rig.endpoints.origin = [origin]
    rig.endpoints.edge = [sent("edge")]
    for n in range(3):
        await rig.send(f"k{n}")
    assert rig.router.breaker.state is BreakerState.OPEN
    rig.endpoints.calls.clear()
    await rig.send("after")
    assert rig.endpoints.hosts() == ["edge"]


@PEER_DOWN
async def test_a_peer_outage_between_origin_failures_breaks_the_run(rig: Rig, peer_down: Handler) -> None:
    rig.endpoints.origin = [error(503, "storage_unavailable"), error(503, "storage_unavailable"), peer_down]
    rig.endpoints.origin += [error(503, "storage_unavailable")] * 2
    rig.endpoints.edge = [sent("edge")]
    for n in range(5):
        await rig.send(f"k{n}")
    # 2 failures, a correct answer from the origin, 2 failures: never 3 in a row
    assert rig.router.breaker.state is BreakerState.CLOSED
    assert rig.router.breaker.consecutive_failures == 2


@PEER_DOWN
async def test_a_half_open_probe_answered_by_a_peer_outage_closes_the_breaker(rig: Rig, peer_down: Handler) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for n in range(3):
        await rig.send(f"down-{n}")
    assert rig.router.breaker.snapshot()["state"] == "open"
    rig.clock.now += 30
    rig.endpoints.origin = [peer_down]
    result = await rig.send("probe")
    assert [a.endpoint for a in result.attempts] == ["origin", "edge"]  # the probe's send still went out
    assert result.endpoint == "edge"
    assert rig.router.breaker.state is BreakerState.CLOSED  # the probe proved the origin is up


@PEER_DOWN
async def test_a_peer_outage_is_still_a_failed_send_in_the_client_metrics(rig: Rig, peer_down: Handler) -> None:
    rig.endpoints.origin = [peer_down]
    rig.endpoints.edge = [sent("edge")]
    await rig.send()
    snapshot = rig.router.metrics.snapshot()
    assert snapshot["origin"]["requests"] == 1
    assert snapshot["origin"]["success_rate"] == 0.0
    assert snapshot["edge"]["success_rate"] == 1.0


async def test_a_provider_outage_everywhere_is_a_send_failure_that_counts_nothing(rig: Rig) -> None:
    rig.endpoints.origin = [PROVIDER_DOWN]
    rig.endpoints.edge = [PROVIDER_DOWN]
    for n in range(4):
        with pytest.raises(SendFailed):
            await rig.send(f"k{n}")
    assert rig.router.breaker.state is BreakerState.CLOSED
    assert rig.endpoints.hosts() == ["origin", "edge"] * 4


# -- the shared-store path: the store is handed the router's verdict, so Redis gets the same one ------------


class RecordingStore(LocalBreakerStore):
    shared = True

    def __init__(self, router_breaker: LocalBreakerStore) -> None:
        super().__init__(router_breaker.breaker)
        self.verdicts: list[bool] = []

    async def record(self, permission: StorePermission, *, healthy: bool) -> None:
        self.verdicts.append(healthy)
        await super().record(permission, healthy=healthy)


async def test_the_breaker_store_is_told_healthy_for_a_peer_outage_and_not_for_a_storage_outage() -> None:
    rig = Rig()
    store = RecordingStore(LocalBreakerStore(rig.router.breaker))
    router = FailoverRouter(
        rig.transport,
        rig.settings,
        RouterConfig(ORIGIN, EDGE),
        clock=rig.clock,
        sleep=rig.sleep,
        breakers=BreakerRegistry(),
        breaker_store=store,
    )
    rig.endpoints.origin = [PROVIDER_DOWN, error(503, "storage_unavailable"), LEDGER_DOWN]
    rig.endpoints.edge = [sent("edge")]
    try:
        for n in range(3):
            await router.send(BODY, token="tok", idempotency_key=f"k{n}")
    finally:
        await rig.transport.aclose()
    assert store.verdicts == [True, False, True]


# -- the hedging path classifies the origin's answer the same way ------------------------------------------


def _edge_after_the_origin(rig: HedgeRig) -> Handler:
    """The hedged edge lets the gated origin answer first, then sends."""

    async def handler(request: httpx2.Request) -> httpx2.Response:
        rig.gate.set()
        for _ in range(20):
            await asyncio.sleep(0)
        return httpx2.Response(201, json=message("edge", request.headers["idempotency-key"]))

    return handler


def _origin_peer_down(rig: HedgeRig, code: str) -> Handler:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await rig.gate.wait()
        return httpx2.Response(503, json={"error": {"code": code, "message": "peer down"}})

    return handler


@pytest.mark.parametrize("code", ["provider_unavailable", "ledger_unavailable"])
async def test_a_hedged_origin_answering_a_peer_outage_counts_as_a_success(code: str) -> None:
    rig = HedgeRig()
    permissions = [rig.router.breaker.try_acquire() for _ in range(2)]
    for permission in permissions:
        rig.router.breaker.record_failure(permission)  # two origin failures already: a third would open it
    rig.endpoints.origin = [_origin_peer_down(rig, code)]
    rig.endpoints.edge = [_edge_after_the_origin(rig)]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "server_error"), ("edge", "sent")]
    assert rig.router.hedge_budget.spent == 1
    assert rig.router.breaker.state is BreakerState.CLOSED
    assert rig.router.breaker.consecutive_failures == 0
