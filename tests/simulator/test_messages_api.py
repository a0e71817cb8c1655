"""Twilio's Messages API as the simulator serves it, over real HTTP to a real process."""

from __future__ import annotations

import re
import time
import uuid
from email.utils import parsedate_to_datetime

import httpx2
import pytest

from tests.simulator.kit import Twilio

VALID_TO = "+16266635938"
SID = re.compile(r"^SM[0-9a-f]{32}$")


def _text() -> str:
    return f"hello {uuid.uuid4().hex}"


def test_create_answers_201_with_a_twilio_message_resource(twilio: Twilio) -> None:
    body = _text()

    resp = twilio.create(To=VALID_TO, Body=body)

    assert resp.status_code == 201, resp.text
    msg = resp.json()
    assert SID.match(msg["sid"])
    assert msg["status"] == "queued"
    assert msg["to"] == VALID_TO
    assert msg["from"] == twilio.secrets.from_number
    assert msg["body"] == body
    assert msg["num_segments"] == "1"
    assert msg["num_media"] == "0"
    assert msg["price"] is None
    assert msg["error_code"] is None
    assert msg["error_message"] is None
    assert msg["direction"] == "outbound-api"
    assert msg["account_sid"] == twilio.secrets.twilio_account_sid
    assert msg["uri"] == f"/2010-04-01/Accounts/{twilio.secrets.twilio_account_sid}/Messages/{msg['sid']}.json"
    created = parsedate_to_datetime(msg["date_created"])
    assert abs(created.timestamp() - time.time()) < 60
    assert msg["date_created"].endswith(" +0000")


def test_segments_and_media_are_counted(twilio: Twilio) -> None:
    resp = twilio.create(
        To=VALID_TO, Body="ж" * 71, MediaUrl=["https://example.com/a.jpg", "https://example.com/b.jpg"]
    )

    assert resp.status_code == 201, resp.text
    assert resp.json()["num_segments"] == "2"
    assert resp.json()["num_media"] == "2"


def test_a_messaging_service_send_is_accepted(twilio: Twilio) -> None:
    resp = twilio.http.post(
        twilio.messages_path, data={"To": VALID_TO, "MessagingServiceSid": "MG" + "0" * 32, "Body": _text()}
    )

    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "accepted"
    assert resp.json()["from"] is None


def test_fetch_returns_the_message_and_its_status_advances_to_delivered(twilio: Twilio) -> None:
    sid = twilio.create(To=VALID_TO, Body=_text()).json()["sid"]

    deadline = time.monotonic() + 10
    while (msg := twilio.fetch(sid).json())["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.02)

    assert msg["sid"] == sid
    assert msg["status"] == "delivered"
    assert msg["date_sent"] is not None


def test_fetch_of_an_unknown_message_is_404_20404(twilio: Twilio) -> None:
    resp = twilio.fetch("SM" + "0" * 32)

    assert resp.status_code == 404
    assert resp.json()["code"] == 20404
    assert resp.json()["status"] == 404


@pytest.mark.parametrize(
    "auth",
    [None, ("ACwrong", "token"), "right sid, wrong token"],
)
def test_bad_credentials_are_401_20003(twilio: Twilio, auth: object) -> None:
    if auth == "right sid, wrong token":
        auth = (twilio.secrets.twilio_account_sid, "nope")
    headers = {} if auth is not None else {"Authorization": ""}
    client_auth = auth if isinstance(auth, tuple) else None
    with httpx2.Client(base_url=str(twilio.http.base_url), auth=client_auth, headers=headers) as http:
        resp = http.post(twilio.messages_path, data={"To": VALID_TO, "From": "+15005550006", "Body": "x"})

    assert resp.status_code == 401
    assert resp.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert resp.headers["www-authenticate"].startswith("Basic")
    assert twilio.received()["count"] == 0


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "+1555"}, 21211),
        ({"To": "16266635938"}, 21211),
        ({"To": "+15005550001"}, 21211),
        ({"To": "+15005550002"}, 21612),
        ({"To": "+15005550003"}, 21408),
        ({"To": "+15005550004"}, 21610),
        ({"To": "+15005550009"}, 21614),
        ({"To": ""}, 21604),
        ({"From": "+15005550001"}, 21212),
        ({"From": "+15005550007"}, 21606),
        ({"From": "+15005550008"}, 21611),
        ({"From": "not a sender!"}, 21212),
        ({"From": ""}, 21603),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"MediaUrl": ["https://example.com/x.jpg"] * 11}, 21623),
        ({"MediaUrl": "ftp://example.com/x.jpg"}, 21620),
        ({"StatusCallback": "not a url"}, 21609),
    ],
)
def test_invalid_sends_are_rejected_as_twilio_does(twilio: Twilio, form: dict[str, str], code: int) -> None:
    resp = twilio.create(**{"To": VALID_TO, "Body": _text(), **form})

    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert error["code"] == code
    assert error["status"] == 400
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert error["message"]
    assert twilio.received()["count"] == 0


def test_an_unknown_route_answers_in_twilios_error_shape(twilio: Twilio) -> None:
    resp = twilio.http.get("/2010-04-01/Nope.json")

    assert resp.status_code == 404
    assert resp.json()["code"] == 20404


def test_a_malformed_form_is_400_in_twilios_shape(twilio: Twilio) -> None:
    resp = twilio.http.post(
        twilio.messages_path,
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )

    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == 20001
    assert resp.json()["status"] == 400
    assert twilio.received()["count"] == 0


def test_a_wrong_method_is_405_in_twilios_shape(twilio: Twilio) -> None:
    resp = twilio.http.put(twilio.messages_path)

    assert resp.status_code == 405
    assert resp.json()["code"] == 20004
