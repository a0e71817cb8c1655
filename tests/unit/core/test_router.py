from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest
from smsfailover.core.breaker import BreakerState
from smsfailover.core.errors import MessageRejected, SendFailed
from smsfailover.core.router import Attempt, BreakerRegistry, FailoverRouter, RouterConfig, RouteResult

from .fakes import (
    EDGE,
    ORIGIN,
    FakeClock,
    FakeEndpoints,
    FakeSleep,
    Handler,
    StaticSettings,
    error,
    in_progress,
    message,
    refused,
    sent,
)

BODY = {"to": "+16266635938", "content": "hi", "workspace_id": "w1"}


class Rig:
    def __init__(self, *, enabled: bool = True, **config: float) -> None:
        self.clock = FakeClock()
        self.sleep = FakeSleep(self.clock)
        self.endpoints = FakeEndpoints(self.clock)
        self.settings = StaticSettings(enabled)
        self.transport = self.endpoints.transport()
        self.router = FailoverRouter(
            self.transport,
            self.settings,
            RouterConfig(ORIGIN, EDGE, **config),  # type: ignore[arg-type]
            clock=self.clock,
            sleep=self.sleep,
            breakers=BreakerRegistry(),
        )

    async def send(self, key: str = "k1") -> RouteResult:
        return await self.router.send(BODY, token="tok", idempotency_key=key)


def _state(rig: Rig) -> BreakerState:
    return rig.router.breaker.state


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    await made.transport.aclose()


async def _disabled_rig() -> Rig:
    return Rig(enabled=False)


# -- failover disabled ---------------------------------------------------------------------------------------


async def test_disabled_sends_to_the_origin_only_with_the_origin_only_timeout() -> None:
    rig = Rig(enabled=False)
    rig.endpoints.origin = [sent("origin")]
    result = await rig.router.send(BODY, token="tok", idempotency_key="k1")
    assert result.endpoint == "origin"
    assert result.failover_enabled is False
    assert [a.endpoint for a in result.attempts] == ["origin"]
    assert rig.endpoints.calls[0].timeout_s == 10.0
    assert rig.settings.asked == [("w1", "tok")]
    await rig.transport.aclose()


async def test_disabled_never_fails_over_and_never_counts_in_the_breaker() -> None:
    rig = Rig(enabled=False)
    rig.endpoints.origin = [error(503, "provider_unavailable")]
    for _ in range(4):
        with pytest.raises(SendFailed) as caught:
            await rig.router.send(BODY, token="tok", idempotency_key="k1")
        assert caught.value.attempts == (Attempt("origin", "server_error", 0.0),)
    assert rig.endpoints.hosts() == ["origin"] * 4
    assert _state(rig) is BreakerState.CLOSED
    assert rig.router.breaker.consecutive_failures == 0
    await rig.transport.aclose()


async def test_disabled_timeout_is_an_unknown_outcome_not_a_failure() -> None:
    # The origin may have sent before timing out: "failed" would invite a retry with a new key.
    rig = Rig(enabled=False)
    rig.endpoints.origin = [rig.endpoints.timeout()]
    result = await rig.router.send(BODY, token="tok", idempotency_key="k1")
    assert result.message is None
    assert [a.outcome for a in result.attempts] == ["timeout"]
    await rig.transport.aclose()


async def test_disabled_refused_connection_is_a_send_failure() -> None:
    rig = Rig(enabled=False)
    rig.endpoints.origin = [refused]
    with pytest.raises(SendFailed, match="origin: connect_error"):
        await rig.router.send(BODY, token="tok", idempotency_key="k1")
    await rig.transport.aclose()


# -- failover enabled ----------------------------------------------------------------------------------------


async def test_enabled_origin_success_uses_the_short_timeout(rig: Rig) -> None:
    rig.endpoints.origin = [sent("origin")]
    result = await rig.router.send(BODY, token="tok", idempotency_key="k1")
    assert (result.endpoint, result.failover_enabled) == ("origin", True)
    assert result.message is not None
    assert result.message["requires_refresh"] is False
    assert [(c.host, c.method, c.timeout_s, c.key) for c in rig.endpoints.calls] == [("origin", "POST", 2.0, "k1")]
    assert rig.endpoints.calls[0].body == BODY


