"""The first send of a workspace whose setting is not cached (issue 14): the origin attempt starts at once and
the setting is read beside it, so a black-holed origin costs one origin timeout, not two. Fake clock: every
figure below is fake time, fixed by the code's logic, not by how fast this machine runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from smsfailover.core.router import Attempt, BreakerRegistry, FailoverRouter, RouterConfig, RouteResult
from smsfailover.core.settings import CachedSettings

from .fakes import EDGE, ORIGIN, FakeClock, FakeEndpoints, FakeSleep, error, refused, sent, setting

BODY = {"to": "+16266635938", "content": "hi", "workspace_id": "w1"}


class FirstSendRig:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.endpoints = FakeEndpoints(self.clock)
        self.transport = self.endpoints.transport()
        config = RouterConfig(ORIGIN, EDGE)
        self.settings = CachedSettings(self.transport, origin_url=ORIGIN, edge_url=EDGE, clock=self.clock)
        self.router = FailoverRouter(
            self.transport,
            self.settings,
            config,
            clock=self.clock,
            sleep=FakeSleep(self.clock),
            breakers=BreakerRegistry(),
        )

    async def send(self, key: str = "k1") -> RouteResult:
        return await self.router.send(BODY, token="tok", idempotency_key=key)

    def requests(self) -> list[tuple[str, str, float | None]]:
        return [
            (c.host, "settings" if c.path.endswith("/settings") else c.method, c.timeout_s)
            for c in self.endpoints.calls
        ]


@pytest.fixture
async def rig() -> AsyncIterator[FirstSendRig]:
    made = FirstSendRig()
    yield made
    await made.transport.aclose()


async def test_a_black_holed_origin_costs_one_origin_timeout_not_two(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [rig.endpoints.black_hole()]
    rig.endpoints.settings["origin"] = rig.endpoints.timeout()
    rig.endpoints.settings["edge"] = setting(True)
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    # Before: 2 s waiting for the setting, then 2 s for the send (4,000 ms).
    assert result.latency_ms == 2000.0
    assert result.attempts == (Attempt("origin", "timeout", 2000.0), Attempt("edge", "sent", 0.0))
    # The POST and the settings read go out side by side (in no fixed order); the POST runs under the
    # origin-only timeout until the setting is known. The edge's mirror is read once the origin's read failed.
    assert sorted(rig.requests()[:3]) == [
        ("edge", "settings", 5.0),
        ("origin", "POST", 10.0),
        ("origin", "settings", 2.0),
    ]
    assert rig.requests()[3] == ("edge", "POST", 5.0)
    assert rig.router.breaker.consecutive_failures == 1  # failover on: the cut attempt counts against the origin


async def test_failover_off_and_a_healthy_origin_cost_no_edge_request(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [sent("origin")]
    rig.endpoints.settings["origin"] = setting(False)
    result = await rig.send()
    assert (result.endpoint, result.failover_enabled) == ("origin", False)
    assert {host for host, _, _ in rig.requests()} == {"origin"}
    assert sorted(rig.requests()) == [("origin", "POST", 10.0), ("origin", "settings", 2.0)]
    assert rig.router.breaker.consecutive_failures == 0


async def test_failover_off_keeps_the_origin_only_timeout_for_a_slow_origin(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [rig.endpoints.timeout()]  # answers nothing within its own 10 s timeout
    rig.endpoints.settings["origin"] = setting(False)
    result = await rig.send()
    assert result.message is None  # unknown at the origin, never sent elsewhere
    assert result.attempts == (Attempt("origin", "timeout", 10_000.0),)
    assert "edge" not in {host for host, _, _ in rig.requests()}


async def test_failover_on_and_a_healthy_origin_answer_from_the_origin(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [sent("origin")]
    rig.endpoints.settings["origin"] = setting(True)
    result = await rig.send()
    assert (result.endpoint, result.failover_enabled, result.latency_ms) == ("origin", True, 0.0)
    assert "edge" not in {host for host, _, _ in rig.requests()}
    again = await rig.send("k2")  # the setting is cached now: no settings read beside this one
    assert again.endpoint == "origin"
    assert [r for r in rig.requests() if r[1] == "settings"] == [("origin", "settings", 2.0)]


async def test_a_refused_origin_fails_over_once_the_mirror_says_on(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.settings["origin"] = refused
    rig.endpoints.settings["edge"] = setting(True)
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert [a.outcome for a in result.attempts] == ["connect_error", "sent"]
    assert result.endpoint == "edge"


async def test_an_unusable_origin_setting_and_a_mirror_saying_off_stay_at_the_origin(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [sent("origin")]
    rig.endpoints.settings["origin"] = error(503, "storage_unavailable")
    rig.endpoints.settings["edge"] = setting(False)
    result = await rig.send()
    assert (result.endpoint, result.failover_enabled) == ("origin", False)
    assert [r for r in rig.requests() if r[1] == "POST"] == [("origin", "POST", 10.0)]


async def test_an_open_breaker_reads_the_mirror_and_never_asks_the_origin(rig: FirstSendRig) -> None:
    for _ in range(3):
        rig.router.breaker.record_failure(rig.router.breaker.try_acquire())
    rig.endpoints.settings["edge"] = setting(True)
    rig.endpoints.edge = [sent("edge")]
    result = await rig.send()
    assert result.endpoint == "edge"
    assert rig.requests() == [("edge", "settings", 5.0), ("edge", "POST", 5.0)]


async def test_an_origin_that_answers_409_keeps_being_polled_once_the_setting_is_known(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [error(409, "idempotency_in_progress", **{"Retry-After": "1"}), sent("origin")]
    rig.endpoints.settings["origin"] = setting(True)
    result = await rig.send()
    assert (result.endpoint, [a.outcome for a in result.attempts]) == ("origin", ["replayed"])
    polls = [r for r in rig.requests() if r[1] == "GET"]
    assert polls == [("origin", "GET", 2.0)]  # later requests take the failover timeout


async def test_an_origin_answer_does_not_wait_for_a_slow_settings_read(rig: FirstSendRig) -> None:
    rig.endpoints.origin = [sent("origin")]
    rig.endpoints.settings["origin"] = rig.endpoints.black_hole()
    rig.endpoints.settings["edge"] = setting(True)
    result = await rig.send()
    assert (result.endpoint, result.latency_ms, result.failover_enabled) == ("origin", 0.0, None)
    assert rig.settings.known("w1") is None  # still being read, in the background
    for _ in range(10_000):  # bounded: the black hole times out after a few thousand loop turns
        if rig.settings.known("w1") is not None:
            break
        await asyncio.sleep(0)
    assert (rig.settings.known("w1"), rig.settings.source_of("w1")) == (True, "edge")
