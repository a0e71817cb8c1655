"""core's TwilioProvider.find_unknown / list_messages against the real simulator process (HttpxPoster's GET)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from smsfailover.core.provider import HttpxPoster, TwilioProvider
from smsfailover.core.provider_lookup import Ambiguous, Found, LookupFailed, NotFound

from tests.simulator.kit import Twilio
from tests.support.fixtures import RunningSimulator

TO = "+16266635938"
SERVICE = "MG" + "0" * 32


@pytest.fixture
async def poster() -> AsyncIterator[HttpxPoster]:
    client = HttpxPoster(max_connections=4)
    yield client
    await client.aclose()


def _provider(simulator: RunningSimulator, poster: HttpxPoster, **overrides: str) -> TwilioProvider:
    secrets = simulator.secrets
    options = {"from_number": secrets.from_number, "auth_token": secrets.twilio_auth_token, **overrides}
    return TwilioProvider(
        poster,
        base_url=simulator.url,
        account_sid=secrets.twilio_account_sid,
        auth_token=options["auth_token"],
        from_number=options["from_number"] or None,
        messaging_service_sid=options.get("messaging_service_sid"),
        timeout_s=5.0,
    )


def _window() -> tuple[float, float]:
    now = time.time()
    return now - 5, now + 5


def _send(twilio: Twilio, body: str, **form: str) -> str:
    resp = twilio.create(To=TO, Body=body, **form)
    assert resp.status_code == 201, resp.text
    sid: str = resp.json()["sid"]
    return sid


async def test_the_one_message_sent_is_found_with_its_sid_and_status(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    body = f"code {uuid.uuid4().hex}"
    window = _window()
    sid = _send(twilio, body)
    _send(twilio, "something else")

    result = await _provider(simulator, poster).find_unknown(to=TO, body=body, window=window)

    assert isinstance(result.outcome, Found), result.describe()
    assert result.outcome.sid == sid
    assert result.outcome.status in {"queued", "sent", "delivered"}
    assert result.pages == 1


async def test_two_identical_messages_are_ambiguous(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    body = f"code {uuid.uuid4().hex}"
    window = _window()
    first, second = _send(twilio, body), _send(twilio, body)

    result = await _provider(simulator, poster).find_unknown(to=TO, body=body, window=window)

    assert result.outcome == Ambiguous((second, first))


async def test_a_message_never_created_is_not_found(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    _send(twilio, "an older text")

    result = await _provider(simulator, poster).find_unknown(to=TO, body="never sent", window=_window())

    assert result.outcome == NotFound()
    assert result.scanned == 1


async def test_the_same_body_outside_the_window_is_not_found(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    body = f"code {uuid.uuid4().hex}"
    _send(twilio, body)
    an_hour_ago = time.time() - 3600

    result = await _provider(simulator, poster).find_unknown(to=TO, body=body, window=(an_hour_ago, an_hour_ago + 30))

    assert result.outcome == NotFound()


async def test_a_messaging_service_send_is_found_by_its_service(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    body = f"code {uuid.uuid4().hex}"
    window = _window()
    sid = _send(twilio, body, From="", MessagingServiceSid=SERVICE)

    provider = _provider(simulator, poster, from_number="", messaging_service_sid=SERVICE)
    result = await provider.find_unknown(to=TO, body=body, window=window)

    assert isinstance(result.outcome, Found), result.describe()
    assert result.outcome.sid == sid


async def test_many_pages_are_read_until_the_message(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    body = f"code {uuid.uuid4().hex}"
    window = _window()
    sid = _send(twilio, body)
    for n in range(5):
        _send(twilio, f"later {n}")

    result = await _provider(simulator, poster).find_unknown(to=TO, body=body, window=window, page_size=2)

    assert isinstance(result.outcome, Found)
    assert result.outcome.sid == sid
    assert result.pages == 3


async def test_list_messages_pages_through_the_simulator(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    sids = [_send(twilio, f"text {n}") for n in range(3)]

    listing = await _provider(simulator, poster).list_messages(to=TO, page_size=2, max_pages=5)
    one_page = await _provider(simulator, poster).list_messages(to=TO, page_size=2)

    assert [m.sid for m in listing.messages] == sids[::-1]
    assert listing.next_page_uri is None
    assert [m.sid for m in one_page.messages] == sids[::-1][:2]
    assert one_page.next_page_uri is not None
    assert one_page.next_page_uri.startswith(twilio.messages_path + "?")


async def test_wrong_credentials_are_a_refused_lookup(
    twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster
) -> None:
    result = await _provider(simulator, poster, auth_token="wrong").find_unknown(to=TO, body="x", window=_window())

    assert result.outcome == LookupFailed("refused", "Authenticate (provider code 20003)", 401)


async def test_an_outage_is_a_failed_lookup(twilio: Twilio, simulator: RunningSimulator, poster: HttpxPoster) -> None:
    twilio.faults(outage="503")

    result = await _provider(simulator, poster).find_unknown(to=TO, body="x", window=_window())

    assert isinstance(result.outcome, LookupFailed)
    assert (result.outcome.kind, result.outcome.http_status) == ("provider_error", 503)
