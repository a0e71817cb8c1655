"""The simulator's Messages list (`GET .../Messages.json`) over real HTTP: Twilio's page shape, paging, filters."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from tests.simulator.kit import Twilio

TO = "+16266635938"
OTHER_TO = "+16266635939"
OTHER_FROM = "+16266635940"
FAILS = "+15005550011"  # ends `failed` without ever being sent: no date_sent
PAGE_KEYS = {
    "end",
    "first_page_uri",
    "messages",
    "next_page_uri",
    "page",
    "page_size",
    "previous_page_uri",
    "start",
    "uri",
}


def _send(twilio: Twilio, to: str = TO, **form: str) -> str:
    resp = twilio.create(To=to, Body=form.pop("Body", f"hello {uuid.uuid4().hex}"), **form)
    assert resp.status_code == 201, resp.text
    sid: str = resp.json()["sid"]
    return sid


def _settled(twilio: Twilio, sid: str, status: str) -> dict[str, object]:
    """Wait (bounded) for the simulator's background status steps to reach `status`."""
    deadline = time.monotonic() + 10
    while (msg := twilio.fetch(sid).json())["status"] != status and time.monotonic() < deadline:
        time.sleep(0.02)
    assert msg["status"] == status
    return dict(msg)


def _list(twilio: Twilio, **params: str) -> httpx2.Response:
    return twilio.http.get(twilio.messages_path, params=params)


def _follow(twilio: Twilio, uri: str) -> dict[str, object]:
    resp = twilio.http.get(uri)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def _sids(page: dict[str, object]) -> list[str]:
    messages = page["messages"]
    assert isinstance(messages, list)
    return [m["sid"] for m in messages]


def test_the_list_is_newest_first_in_twilios_page_shape(twilio: Twilio) -> None:
    sids = [_send(twilio) for _ in range(3)]

    resp = _list(twilio, To=TO, PageSize="2")

    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert set(page) == PAGE_KEYS
    assert _sids(page) == [sids[2], sids[1]]
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    path = twilio.messages_path
    assert page["uri"] == f"{path}?To=%2B16266635938&PageSize=2&Page=0"
    assert page["first_page_uri"] == f"{path}?To=%2B16266635938&PageSize=2&Page=0"
    assert page["next_page_uri"] == f"{path}?To=%2B16266635938&PageSize=2&Page=1&PageToken=PA{sids[1]}"
    assert page["previous_page_uri"] is None
    listed, fetched = page["messages"][0], twilio.fetch(sids[2]).json()
    assert set(listed) == set(fetched)  # each message in the same shape as a fetch gives it
    for field in ("sid", "account_sid", "to", "from", "body", "date_created", "num_segments", "direction", "uri"):
        assert listed[field] == fetched[field]


def test_next_and_previous_page_uris_walk_the_list(twilio: Twilio) -> None:
    sids = [_send(twilio) for _ in range(5)][::-1]  # newest first

    first = _list(twilio, To=TO, PageSize="2").json()
    second = _follow(twilio, str(first["next_page_uri"]))
    third = _follow(twilio, str(second["next_page_uri"]))
    back = _follow(twilio, str(third["previous_page_uri"]))

    assert [_sids(first), _sids(second), _sids(third)] == [sids[0:2], sids[2:4], sids[4:5]]
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    assert (third["page"], third["start"], third["end"]) == (2, 4, 4)
    assert third["next_page_uri"] is None
    assert _sids(back) == sids[2:4]
    assert back["page"] == 1
    assert dict(parse_qsl(urlsplit(str(third["previous_page_uri"])).query))["PageToken"] == f"PB{sids[4]}"


def test_page_without_a_token_counts_from_the_newest(twilio: Twilio) -> None:
    sids = [_send(twilio) for _ in range(3)][::-1]

    page = _list(twilio, To=TO, PageSize="1", Page="1").json()

    assert _sids(page) == [sids[1]]
    assert (page["start"], page["end"]) == (1, 1)


def test_page_size_defaults_to_50_and_may_be_1000(twilio: Twilio) -> None:
    assert _list(twilio).json()["page_size"] == 50
    assert _list(twilio, PageSize="1000").json()["page_size"] == 1000
    empty = _list(twilio, To=TO).json()
    assert (empty["messages"], empty["start"], empty["end"], empty["next_page_uri"]) == ([], 0, 0, None)


