"""`429 rate_limited`: the router waits out `Retry-After` inside the send deadline (bounded, jittered) and POSTs
again with the same key; a 429 it cannot wait out goes back to the caller as it is. Never a breaker failure,
never a failover."""

from __future__ import annotations

import pytest
from smsfailover.core.errors import MessageRejected
from smsfailover.core.router import _MAX_ROUNDS, BreakerRegistry, FailoverRouter, RouterConfig, RouteResult

from .fakes import EDGE, ORIGIN, FakeClock, FakeEndpoints, FakeSleep, Handler, StaticSettings, error, refused, sent

BODY = {"to": "+16266635938", "content": "hi", "workspace_id": "w1"}


def limited(retry_after: str | None = "1") -> Handler:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error(429, "rate_limited", **headers)


class Rig:
    def __init__(self, *, enabled: bool = True, rand: float = 0.5, **config: float) -> None:
        self.clock = FakeClock()
        self.sleep = FakeSleep(self.clock)
        self.endpoints = FakeEndpoints(self.clock)
        self.transport = self.endpoints.transport()
        self.router = FailoverRouter(
            self.transport,
            StaticSettings(enabled),
            RouterConfig(ORIGIN, EDGE, **config),  # type: ignore[arg-type]
            clock=self.clock,
            sleep=self.sleep,
            breakers=BreakerRegistry(),
            rand=lambda: rand,
        )

    async def send(self, key: str = "k1") -> RouteResult:
        try:
            return await self.router.send(BODY, token="tok", idempotency_key=key)
        finally:
            await self.transport.aclose()


async def test_a_rate_limited_origin_is_waited_out_and_sent_with_the_same_key() -> None:
    rig = Rig()
    rig.endpoints.origin = [limited("2"), sent("origin")]
    result = await rig.send("k9")
    assert result.endpoint == "origin"
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", "sent")]
    assert [(c.host, c.method, c.key) for c in rig.endpoints.calls] == [("origin", "POST", "k9")] * 2
    assert rig.sleep.waits == [pytest.approx(2.2)]  # 2 s, plus half of the 20 % jitter
    assert rig.router.breaker.consecutive_failures == 0


async def test_a_rate_limited_edge_is_waited_out_too() -> None:
    rig = Rig()
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [limited("1"), sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert rig.endpoints.hosts() == ["origin", "edge", "edge"]
    assert rig.sleep.waits == [pytest.approx(1.125)]  # under 1.25 s, the jitter is at most 250 ms


async def test_a_rate_limited_origin_only_send_is_waited_out() -> None:
    rig = Rig(enabled=False)
    rig.endpoints.origin = [limited("3"), sent("origin")]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert rig.endpoints.hosts() == ["origin", "origin"]
    assert [c.timeout_s for c in rig.endpoints.calls] == [10.0, 10.0]  # the wait left the request its timeout


@pytest.mark.parametrize(("retry_after", "rand", "wait"), [("0", 0.0, 0.0), ("0", 1.0, 0.25), ("5", 1.0, 6.0)])
async def test_the_jitter_is_added_never_taken_off(retry_after: str, rand: float, wait: float) -> None:
    rig = Rig(rand=rand)
    rig.endpoints.origin = [limited(retry_after), sent("origin")]
    await rig.send()
    assert rig.sleep.waits == [pytest.approx(wait)]


@pytest.mark.parametrize("retry_after", [None, "soon"])
async def test_a_429_without_a_usable_retry_after_waits_a_second(retry_after: str | None) -> None:
    rig = Rig(rand=0.0)
    rig.endpoints.origin = [limited(retry_after), sent("origin")]
    await rig.send()
    assert rig.sleep.waits == [1.0]


async def test_a_retry_after_past_the_cap_goes_back_at_once() -> None:
    rig = Rig()
    rig.endpoints.origin = [limited("30")]  # retrying sooner than asked would only meet the limit again
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.code, caught.value.status) == ("rate_limited", 429)
    assert rig.endpoints.hosts() == ["origin"]
    assert rig.sleep.waits == []


async def test_a_429_that_outlasts_the_deadline_goes_back_as_it_is() -> None:
    rig = Rig()
    rig.endpoints.origin = [limited("1")]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.code, caught.value.status) == ("rate_limited", 429)
    posts = rig.endpoints.posts()
    assert {c.host for c in posts} == {"origin"}  # never a failover
    assert len(posts) == len(rig.sleep.waits) + 1
    # Every POST had its whole timeout: a request cut short by the deadline could time out into an unknown.
    assert {c.timeout_s for c in posts} == {2.0}
    assert sum(rig.sleep.waits) + 2.0 <= 15.0 < sum(rig.sleep.waits) + 1.125 + 2.0
    assert rig.router.breaker.consecutive_failures == 0


async def test_rate_limited_rounds_are_bounded() -> None:
    rig = Rig(send_deadline_s=10_000)
    rig.endpoints.origin = [limited("0")]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.code, caught.value.status) == ("rate_limited", 429)
    assert len(rig.endpoints.posts()) == _MAX_ROUNDS


async def test_a_429_then_a_claim_in_flight_polls_it() -> None:
    rig = Rig()
    rig.endpoints.origin = [limited("1"), error(409, "idempotency_in_progress"), sent("origin", status=200)]
    result = await rig.send()
    assert [c.method for c in rig.endpoints.calls] == ["POST", "POST", "GET"]
    assert result.attempts[-1].outcome == "replayed"


async def test_a_429_then_a_timeout_fails_over_and_may_have_sent() -> None:
    rig = Rig()
    rig.endpoints.origin = [limited("1"), rig.endpoints.timeout()]
    rig.endpoints.edge = [error(503, "provider_unavailable")]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")
    assert rig.endpoints.hosts() == ["origin", "origin", "edge"]