@pytest.mark.parametrize("outcome", ["timeout", "connect_error", "server_error"])
async def test_origin_failure_fails_over_to_the_edge_with_the_same_key(rig: Rig, outcome: str) -> None:
    failing = {
        "timeout": rig.endpoints.timeout(),
        "connect_error": refused,
        "server_error": error(500, "internal_error"),
    }[outcome]
    rig.endpoints.origin = [failing]
    rig.endpoints.edge = [sent("edge")]
    result = await rig.router.send(BODY, token="tok", idempotency_key="key-7")
    assert result.endpoint == "edge"
    assert result.message is not None
    assert result.message["requires_refresh"] is True
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [("origin", outcome), ("edge", "sent")]
    assert [(c.host, c.key, c.timeout_s) for c in rig.endpoints.calls] == [
        ("origin", "key-7", 2.0),
        ("edge", "key-7", 5.0),
    ]
    assert rig.router.breaker.consecutive_failures == 1


@pytest.mark.parametrize(
    ("status", "code", "field"),
    [(422, "provider_rejected", None), (422, "invalid_phone_number", "to")],
)  # a 429 goes back too once it cannot be waited out (test_router_rate_limit.py)
async def test_a_4xx_goes_back_to_the_caller_without_failover(
    rig: Rig, status: int, code: str, field: str | None
) -> None:
    rig.endpoints.origin = [error(status, code, field)]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.code, caught.value.status, caught.value.field) == (code, status, field)
    assert rig.endpoints.hosts() == ["origin"]
    assert rig.router.breaker.consecutive_failures == 0


async def test_a_4xx_without_an_envelope_still_rejects(rig: Rig) -> None:
    rig.endpoints.origin = [lambda _: httpx2.Response(418, text="teapot")]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.code, caught.value.status) == ("http_418", 418)


