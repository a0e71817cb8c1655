from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import jwt
import pytest
import smsfailover.core as sdk
from smsfailover.core import client as client_module
from smsfailover.core.client import FailoverClient, SendResult, SyncFailoverClient, new_idempotency_key
from smsfailover.core.config import ClientConfig
from smsfailover.core.errors import ConfigurationError, MessageRejected, SendFailed
from smsfailover.core.router import Attempt, BreakerRegistry, RouteResult

from .fakes import EDGE, ORIGIN, FakeClock, FakeEndpoints, FakeSleep, error, message, refused, sent, setting

SECRET = "unit-test-secret-" + "x" * 32
CONFIG = ClientConfig(origin_url=ORIGIN, edge_url=EDGE, token="tok")


class Rig:
    def __init__(self, config: ClientConfig = CONFIG) -> None:
        self.clock = FakeClock()
        self.endpoints = FakeEndpoints(self.clock)
        self.client = FailoverClient(
            config,
            transport=self.endpoints.transport(),
            clock=self.clock,
            sleep=FakeSleep(self.clock),
            breakers=BreakerRegistry(),
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    await made.client.aclose()


def _route(rig: Rig, *handlers: Any) -> None:
    """The origin has failover on and answers its other requests with the given handlers."""
    rig.endpoints.settings["origin"] = setting(True)
    rig.endpoints.origin = list(handlers)


async def test_send_message_returns_a_send_result(rig: Rig) -> None:
    _route(rig, sent("origin"))
    result = await rig.client.send_message(
        to="+1 (626) 663-5938",
        content="hello",
        workspace_id="w1",
        contact_id="c-1",
        media_urls=["https://example.com/a.jpg"],
        idempotency_key="key-1",
    )
    assert result == SendResult(
        message_id="msg_01JTESTTESTTESTTESTTESTTEST",
        status="queued",
        endpoint="origin",
        requires_refresh=False,
        idempotency_key="key-1",
        provider_message_id="SM123",
        segments=1,
        encoding="GSM-7",
        ledger="edge",
        attempts=(Attempt("origin", "sent", 0.0),),
        latency_ms=0.0,
    )
    post = rig.endpoints.posts()[-1]
    assert post.body == {
        "to": "+16266635938",
        "content": "hello",
        "workspace_id": "w1",
        "contact_id": "c-1",
        "media_urls": ["https://example.com/a.jpg"],
    }
    assert result.as_dict()["attempts"] == [["origin", "sent", 0.0]]


async def test_a_key_is_minted_once_per_message_and_reused_on_failover(rig: Rig) -> None:
    _route(rig, refused)
    rig.endpoints.edge = [sent("edge")]
    result = await rig.client.send_message(to="+16266635938", content="hi", workspace_id="w1")
    posts = [c for c in rig.endpoints.calls if c.method == "POST"]
    assert [c.host for c in posts] == ["origin", "edge"]
    assert posts[0].key == posts[1].key == result.idempotency_key
    assert result.idempotency_key.startswith("sf_")
    assert (result.endpoint, result.requires_refresh) == ("edge", True)
    assert new_idempotency_key() != new_idempotency_key()


async def test_an_unparseable_number_goes_to_the_server_as_given(rig: Rig) -> None:
    _route(rig, error(422, "invalid_phone_number", "to"))
    with pytest.raises(MessageRejected) as caught:
        await rig.client.send_message(to="12", content="hi", workspace_id="w1")
    assert rig.endpoints.posts()[-1].body == {"to": "12", "content": "hi", "workspace_id": "w1"}
    assert caught.value.field == "to"


async def test_an_unknown_outcome_is_a_result_with_status_unknown(rig: Rig) -> None:
    _route(rig, error(409, "idempotency_in_progress", **{"Retry-After": "5"}))
    result = await rig.client.send_message(to="+16266635938", content="hi", workspace_id="w1")
    assert (result.status, result.message_id, result.endpoint) == ("unknown", None, "origin")
    assert result.requires_refresh is False


class BrokenSettings:
    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool:
        raise RuntimeError("a bug in the failover layer")


def _broken_rig() -> Rig:
    made = Rig()
    made.client.router._settings = BrokenSettings()
    return made


async def test_send_message_falls_back_to_a_plain_origin_send_when_the_layer_breaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = _broken_rig()
    rig.endpoints.origin = [sent("origin")]
    caplog.set_level(logging.ERROR, logger="smsfailover")
    result = await rig.client.send_message(to="+16266635938", content="secret words", workspace_id="w1")
    assert result.endpoint == "origin"
    assert [(c.host, c.method, c.timeout_s) for c in rig.endpoints.calls] == [("origin", "POST", 10.0)]
    assert "client.failover_layer_error" in caplog.text
    assert "secret words" not in caplog.text
    assert "tok" not in caplog.text.replace("idempotency_key", "")
    await rig.client.aclose()


async def test_the_plain_fallback_maps_errors() -> None:
    rig = _broken_rig()
    rig.endpoints.origin = [error(422, "invalid_content", "content")]
    with pytest.raises(MessageRejected):
        await rig.client.send_message(to="+16266635938", content=" ", workspace_id="w1")
    rig.endpoints.origin = [error(503, "provider_unavailable")]
    with pytest.raises(SendFailed, match="provider_unavailable"):
        await rig.client.send_message(to="+16266635938", content="x", workspace_id="w1")
    rig.endpoints.origin = [refused]
    with pytest.raises(SendFailed, match="could not be reached") as caught:
        await rig.client.send_message(to="+16266635938", content="x", workspace_id="w1")
    assert caught.value.attempts[0][1] == "connect_error"
    await rig.client.aclose()


def _lost(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.RemoteProtocolError("server disconnected", request=request)


@pytest.mark.parametrize("answer", ["timeout", "connection_lost", "502", "504"])
async def test_the_plain_fallback_keeps_a_may_have_sent_answer_unknown(answer: str) -> None:
    rig = _broken_rig()
    rig.endpoints.origin = [
        {
            "timeout": rig.endpoints.timeout(),
            "connection_lost": _lost,
            "502": error(502, "bad_gateway"),
            "504": error(504, "gateway_timeout"),
        }[answer]
    ]
    result = await rig.client.send_message(to="+16266635938", content="x", workspace_id="w1", idempotency_key="k9")
    assert (result.status, result.message_id, result.endpoint) == ("unknown", None, "origin")
    assert result.idempotency_key == "k9"
    assert [a.endpoint for a in result.attempts] == ["origin"]
    await rig.client.aclose()


async def test_the_plain_fallback_times_its_attempt_on_the_injected_clock() -> None:
    rig = _broken_rig()
    rig.endpoints.origin = [rig.endpoints.timeout()]
    result = await rig.client.send_message(to="+16266635938", content="x", workspace_id="w1")
    assert result.attempts == (Attempt("origin", "timeout", 10_000.0),)
    await rig.client.aclose()


async def test_conditional_failover_raises_on_a_layer_bug_and_takes_message() -> None:
    rig = _broken_rig()
    with pytest.raises(RuntimeError, match="bug"):
        await rig.client.send_sms_with_conditional_failover(to="+16266635938", message="hi", workspace_id="w1")
    assert rig.endpoints.calls == []
    await rig.client.aclose()


async def test_conditional_failover_sends_message_as_content(rig: Rig) -> None:
    _route(rig, sent("origin"))
    result = await rig.client.send_sms_with_conditional_failover(
        to="+16266635938", message="hi", workspace_id="w1", media_urls=None
    )
    assert rig.endpoints.posts()[-1].body == {"to": "+16266635938", "content": "hi", "workspace_id": "w1"}
    assert result.endpoint == "origin"


# -- tokens --------------------------------------------------------------------------------------------------


def test_token_precedence() -> None:
    minting = FailoverClient(
        ClientConfig(origin_url=ORIGIN, edge_url=EDGE, jwt_secret=SECRET),
        transport=FakeEndpoints(FakeClock()).transport(),
    )
    claims = jwt.decode(minting.token_for("w9"), SECRET, algorithms=["HS256"])
    assert claims["workspace_id"] == "w9"
    assert minting.token_for("w9", "override") == "override"
    fixed = FailoverClient(
        ClientConfig(origin_url=ORIGIN, edge_url=EDGE, token="t", jwt_secret=SECRET),
        transport=FakeEndpoints(FakeClock()).transport(),
    )
    assert fixed.token_for("w9") == "t"
    none = FailoverClient(
        ClientConfig(origin_url=ORIGIN, edge_url=EDGE), transport=FakeEndpoints(FakeClock()).transport()
    )
    with pytest.raises(ConfigurationError, match="SMSFAILOVER_TOKEN"):
        none.token_for("w9")


def test_a_minted_token_is_reused_for_half_its_life() -> None:
    clock = FakeClock()
    minting = FailoverClient(
        ClientConfig(origin_url=ORIGIN, edge_url=EDGE, jwt_secret=SECRET),
        transport=FakeEndpoints(clock).transport(),
        clock=clock,
    )
    first = minting.token_for("w1")
    clock.now += 1799
    assert minting.token_for("w1") == first
    assert minting.token_for("w2") != first  # one per workspace
    clock.now += 1
    renewed = minting.token_for("w1")
    assert renewed != first
    claims = jwt.decode(renewed, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iat"] == int(clock.now)


async def test_strict_e164_goes_as_it_is_and_friendlier_input_is_normalized(rig: Rig) -> None:
    _route(rig, sent("origin"))
    await rig.client.send_message(to="+442079460958", content="hi", workspace_id="w1")
    await rig.client.send_message(to="+44 20 7946 0958", content="hi", workspace_id="w1")
    await rig.client.send_message(to="+1 626 663 5938\n", content="hi", workspace_id="w1")
    posted = [c.body["to"] for c in rig.endpoints.calls if c.method == "POST" and c.body]
    assert posted == ["+442079460958", "+442079460958", "+16266635938"]


async def test_a_per_call_token_overrides_the_environment(rig: Rig) -> None:
    seen: list[str | None] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("authorization"))
        if request.url.path.endswith("/settings"):
            return httpx2.Response(200, json={"sms_failover_enabled": False})
        return httpx2.Response(201, json=message("origin"))

    rig.endpoints.origin = [handler]
    await rig.client.send_message(to="+16266635938", content="hi", workspace_id="w1", token="tenant-2")
    assert seen == ["Bearer tenant-2", "Bearer tenant-2"]


# -- settings and status -------------------------------------------------------------------------------------


async def test_get_and_set_settings(rig: Rig) -> None:
    calls: list[tuple[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append((request.method, request.url.path))
        enabled = request.method == "PATCH"
        return httpx2.Response(200, json={"workspace_id": "w1", "sms_failover_enabled": enabled})

    rig.endpoints.origin = [handler]
    assert (await rig.client.get_settings("w1"))["sms_failover_enabled"] is False
    assert (await rig.client.set_failover_enabled("w1", True))["sms_failover_enabled"] is True
    assert calls == [("GET", "/v1/workspaces/w1/settings"), ("PATCH", "/v1/workspaces/w1/settings")]
    assert await rig.client._cache.failover_enabled("w1", token="tok") is True  # remembered, no new GET
    assert len(calls) == 2


async def test_settings_errors_are_mapped(rig: Rig) -> None:
    rig.endpoints.origin = [error(401, "unauthorized")]
    with pytest.raises(MessageRejected) as caught:
        await rig.client.get_settings("w1")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    rig.endpoints.origin = [lambda _: httpx2.Response(500, text="oops")]
    with pytest.raises(SendFailed, match="http_500"):
        await rig.client.get_settings("w1")


async def test_status_merges_the_origin_view_with_this_clients_breaker_and_metrics(rig: Rig) -> None:
    origin_status = {"workspace_id": "w1", "enabled": True, "ledger": "edge", "breaker": None}

    def status(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/workspaces/w1/sms-failover/status"
        return httpx2.Response(200, json=origin_status)

    _route(rig, sent("origin"), status)
    await rig.client.send_message(to="+16266635938", content="hi", workspace_id="w1")
    merged = await rig.client.get_sms_failover_status("w1")
    assert merged["enabled"] is True
    assert merged["origin_reachable"] is True
    assert merged["breaker"] == {"state": "closed", "consecutive_failures": 0, "remaining_open_s": 0.0}
    assert "shared_breaker" not in merged
    assert merged["client"]["endpoints"]["origin"]["requests"] == 1


@pytest.mark.parametrize(("enabled", "ledger", "seen"), [(True, "local", "local"), (False, "local", None)])
async def test_status_tells_the_router_which_ledger_the_origin_uses(
    rig: Rig, enabled: bool, ledger: str, seen: str | None
) -> None:
    # A disabled workspace is always on the origin's own ledger: that says nothing about the origin's health.
    rig.endpoints.origin = [lambda _: httpx2.Response(200, json={"enabled": enabled, "ledger": ledger})]
    await rig.client.get_sms_failover_status("w1")
    assert rig.client.router.origin_ledger_of("w1") == seen
    assert rig.client.router.origin_ledger_of("w2") is None  # another workspace's hedging is not touched


async def test_status_keeps_a_shared_breaker_apart(rig: Rig) -> None:
    shared = {"state": "open", "consecutive_failures": 3, "remaining_open_s": 10}
    rig.endpoints.origin = [lambda _: httpx2.Response(200, json={"enabled": False, "breaker": shared})]
    merged = await rig.client.get_sms_failover_status("w1")
    assert merged["shared_breaker"] == shared
    assert merged["breaker"]["state"] == "closed"


async def test_status_with_the_origin_down_comes_from_the_edge_mirror(rig: Rig) -> None:
    rig.endpoints.origin = [refused]
    rig.endpoints.edge = [setting(True)]
    for _ in range(3):
        rig.client.router.breaker.record_failure(rig.client.router.breaker.try_acquire())
    status = await rig.client.get_sms_failover_status("w1")
    assert status["enabled"] is True
    assert status["origin_reachable"] is False
    assert status["settings_source"] == "edge"
    assert status["breaker"]["state"] == "open"
    rig.client.reset_circuit_breaker()
    assert (await rig.client.get_sms_failover_status("w1"))["breaker"]["state"] == "closed"
    rig.client.reset_circuit_breaker()  # resetting a closed breaker is harmless


# -- results -------------------------------------------------------------------------------------------------


def test_send_result_from_a_sparse_body() -> None:
    route = RouteResult({"id": 5, "segments": "2"}, "edge", "k", (), 1.0, True)
    result = SendResult.from_route(route)
    assert (result.message_id, result.status, result.segments, result.requires_refresh) == (
        None,
        "unknown",
        None,
        True,
    )
    assert result.idempotency_key == "k"


# -- blocking client and module functions --------------------------------------------------------------------


def test_sync_client_runs_the_async_client_on_a_private_loop() -> None:
    clock = FakeClock()
    endpoints = FakeEndpoints(clock)
    endpoints.settings["origin"] = setting(False)
    endpoints.origin = [sent("origin")]
    with SyncFailoverClient(
        CONFIG, transport=endpoints.transport(), clock=clock, breakers=BreakerRegistry()
    ) as blocking:
        result = blocking.send_message(to="+16266635938", content="hi", workspace_id="w1")
        assert result.endpoint == "origin"
        endpoints.origin = [sent("origin")]
        again = blocking.send_sms_with_conditional_failover(to="+16266635938", message="hi", workspace_id="w1")
        assert again.endpoint == "origin"
        endpoints.origin = [setting(False)]
        assert blocking.get_settings("w1")["sms_failover_enabled"] is False
        assert blocking.set_failover_enabled("w1", False)["sms_failover_enabled"] is False
        endpoints.origin = [lambda _: httpx2.Response(200, json={"enabled": False, "breaker": None})]
        assert blocking.get_sms_failover_status("w1")["enabled"] is False
        blocking.reset_circuit_breaker()
        assert isinstance(blocking.client, FailoverClient)
    blocking.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        blocking.send_message(to="+16266635938", content="hi", workspace_id="w1")


def test_sync_client_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFAILOVER_ORIGIN_URL", ORIGIN)
    blocking = SyncFailoverClient.from_env(transport=FakeEndpoints(FakeClock()).transport())
    assert blocking.client.config.origin_url == ORIGIN
    blocking.close()


async def test_module_functions_use_one_default_client_per_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    endpoints = FakeEndpoints(clock)
    endpoints.settings["origin"] = setting(False)
    endpoints.origin = [sent("origin")]
    built: list[FailoverClient] = []

    def factory(**_: Any) -> FailoverClient:
        made = FailoverClient(CONFIG, transport=endpoints.transport(), clock=clock, breakers=BreakerRegistry())
        built.append(made)
        return made

    monkeypatch.setattr(client_module, "_default", None)
    monkeypatch.setattr(FailoverClient, "from_env", staticmethod(factory))
    result = await sdk.send_message(to="+16266635938", content="hi", workspace_id="w1")
    assert result.endpoint == "origin"
    endpoints.origin = [sent("origin")]
    await sdk.send_sms_with_conditional_failover(to="+16266635938", message="hi", workspace_id="w1")
    endpoints.origin = [lambda _: httpx2.Response(200, json={"enabled": False, "breaker": None})]
    assert (await sdk.get_sms_failover_status("w1"))["enabled"] is False
    await sdk.reset_circuit_breaker()
    assert len(built) == 1

    other_loop_result: list[FailoverClient] = []

    def in_another_loop() -> None:
        async def grab() -> None:
            other_loop_result.append(client_module.default_client())

        asyncio.run(grab())

    await asyncio.to_thread(in_another_loop)
    assert other_loop_result[0] is not built[0]
    for made in (*built, *other_loop_result):
        await made.aclose()


async def test_async_context_manager_closes_the_client() -> None:
    async with FailoverClient(CONFIG, transport=FakeEndpoints(FakeClock()).transport()) as made:
        assert made.config is CONFIG


def test_from_env_builds_an_httpx_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFAILOVER_EDGE_URL", EDGE)
    made = FailoverClient.from_env()
    assert made.config.edge_url == EDGE
    asyncio.run(made.aclose())
