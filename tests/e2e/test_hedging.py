"""Hedging against the real origin, edge host and provider simulator: the hedge races the same idempotency key
at both endpoints, and the shared ledger keeps every message to one provider call."""

from __future__ import annotations

import asyncio

from smsfailover.core import SendResult

from tests.contract.kit import Simulator, unique_content
from tests.e2e.conftest import ClientFactory

MESSAGES = 6


async def test_hedged_sends_reach_the_provider_once_each(
    make_client: ClientFactory, sim: Simulator, failover_ws: str
) -> None:
    client = make_client(
        workspace_id=failover_ws,
        SMSFAILOVER_HEDGING="1",
        SMSFAILOVER_HEDGE_BUDGET="1",  # every send may hedge: the worst case for duplicates
        SMSFAILOVER_ORIGIN_TIMEOUT_S="3",
    )
    for _ in range(20):  # a fast origin history: p95 under the 250 ms floor, so hedges start at 250 ms
        client.router.hedge_latency.record(40.0)
    contents = [unique_content(f"hedge-{n}") for n in range(MESSAGES)]
    sim.set_faults(slow_after_accept_ms=1200)  # the provider records each message, then answers late

    results: list[SendResult] = await asyncio.gather(
        *(client.send_message(to="+16266635938", content=c, workspace_id=failover_ws) for c in contents)
    )

    for content in contents:
        assert len(sim.received(content)) == 1, content  # zero duplicates at the provider
    hedged = [r for r in results if any(a[0] == "edge" for a in r.attempts)]
    assert hedged, [r.attempts for r in results]  # the hedge did race the edge
    assert client.router.hedge_budget.spent == len(hedged)
    assert all(r.status in {"queued", "sent", "delivered"} for r in results)
    assert len({r.message_id for r in results}) == MESSAGES
