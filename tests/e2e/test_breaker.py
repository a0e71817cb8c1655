"""The circuit breaker as a caller sees it through the SDK, against real servers (CONTRACT §1.4)."""

from __future__ import annotations

import pytest
from smsfailover.core import SendResult
from smsfailover.core.errors import SendFailed

from tests.contract.kit import Simulator, apoll, unique_content
from tests.e2e.conftest import ClientFactory
from tests.support.fixtures import Stack


def _endpoints(result: SendResult) -> list[str]:
    return [attempt.endpoint for attempt in result.attempts]


async def test_breaker_opens_after_three_failures_and_recovers_through_one_probe(
    stack: Stack, make_client: ClientFactory, failover_ws: str
) -> None:
    open_s = 1.5
    client = make_client(
        workspace_id=failover_ws, SMSFAILOVER_BREAKER_FAILURES="3", SMSFAILOVER_BREAKER_OPEN_S=str(open_s)
    )
    stack.stop_origin()

    for _ in range(3):
        result = await client.send_message(to="+16266635938", content=unique_content("b"), workspace_id=failover_ws)
        assert result.endpoint == "edge"
        assert _endpoints(result) == ["origin", "edge"]

    skipped = await client.send_message(to="+16266635938", content=unique_content("b"), workspace_id=failover_ws)
    assert _endpoints(skipped) == ["edge"], "an open breaker skips the origin"
    status = await client.get_sms_failover_status(failover_ws)
    assert status["breaker"]["state"] == "open"

    stack.start_origin()

    async def half_open() -> bool | None:
        breaker = (await client.get_sms_failover_status(failover_ws))["breaker"]
        return True if breaker["state"] == "half_open" or breaker["remaining_open_s"] <= 0 else None

    await apoll(half_open, timeout_s=open_s + 5, what="the breaker's open period to end")

    probe = await client.send_message(to="+16266635938", content=unique_content("b"), workspace_id=failover_ws)
    assert _endpoints(probe) == ["origin"]
    assert probe.endpoint == "origin"
    status = await client.get_sms_failover_status(failover_ws)
    assert status["breaker"]["state"] == "closed"


async def test_reset_circuit_breaker_closes_it_at_once(
    stack: Stack, make_client: ClientFactory, failover_ws: str
) -> None:
    client = make_client(workspace_id=failover_ws, SMSFAILOVER_BREAKER_OPEN_S="600")
    stack.stop_origin()
    for _ in range(3):
        await client.send_message(to="+16266635938", content=unique_content("r"), workspace_id=failover_ws)
    stack.start_origin()

    client.reset_circuit_breaker()

    result = await client.send_message(to="+16266635938", content=unique_content("r"), workspace_id=failover_ws)
    assert _endpoints(result) == ["origin"]


async def test_a_provider_outage_fails_over_each_send_but_never_opens_the_breaker(
    stack: Stack, make_client: ClientFactory, failover_ws: str, sim: Simulator
) -> None:
    """Issue 13: `503 provider_unavailable` is the origin working and the provider failing. Every send still
    tries the edge once (here the edge's provider is down too), and the origin's breaker stays closed."""
    client = make_client(workspace_id=failover_ws, SMSFAILOVER_BREAKER_FAILURES="3", SMSFAILOVER_BREAKER_OPEN_S="600")
    sim.set_faults(outage="503")

    for _ in range(5):
        with pytest.raises(SendFailed) as failed:
            await client.send_message(to="+16266635938", content=unique_content("p"), workspace_id=failover_ws)
        assert [(a.endpoint, a.outcome) for a in failed.value.attempts] == [
            ("origin", "server_error"),
            ("edge", "server_error"),
        ]
    status = await client.get_sms_failover_status(failover_ws)
    assert status["breaker"]["state"] == "closed"
    assert status["breaker"]["consecutive_failures"] == 0

    sim.clear_faults()
    result = await client.send_message(to="+16266635938", content=unique_content("p"), workspace_id=failover_ws)
    assert _endpoints(result) == ["origin"]
    assert result.endpoint == "origin"