async def test_the_edge_failing_too_raises_send_failed_with_both_attempts(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [error(503, "provider_unavailable")]
    with pytest.raises(SendFailed) as caught:
        await rig.send()
    assert [(a.endpoint, a.outcome) for a in caught.value.attempts] == [
        ("origin", "connect_error"),
        ("edge", "server_error"),
    ]


async def test_an_edge_rejection_is_a_rejection(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [error(401, "unauthorized")]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert caught.value.code == "unauthorized"


async def test_a_replay_keeps_the_endpoint_its_body_carries(rig: Rig) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [sent("origin", status=200, **{"Idempotent-Replayed": "true"})]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert result.attempts[-1].outcome == "replayed"


# -- 409: the key is in flight -------------------------------------------------------------------------------


async def test_in_progress_polls_the_same_endpoint_honouring_retry_after(rig: Rig) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [in_progress("2"), in_progress("3"), sent("origin", status=200)]
    result = await rig.send()
    assert [(c.host, c.method) for c in rig.endpoints.calls] == [
        ("origin", "POST"),
        ("edge", "POST"),
        ("edge", "GET"),
        ("edge", "GET"),
    ]
    assert rig.endpoints.calls[-1].path == "/v1/messages"
    assert rig.endpoints.calls[-1].key == "k1"
    assert rig.sleep.waits == [2.0, 3.0]
    assert result.endpoint == "origin"
    assert [a.outcome for a in result.attempts] == ["timeout", "replayed"]


async def test_in_progress_past_the_deadline_is_an_unknown_result_not_a_resend(rig: Rig) -> None:
    rig.endpoints.origin = [in_progress("4")]
    result = await rig.send()
    assert result.message is None
    assert result.endpoint == "origin"
    assert [a.outcome for a in result.attempts] == ["in_progress"]
    assert [c.method for c in rig.endpoints.calls].count("POST") == 1
    assert sum(rig.sleep.waits) == pytest.approx(15.0)
    assert rig.sleep.waits[-1] == pytest.approx(3.0)  # the last wait is cut to the deadline


async def test_a_released_key_found_by_polling_is_sent_again(rig: Rig) -> None:
    rig.endpoints.origin = [in_progress(), error(404, "not_found"), sent("origin")]
    result = await rig.send()
    assert [c.method for c in rig.endpoints.calls] == ["POST", "GET", "POST"]
    assert result.attempts[-1].outcome == "sent"


async def test_a_bad_retry_after_uses_the_default_wait(rig: Rig) -> None:
    rig.endpoints.origin = [in_progress("soon"), sent("origin", status=200)]
    await rig.send()
    assert rig.sleep.waits == [1.0]


async def test_polling_that_loses_the_origin_fails_over(rig: Rig) -> None:
    rig.endpoints.origin = [in_progress(), refused]
    rig.endpoints.edge = [sent("origin", status=200, **{"Idempotent-Replayed": "true"})]
    result = await rig.send()
    assert [(a.endpoint, a.outcome) for a in result.attempts] == [
        ("origin", "connect_error"),
        ("edge", "replayed"),
    ]


async def test_the_send_deadline_bounds_the_edge_timeout() -> None:
    rig = Rig(send_deadline_s=6)
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [rig.endpoints.timeout()]
    result = await rig.send()  # both may have acted: unknown, never "failed"
    assert result.message is None
    assert [c.timeout_s for c in rig.endpoints.calls] == [2.0, 4.0]
    await rig.transport.aclose()


async def test_a_connection_lost_after_the_request_went_out_is_unknown() -> None:
    def lost(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError("server disconnected", request=request)

    rig = Rig()
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [lost]
    result = await rig.send()
    assert result.message is None
    assert [a.outcome for a in result.attempts] == ["connect_error", "connection_lost"]
    await rig.transport.aclose()


async def test_nothing_is_tried_once_the_deadline_is_gone() -> None:
    rig = Rig(send_deadline_s=2)
    rig.endpoints.origin = [rig.endpoints.timeout()]
    result = await rig.send()  # the edge gets no time at all: the key is reported in flight, never lost
    assert [a.outcome for a in result.attempts] == ["timeout", "in_progress"]
    assert rig.endpoints.hosts() == ["origin"]
    await rig.transport.aclose()


# -- the breaker ---------------------------------------------------------------------------------------------


async def test_three_failures_open_the_breaker_and_sends_skip_the_origin(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for _ in range(3):
        await rig.send()
    assert _state(rig) is BreakerState.OPEN
    rig.endpoints.calls.clear()
    result = await rig.send()
    assert [a.endpoint for a in result.attempts] == ["edge"]
    assert rig.endpoints.hosts() == ["edge"]


async def test_after_the_open_period_one_probe_goes_to_the_origin_and_others_to_the_edge(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for _ in range(3):
        await rig.send()
    rig.clock.now += 30
    gate = asyncio.Event()

    async def slow_origin(request: httpx2.Request) -> httpx2.Response:
        await gate.wait()
        return httpx2.Response(201, json=message("origin"))

    rig.endpoints.origin = [slow_origin]
    rig.endpoints.calls.clear()
    probe = asyncio.create_task(rig.send("probe"))
    for _ in range(20):
        await asyncio.sleep(0)
    others = [await rig.send(f"other-{i}") for i in range(3)]
    assert all([a.endpoint for a in r.attempts] == ["edge"] for r in others)
    gate.set()
    result = await probe
    assert [a.endpoint for a in result.attempts] == ["origin"]
    assert _state(rig) is BreakerState.CLOSED
    assert rig.endpoints.hosts().count("origin") == 1


async def test_a_failed_probe_reopens_the_breaker(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for _ in range(3):
        await rig.send()
    rig.clock.now += 30
    result = await rig.send()
    assert [a.endpoint for a in result.attempts] == ["origin", "edge"]
    assert _state(rig) is BreakerState.OPEN


async def test_a_rejected_probe_frees_the_slot_without_counting(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for _ in range(3):
        await rig.send()
    rig.clock.now += 30
    rig.endpoints.origin = [error(422, "invalid_content", "content")]
    with pytest.raises(MessageRejected):
        await rig.send()
    assert _state(rig) is BreakerState.HALF_OPEN
    rig.endpoints.origin = [sent("origin")]
    result = await rig.send()
    assert result.endpoint == "origin"
    assert _state(rig) is BreakerState.CLOSED


async def test_breakers_are_shared_per_origin_url_and_settings() -> None:
    registry = BreakerRegistry()
    clock = FakeClock()
    a = registry.get(ORIGIN, failures=3, open_s=30, clock=clock)
    assert registry.get(ORIGIN + "/", failures=3, open_s=30, clock=clock) is a
    assert registry.get(ORIGIN, failures=3, open_s=1, clock=clock) is not a
    assert registry.get(EDGE, failures=3, open_s=30, clock=clock) is not a
    registry.clear()
    assert registry.get(ORIGIN, failures=3, open_s=30, clock=clock) is not a


# -- metrics -------------------------------------------------------------------------------------------------


async def test_every_attempt_is_recorded_in_the_client_metrics(rig: Rig) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [sent("edge")]
    await rig.send()
    snapshot = rig.router.metrics.snapshot()
    assert snapshot["origin"]["requests"] == 1
    assert snapshot["origin"]["success_rate"] == 0.0
    assert snapshot["origin"]["p50_ms"] == pytest.approx(2000, rel=0.05)
    assert snapshot["edge"]["success_rate"] == 1.0


async def test_a_cancelled_probe_frees_the_slot_at_once(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [sent("edge")]
    for _ in range(3):
        await rig.send()
    rig.clock.now += 30
    never = asyncio.Event()

    async def hanging(request: httpx2.Request) -> httpx2.Response:
        await never.wait()
        raise AssertionError("unreachable")

    rig.endpoints.origin = [hanging]
    probe = asyncio.create_task(rig.send("probe"))
    for _ in range(20):
        await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    rig.endpoints.origin = [sent("origin")]
    result = await rig.send("next")
    assert [a.endpoint for a in result.attempts] == ["origin"]
    assert _state(rig) is BreakerState.CLOSED


# -- what settles a send (issue 11): only a 2xx or a final 4xx; never a refusal after a may-have-sent attempt --


def lost(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.RemoteProtocolError("server disconnected", request=request)


def _may_have_sent(rig: Rig, outcome: str) -> Handler:
    """An origin attempt after which the origin may have sent the message."""
    return {
        "timeout": rig.endpoints.timeout(),
        "connection_lost": lost,
        "502": error(502, "bad_gateway"),
        "504": error(504, "gateway_timeout"),
    }[outcome]


MAY_HAVE_SENT = ["timeout", "connection_lost", "502", "504"]


@pytest.mark.parametrize("origin", MAY_HAVE_SENT)
@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "failover_disabled"), (422, "provider_rejected"), (429, "rate_limited"), (408, "request_timeout")],
)
async def test_a_refusal_after_the_origin_may_have_sent_is_unknown(
    rig: Rig, origin: str, status: int, code: str
) -> None:
    rig.endpoints.origin = [_may_have_sent(rig, origin)]
    rig.endpoints.edge = [error(status, code, **{"Retry-After": "30"})]  # a 429 too long to wait out
    result = await rig.send()
    assert result.message is None  # status "unknown": the origin may have sent it, the edge cannot say
    assert result.endpoint == "origin"
    assert rig.endpoints.hosts() == ["origin", "edge"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (422, "invalid_phone_number"),
        (422, "invalid_content"),
        (422, "invalid_media_url"),
        (422, "invalid_workspace_id"),
        (400, "invalid_json"),
        (400, "missing_idempotency_key"),
        (413, "payload_too_large"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (422, "idempotency_key_reused"),
    ],
)
async def test_a_refusal_the_origin_met_too_still_rejects_after_a_timeout(rig: Rig, status: int, code: str) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [error(status, code)]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.status, caught.value.code) == (status, code)


async def test_a_refusal_after_an_origin_that_definitely_did_not_send_rejects(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [error(403, "failover_disabled")]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert caught.value.code == "failover_disabled"


async def test_a_rate_limited_edge_after_a_refused_origin_goes_back_as_it_is(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [error(429, "rate_limited", **{"Retry-After": "1"})]
    with pytest.raises(MessageRejected) as caught:
        await rig.send()
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_may_have_sent(rig: Rig, status: int) -> None:
    rig.endpoints.origin = [error(status, "gateway")]
    rig.endpoints.edge = [error(503, "provider_unavailable")]
    result = await rig.send()  # the gateway lost the origin's answer: unknown, never "failed"
    assert (result.message, result.endpoint) == (None, "origin")
    assert rig.router.breaker.consecutive_failures == 1  # still an origin failure for the breaker


@pytest.mark.parametrize("status", [502, 504])
async def test_disabled_gateway_error_is_unknown(status: int) -> None:
    rig = Rig(enabled=False)
    rig.endpoints.origin = [error(status, "gateway")]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")
    await rig.transport.aclose()


@pytest.mark.parametrize(
    "edge",
    [refused, error(503, "provider_unavailable"), error(500, "internal_error"), error(429, "rate_limited")],
    ids=["refused", "503", "500", "429"],
)
async def test_an_unknown_result_names_the_endpoint_that_may_have_sent(rig: Rig, edge: Handler) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]
    rig.endpoints.edge = [edge]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")  # the edge definitely did not send


async def test_an_edge_that_may_have_sent_is_named(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [error(504, "gateway_timeout")]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "edge")


async def test_nothing_tried_at_the_deadline_names_the_origin_that_may_have_sent() -> None:
    rig = Rig(send_deadline_s=2)
    rig.endpoints.origin = [rig.endpoints.timeout()]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")  # the edge was never asked
    await rig.transport.aclose()


async def test_a_claim_in_flight_that_cannot_be_polled_may_have_sent(rig: Rig) -> None:
    # The origin holds the key (409), then stops answering; the edge's refusal cannot settle it.
    rig.endpoints.origin = [in_progress(), refused]
    rig.endpoints.edge = [error(403, "failover_disabled")]
    result = await rig.send()
    assert (result.message, result.endpoint) == (None, "origin")


async def test_a_refused_poll_of_a_claim_in_flight_is_unknown(rig: Rig) -> None:
    rig.endpoints.origin = [in_progress(), error(401, "unauthorized")]
    result = await rig.send()  # the GET was refused, the POST was not: the claim may still send
    assert (result.message, result.endpoint) == (None, "origin")
