"""The official `twilio` Python client against the simulator: create, fetch, and the Messages list with its
filters and paging (list, stream over several pages, page by page), as the client speaks to Twilio itself."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from tests.simulator.kit import Twilio
from tests.support.fixtures import RunningSimulator

TO = "+16266635938"
OTHER_TO = "+16266635939"
OTHER_FROM = "+16266635940"


@pytest.fixture
def client(simulator: RunningSimulator, twilio: Twilio) -> Any:
    """The official client, pointed at the simulator instead of api.twilio.com (the `twilio` fixture clears it)."""
    secrets = simulator.secrets
    official = Client(secrets.twilio_account_sid, secrets.twilio_auth_token)
    official.api.base_url = simulator.url
    return official


def _text() -> str:
    return f"hello {uuid.uuid4().hex}"


def _delivered(client: Any, sid: str) -> Any:
    deadline = time.monotonic() + 10
    while (message := client.messages(sid).fetch()).status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert message.status == "delivered"
    return message


def test_create_and_fetch_through_the_official_client(client: Any) -> None:
    body = _text()

    created = client.messages.create(to=TO, from_="+15005550006", body=body)
    fetched = _delivered(client, created.sid)

    assert created.status == "queued"
    assert (fetched.sid, fetched.to, fetched.from_, fetched.body) == (created.sid, TO, "+15005550006", body)
    assert isinstance(fetched.date_created, datetime)
    assert fetched.date_created.tzinfo is not None
    assert fetched.date_sent >= fetched.date_created - timedelta(seconds=1)
    assert fetched.num_segments == "1"


def test_list_with_a_limit_is_the_newest_messages_to_that_number(client: Any) -> None:
    sids = [client.messages.create(to=TO, from_="+15005550006", body=_text()).sid for _ in range(4)]
    client.messages.create(to=OTHER_TO, from_="+15005550006", body=_text())

    listed = client.messages.list(to=TO, limit=3)

    assert [m.sid for m in listed] == sids[::-1][:3]
    assert all(m.to == TO for m in listed)


def test_stream_follows_next_page_uri_over_several_pages(client: Any) -> None:
    sids = [client.messages.create(to=TO, from_="+15005550006", body=_text()).sid for _ in range(7)]

    streamed = [m.sid for m in client.messages.stream(to=TO, page_size=2)]
    pages = [client.messages.page(to=TO, page_size=2)]
    while (following := pages[-1].next_page()) is not None:
        pages.append(following)

    assert streamed == sids[::-1]
    assert [len(list(page)) for page in pages] == [2, 2, 2, 1]
    assert [m.sid for m in client.messages.stream(to=TO, page_size=2, limit=5)] == sids[::-1][:5]


def test_from_filters_the_list(client: Any) -> None:
    ours = client.messages.create(to=TO, from_="+15005550006", body=_text()).sid
    theirs = client.messages.create(to=TO, from_=OTHER_FROM, body=_text()).sid

    assert [m.sid for m in client.messages.list(to=TO, from_=OTHER_FROM)] == [theirs]
    assert [m.sid for m in client.messages.list(from_="+15005550006")] == [ours]


def test_date_sent_filters_as_the_client_sends_them(client: Any) -> None:
    sent = _delivered(client, client.messages.create(to=TO, from_="+15005550006", body=_text()).sid)
    at = sent.date_sent.astimezone(UTC)

    assert [m.sid for m in client.messages.list(to=TO, date_sent_after=at - timedelta(minutes=1))] == [sent.sid]
    assert client.messages.list(to=TO, date_sent_after=at + timedelta(minutes=1)) == []
    assert [m.sid for m in client.messages.list(to=TO, date_sent_before=at + timedelta(minutes=1))] == [sent.sid]
    assert [m.sid for m in client.messages.list(to=TO, date_sent=at)] == [sent.sid]
    assert client.messages.list(to=TO, date_sent=at - timedelta(days=1)) == []


def test_a_wrong_token_is_a_twilio_rest_exception(simulator: RunningSimulator, twilio: Twilio) -> None:
    official = Client(simulator.secrets.twilio_account_sid, "wrong")
    official.api.base_url = simulator.url

    with pytest.raises(TwilioRestException) as caught:
        official.messages.create(to=TO, from_="+15005550006", body=_text())
    with pytest.raises(TwilioException, match="Unable to fetch page"):  # how the client reports a list's 401
        official.messages.list(to=TO, limit=1)

    assert (caught.value.status, caught.value.code) == (401, 20003)
