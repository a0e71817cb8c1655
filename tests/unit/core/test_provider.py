"""TwilioProvider over the HttpPoster seam, and HttpxPoster over httpx2 (MockTransport: no network)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

import httpx2
import pytest
from smsfailover.core.message import SendRequest
from smsfailover.core.provider import (
    ConnectFailed,
    HttpReply,
    HttpxPoster,
    ProviderRejected,
    ProviderResult,
    ProviderUnavailable,
    ReplyLost,
    TwilioProvider,
)

TO = "+16266635938"
REQ = SendRequest(TO, "Hello", "15213", None, ())
URL = "https://api.twilio.test/2010-04-01/Accounts/AC123/Messages.json"

Outcome = HttpReply | Exception


class ScriptedPoster:
    """An HttpPoster answering from a script, recording each call."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, list[tuple[str, str]], tuple[str, str], float]] = []

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        self.calls.append((url, list(fields), auth, timeout_s))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def reply(status: int, body: bytes | str = b"") -> HttpReply:
    return HttpReply(status, body.encode() if isinstance(body, str) else body)


def provider(poster: ScriptedPoster, **overrides: object) -> TwilioProvider:
    options: dict[str, object] = {
        "base_url": "https://api.twilio.test/",
        "account_sid": "AC123",
        "auth_token": "auth-tok",
        "from_number": "+15005550006",
        "timeout_s": 4.0,
    }
    options.update(overrides)
    return TwilioProvider(poster, **options)  # type: ignore[arg-type]


CREATED = reply(201, '{"sid": "SM1", "status": "queued", "num_segments": "2"}')


# ---- the request ------------------------------------------------------------------------------------------------


async def test_a_send_posts_the_form_with_basic_auth_to_the_account_url() -> None:
    poster = ScriptedPoster(CREATED)
    assert await provider(poster).send(REQ) == ProviderResult("SM1", "queued", 2)
    assert poster.calls == [
        (URL, [("To", TO), ("From", "+15005550006"), ("Body", "Hello")], ("AC123", "auth-tok"), 4.0)
    ]


def test_a_messaging_service_replaces_from() -> None:
    fields = provider(ScriptedPoster(), messaging_service_sid="MG9").form(REQ)
    assert fields == [("To", TO), ("MessagingServiceSid", "MG9"), ("Body", "Hello")]


def test_media_urls_repeat_and_an_empty_body_is_left_out() -> None:
    req = SendRequest(TO, "", "w", None, ("https://e.com/a.png", "https://e.com/b.png"))
    fields = provider(ScriptedPoster()).form(req, status_callback="https://origin.example/cb")
    assert fields == [
        ("To", TO),
        ("From", "+15005550006"),
        ("MediaUrl", "https://e.com/a.png"),
        ("MediaUrl", "https://e.com/b.png"),
        ("StatusCallback", "https://origin.example/cb"),
    ]


async def test_the_status_callback_is_sent_when_given() -> None:
    poster = ScriptedPoster(CREATED)
    await provider(poster).send(REQ, status_callback="https://origin.example/cb")
    assert ("StatusCallback", "https://origin.example/cb") in poster.calls[0][1]


@pytest.mark.parametrize(
    "overrides",
    [{"account_sid": ""}, {"auth_token": ""}, {"from_number": None}, {"from_number": ""}],
)
async def test_an_unconfigured_provider_sends_nothing(overrides: dict[str, object]) -> None:
    poster = ScriptedPoster()
    unconfigured = provider(poster, **overrides)
    assert not unconfigured.configured
    with pytest.raises(ProviderUnavailable) as caught:
        await unconfigured.send(REQ)
    assert caught.value.maybe_sent is False
    assert poster.calls == []


def test_a_messaging_service_alone_is_configured() -> None:
    assert provider(ScriptedPoster(), from_number=None, messaging_service_sid="MG9").configured


# ---- the answer -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (reply(201, '{"sid": "SM1", "status": "accepted"}'), ProviderResult("SM1", "accepted", None)),
        (reply(200, '{"sid": "SM2", "num_segments": 3}'), ProviderResult("SM2", "queued", 3)),
        (reply(201, '{"sid": "SM3", "status": null, "num_segments": "many"}'), ProviderResult("SM3", "queued", None)),
    ],
)
async def test_a_2xx_is_parsed(answer: HttpReply, expected: ProviderResult) -> None:
    assert await provider(ScriptedPoster(answer)).send(REQ) == expected


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"sid": ""}', b'{"sid": 42}', b"\xff"])
async def test_a_2xx_without_a_sid_may_have_been_sent(body: bytes) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(ScriptedPoster(reply(201, body))).send(REQ)
    assert caught.value.maybe_sent is True


async def test_a_twilio_error_is_a_rejection_with_its_code() -> None:
    answer = reply(400, '{"code": 21211, "message": "The \'To\' number is not valid.", "status": 400}')
    with pytest.raises(ProviderRejected) as caught:
        await provider(ScriptedPoster(answer)).send(REQ)
    assert (caught.value.code, caught.value.http_status) == (21211, 400)
    assert caught.value.message == "The 'To' number is not valid."


