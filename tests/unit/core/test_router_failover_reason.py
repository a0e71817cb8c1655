"""The router names why it sends to the edge, in one request header on the edge POST (core/failover_reason.py);
a send that never leaves the origin carries none, and neither does any origin request."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from smsfailover.core import failover_reason
from smsfailover.core.failover_reason import HEADER

from .fakes import FakeEndpoints, Handler, error, in_progress, message, refused, sent
from .test_hedging import HedgeRig
from .test_router import Rig


def recorded(handler: Handler, seen: list[tuple[str, str | None]]) -> Handler:
    """The handler's answer, after noting each request's method and failover reason header."""

    async def wrapper(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.headers.get(HEADER)))
        result = handler(request)
        return result if isinstance(result, httpx2.Response) else await result

    return wrapper


def _edge_reasons(seen: list[tuple[str, str | None]]) -> list[str | None]:
    return [reason for method, reason in seen if method == "POST"]


def _timeout(endpoints: FakeEndpoints) -> Handler:
    return endpoints.timeout()


@pytest.mark.parametrize(
    ("origin_answer", "reason"),
    [
        (_timeout, failover_reason.TIMEOUT),
        (lambda _e: refused, failover_reason.CONNECTION_REFUSED),
        (lambda _e: error(500, "internal_error"), failover_reason.SERVER_ERROR),
        (lambda _e: error(502, "bad_gateway"), failover_reason.GATEWAY_ERROR),
        (lambda _e: error(503, "ledger_unavailable"), failover_reason.LEDGER_UNAVAILABLE),
        (lambda _e: error(503, "provider_unavailable"), failover_reason.PROVIDER_UNAVAILABLE),
        (lambda _e: error(503, "storage_unavailable"), failover_reason.STORAGE_UNAVAILABLE),
        (lambda _e: error(503, "storage_busy"), failover_reason.STORAGE_BUSY),
        (lambda _e: error(503, "something_new"), failover_reason.SERVER_ERROR),
    ],
)
async def test_a_failover_names_the_origins_failure(
    origin_answer: Callable[[FakeEndpoints], Handler], reason: str
) -> None:
    rig = Rig()
    origin_seen: list[tuple[str, str | None]] = []
    edge_seen: list[tuple[str, str | None]] = []
    rig.endpoints.origin = [recorded(origin_answer(rig.endpoints), origin_seen)]
    rig.endpoints.edge = [recorded(sent("edge"), edge_seen)]
    result = await rig.send()
    await rig.transport.aclose()
    assert result.endpoint == "edge"
    assert _edge_reasons(edge_seen) == [reason]
    assert origin_seen == [("POST", None)]


async def test_a_lost_connection_is_named_so() -> None:
    rig = Rig()
    seen: list[tuple[str, str | None]] = []

    def lost(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError("peer closed the connection", request=request)

    rig.endpoints.origin = [lost]
    rig.endpoints.edge = [recorded(sent("edge"), seen)]
    await rig.send()
    await rig.transport.aclose()
    assert _edge_reasons(seen) == [failover_reason.CONNECTION_LOST]


async def test_an_open_breaker_is_the_reason_once_it_skips_the_origin() -> None:
    rig = Rig()
    seen: list[tuple[str, str | None]] = []
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [recorded(sent("edge"), seen)]
    results = [await rig.send(f"k{n}") for n in range(4)]
    await rig.transport.aclose()
    assert [a.endpoint for a in results[-1].attempts] == ["edge"]  # skipped: the breaker opened after three
    assert _edge_reasons(seen) == [failover_reason.CONNECTION_REFUSED] * 3 + [failover_reason.BREAKER_OPEN]


async def test_a_send_the_origin_settles_carries_no_reason_anywhere() -> None:
    rig = Rig()
    seen: list[tuple[str, str | None]] = []
    rig.endpoints.origin = [recorded(sent("origin"), seen)]
    result = await rig.send()
    await rig.transport.aclose()
    assert result.endpoint == "origin"
    assert seen == [("POST", None)]


async def test_polling_a_claim_in_flight_at_the_edge_repeats_the_reason_only_on_posts() -> None:
    rig = Rig()
    seen: list[tuple[str, str | None]] = []
    rig.endpoints.origin = [rig.endpoints.timeout()]
    answered = message("edge")
    rig.endpoints.edge = [
        recorded(in_progress("0.1"), seen),
        recorded(lambda _r: httpx2.Response(200, json=answered), seen),
    ]
    result = await rig.send()
    await rig.transport.aclose()
    assert result.endpoint == "edge"
    assert seen == [("POST", failover_reason.TIMEOUT), ("GET", None)]


async def test_a_hedged_edge_attempt_says_hedge() -> None:
    rig = HedgeRig()
    seen: list[tuple[str, str | None]] = []
    origin_seen: list[tuple[str, str | None]] = []
    rig.endpoints.origin = [recorded(rig.gated(), origin_seen)]
    rig.endpoints.edge = [recorded(sent("edge"), seen)]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert _edge_reasons(seen) == [failover_reason.HEDGE]
    assert origin_seen == [("POST", None)]