def test_to_and_from_filter_the_list(twilio: Twilio) -> None:
    ours = _send(twilio)
    elsewhere = _send(twilio, OTHER_TO)
    other_sender = _send(twilio, From=OTHER_FROM)
    service = _send(twilio, From="", MessagingServiceSid="MG" + "0" * 32)

    assert _sids(_list(twilio, To=TO).json()) == [service, other_sender, ours]
    assert _sids(_list(twilio, To=OTHER_TO).json()) == [elsewhere]
    assert _sids(_list(twilio, To=TO, From=OTHER_FROM).json()) == [other_sender]
    assert _sids(_list(twilio, From=twilio.secrets.from_number).json()) == [elsewhere, ours]
    assert _sids(_list(twilio).json()) == [service, other_sender, elsewhere, ours]
    assert _sids(_list(twilio, To="").json()) == [service, other_sender, elsewhere, ours]  # empty is no filter


def test_date_sent_filters_match_sent_messages_only(twilio: Twilio) -> None:
    sent = _send(twilio)
    never_sent = _send(twilio, FAILS)
    sent_at = parsedate_to_datetime(str(_settled(twilio, sent, "delivered")["date_sent"]))
    assert _settled(twilio, never_sent, "failed")["date_sent"] is None
    day = sent_at.date()
    before, after = (day - timedelta(days=1)).isoformat(), (day + timedelta(days=1)).isoformat()
    moment = sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def listed(**params: str) -> list[str]:
        resp = _list(twilio, **params)
        assert resp.status_code == 200, resp.text
        return _sids(resp.json())

    assert listed() == [never_sent, sent]
    assert listed(DateSent=day.isoformat()) == [sent]
    assert listed(DateSent=before) == []
    assert listed(**{"DateSent>": day.isoformat()}) == [sent]
    assert listed(**{"DateSent>": after}) == []
    assert listed(**{"DateSent<": after}) == [sent]
    assert listed(**{"DateSent<": before}) == []
    assert listed(**{"DateSent>": moment, "DateSent<": moment}) == [sent]  # a UTC time: inclusive, to the second
    later = (sent_at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(**{"DateSent>": later}) == []
    assert listed(DateSent=moment) == [sent]  # an exact DateSent is the day, whatever the time


def test_the_inequality_parameters_arrive_url_encoded_or_not(twilio: Twilio) -> None:
    sent = _send(twilio)
    day = parsedate_to_datetime(str(_settled(twilio, sent, "delivered")["date_sent"])).date().isoformat()

    encoded = twilio.http.get(f"{twilio.messages_path}?DateSent%3E={day}&DateSent%3C={day}T23:59:59Z")
    page = encoded.json()

    assert _sids(page) == [sent]
    assert page["uri"] == f"{twilio.messages_path}?DateSent%3C={day}T23%3A59%3A59Z&DateSent%3E={day}&PageSize=50&Page=0"


@pytest.mark.parametrize(
    "params",
    [
        {"PageSize": "0"},
        {"PageSize": "1001"},
        {"PageSize": "ten"},
        {"Page": "-1"},
        {"DateSent": "yesterday"},
        {"DateSent>": "2026-13-01"},
        {"PageToken": "nope"},
        {"PageToken": "PASM" + "0" * 32},
    ],
)
def test_bad_parameters_are_400_in_twilios_shape(twilio: Twilio, params: dict[str, str]) -> None:
    resp = _list(twilio, **params)

    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == 20001
    assert resp.json()["status"] == 400
    assert resp.json()["message"]


def test_the_list_needs_basic_auth(twilio: Twilio) -> None:
    _send(twilio)
    with httpx2.Client(base_url=str(twilio.http.base_url), auth=(twilio.secrets.twilio_account_sid, "nope")) as http:
        resp = http.get(twilio.messages_path)

    assert resp.status_code == 401
    assert resp.json()["code"] == 20003


def test_the_list_obeys_the_fault_plan(twilio: Twilio) -> None:
    twilio.faults(outage="503")
    assert _list(twilio).status_code == 503