async def test_a_rejection_without_a_twilio_body_uses_the_http_status() -> None:
    with pytest.raises(ProviderRejected) as caught:
        await provider(ScriptedPoster(reply(422, "<html>nope</html>"))).send(REQ)
    assert caught.value.code == 422
    assert "HTTP 422" in caught.value.message


async def test_a_string_code_is_kept() -> None:
    with pytest.raises(ProviderRejected) as caught:
        await provider(ScriptedPoster(reply(400, '{"code": "E1", "message": "m"}'))).send(REQ)
    assert caught.value.code == "E1"


@pytest.mark.parametrize("status", [429, 503, 401, 403, 404])
async def test_refusals_that_are_not_the_messages_fault_are_unavailable_and_unsent(status: int) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(ScriptedPoster(reply(status, '{"code": 20429, "message": "slow down"}'))).send(REQ)
    assert caught.value.maybe_sent is False
    assert "20429" in caught.value.reason


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_5xx_may_have_been_sent(status: int) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(ScriptedPoster(reply(status))).send(REQ)
    assert caught.value.maybe_sent is True
    assert f"HTTP {status}" in caught.value.reason


# ---- the one safe retry -----------------------------------------------------------------------------------------


async def test_a_connect_failure_is_retried_once_and_may_succeed() -> None:
    poster = ScriptedPoster(ConnectFailed("refused"), CREATED)
    assert (await provider(poster).send(REQ)).sid == "SM1"
    assert len(poster.calls) == 2
    assert poster.calls[0] == poster.calls[1]


async def test_two_connect_failures_are_unavailable_and_unsent() -> None:
    poster = ScriptedPoster(ConnectFailed("refused"), ConnectFailed("refused"), CREATED)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(poster).send(REQ)
    assert caught.value.maybe_sent is False
    assert len(poster.calls) == 2


@pytest.mark.parametrize("script", [[ReplyLost("timeout")], [ConnectFailed("refused"), ReplyLost("reset")]])
async def test_a_lost_reply_may_have_been_sent_and_is_never_retried(script: list[Exception]) -> None:
    poster = ScriptedPoster(*script, CREATED)
    with pytest.raises(ProviderUnavailable) as caught:
        await provider(poster).send(REQ)
    assert caught.value.maybe_sent is True
    assert len(poster.calls) == len(script)


# ---- HttpxPoster ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def httpx_poster(handler: Callable[[httpx2.Request], httpx2.Response]) -> AsyncIterator[HttpxPoster]:
    poster = HttpxPoster(max_connections=4)
    await poster.aclose()  # swap its client for one on the mock transport
    poster._client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    try:
        yield poster
    finally:
        await poster.aclose()


async def test_httpx_poster_posts_a_form_with_basic_auth() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(201, json={"sid": "SM1"})

    async with httpx_poster(handler) as poster:
        fields = [("To", TO), ("Body", "a & b = c"), ("MediaUrl", "https://e.com/1"), ("MediaUrl", "https://e.com/2")]
        answer = await poster.post_form(URL, fields, ("AC123", "tok"), 3.0)
    assert answer == HttpReply(201, b'{"sid":"SM1"}')
    request = seen[0]
    assert (request.method, str(request.url)) == ("POST", URL)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    assert parse_qsl(request.content.decode()) == fields
    assert request.extensions["timeout"]["read"] == 3.0


async def test_httpx_poster_returns_error_statuses_as_replies() -> None:
    async with httpx_poster(lambda request: httpx2.Response(503, content=b"busy")) as poster:
        assert await poster.post_form(URL, [], ("a", "b"), 1.0) == HttpReply(503, b"busy")


@pytest.mark.parametrize("error", [httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout])
async def test_httpx_poster_maps_unsent_requests_to_connect_failed(error: type[httpx2.TransportError]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error("no connection", request=request)

    async with httpx_poster(handler) as poster:
        with pytest.raises(ConnectFailed, match=error.__name__):
            await poster.post_form(URL, [], ("a", "b"), 1.0)


@pytest.mark.parametrize(
    "error", [httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.ReadError, httpx2.RemoteProtocolError]
)
async def test_httpx_poster_maps_lost_replies_to_reply_lost(error: type[httpx2.TransportError]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error("lost", request=request)

    async with httpx_poster(handler) as poster:
        with pytest.raises(ReplyLost, match=error.__name__):
            await poster.post_form(URL, [], ("a", "b"), 1.0)


async def test_twilio_over_httpx_end_to_end_retries_a_refused_connection_once() -> None:
    attempts: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(201, json={"sid": "SM7", "status": "queued"})

    async with httpx_poster(handler) as poster:
        twilio = TwilioProvider(
            poster, base_url="https://api.twilio.test", account_sid="AC123", auth_token="t", from_number="+15005550006"
        )
        assert (await twilio.send(REQ)).sid == "SM7"
    assert len(attempts) == 2
