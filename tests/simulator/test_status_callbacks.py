"""Status callbacks: Twilio-signed form posts to the StatusCallback URL as a message advances."""

from __future__ import annotations

import time
import uuid

from smsfailover.express_shim.simulator.signature import twilio_signature

from tests.simulator.kit import CallbackReceiver, Twilio


def _callback_answers(twilio: Twilio, sid: str, *, count: int, timeout_s: float = 10.0) -> list[object]:
    deadline = time.monotonic() + timeout_s
    while True:
        messages = twilio.received()["messages"]
        assert isinstance(messages, list)
        answers = [c["http_status"] for m in messages if m["sid"] == sid for c in m["callbacks"]]
        if len(answers) >= count or time.monotonic() >= deadline:
            return answers
        time.sleep(0.02)


def _send(twilio: Twilio, callbacks: CallbackReceiver, to: str) -> str:
    resp = twilio.create(To=to, Body=f"hi {uuid.uuid4().hex}", StatusCallback=callbacks.url("/status?x=1"))
    assert resp.status_code == 201, resp.text
    sid: str = resp.json()["sid"]
    return sid


def test_callbacks_advance_sent_then_delivered_and_are_signed(twilio: Twilio, callbacks: CallbackReceiver) -> None:
    sid = _send(twilio, callbacks, "+16266635938")

    got = callbacks.for_sid(sid, count=2)

    assert [c.params["MessageStatus"] for c in got] == ["sent", "delivered"]
    for callback in got:
        assert callback.url == callbacks.url("/status?x=1")
        assert callback.params["SmsStatus"] == callback.params["MessageStatus"]
        assert callback.params["AccountSid"] == twilio.secrets.twilio_account_sid
        assert callback.params["To"] == "+16266635938"
        expected = twilio_signature(callback.url, callback.params, twilio.secrets.twilio_auth_token)
        assert callback.signature == expected
    # The simulator notes each answer after the receiver has recorded the callback: wait for both notes.
    assert _callback_answers(twilio, sid, count=2) == [204, 204]


def test_a_designated_number_ends_undelivered_with_an_error_code(twilio: Twilio, callbacks: CallbackReceiver) -> None:
    sid = _send(twilio, callbacks, "+15005550010")

    got = callbacks.for_sid(sid, count=2)

    assert [c.params["MessageStatus"] for c in got] == ["sent", "undelivered"]
    assert got[-1].params["ErrorCode"] == "30003"
    assert twilio.fetch(sid).json()["error_code"] == 30003


def test_a_designated_number_fails_without_being_sent(twilio: Twilio, callbacks: CallbackReceiver) -> None:
    sid = _send(twilio, callbacks, "+15005550011")

    got = callbacks.for_sid(sid, count=1)

    assert [c.params["MessageStatus"] for c in got] == ["failed"]
    assert got[0].params["ErrorCode"] == "30008"
    assert twilio.fetch(sid).json()["status"] == "failed"


def test_a_messaging_service_send_goes_accepted_queued_sent_delivered(
    twilio: Twilio, callbacks: CallbackReceiver
) -> None:
    service = "MG" + "1" * 32
    resp = twilio.http.post(
        twilio.messages_path,
        data={
            "To": "+16266635938",
            "MessagingServiceSid": service,
            "Body": f"hi {uuid.uuid4().hex}",
            "StatusCallback": callbacks.url("/status"),
        },
    )
    assert resp.json()["status"] == "accepted"

    got = callbacks.for_sid(resp.json()["sid"], count=3)

    assert [c.params["MessageStatus"] for c in got] == ["queued", "sent", "delivered"]
    assert all(c.params["MessagingServiceSid"] == service for c in got)
    assert all("From" not in c.params for c in got)
