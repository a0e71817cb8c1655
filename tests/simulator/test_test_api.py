"""The simulator's own routes: what it received (with duplicates) and injected faults."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import httpx2
import pytest

from tests.simulator.kit import Twilio

VALID_TO = "+16266635938"


def _text() -> str:
    return f"hello {uuid.uuid4().hex}"


def test_received_lists_every_message_with_counts_and_duplicates(twilio: Twilio) -> None:
    once, twice = _text(), _text()
    for body in (once, twice, twice):
        assert twilio.create(To=VALID_TO, Body=body).status_code == 201
    assert twilio.create(To="+447911123456", Body=twice).status_code == 201  # another recipient: not a duplicate

    listing = twilio.received()

    assert listing["count"] == 4
    assert listing["duplicates"] == 1
    assert {"to": VALID_TO, "body": twice, "count": 2} in listing["by_to_and_body"]  # type: ignore[operator]
    messages = listing["messages"]
    assert isinstance(messages, list)
    assert [m["body"] for m in messages] == [once, twice, twice, twice]
    assert [m["same_to_and_body"] for m in messages] == [1, 2, 2, 1]


def test_delete_clears_what_was_received(twilio: Twilio) -> None:
    twilio.create(To=VALID_TO, Body=_text())

    cleared = twilio.http.delete("/_sim/messages").json()

    assert cleared == {"cleared": 1}
    assert twilio.received()["count"] == 0


def test_a_fixed_status_answers_every_request_and_records_nothing(twilio: Twilio) -> None:
    twilio.faults(status=503)

    resp = twilio.create(To=VALID_TO, Body=_text())

    assert resp.status_code == 503
    assert resp.json()["code"] == 20503
    assert twilio.received()["count"] == 0
    assert twilio.http.get("/_sim/faults").json()["faults"]["status"] == 503


def test_a_reject_code_refuses_sends_with_that_twilio_code(twilio: Twilio) -> None:
    twilio.faults(reject_code=21610)

    resp = twilio.create(To=VALID_TO, Body=_text())

    assert resp.status_code == 400
    assert resp.json()["code"] == 21610
    assert twilio.received()["count"] == 0


def test_an_error_rate_is_seeded_and_repeats_exactly(twilio: Twilio) -> None:
    def run() -> list[int]:
        twilio.faults(seed=7, status=500, rate=0.5)
        return [twilio.create(To=VALID_TO, Body=_text()).status_code for _ in range(20)]

    first = run()

    assert run() == first
    assert set(first) == {201, 500}
    assert twilio.received()["count"] == 2 * first.count(201)


def test_latency_records_the_message_first_then_answers_late(twilio: Twilio) -> None:
    body = _text()
    twilio.faults(latency_ms=2500)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(twilio.create, To=VALID_TO, Body=body)
        deadline = time.monotonic() + 5
        while twilio.received()["count"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen_while_pending = not pending.done()
        resp = pending.result(timeout=10)

    assert seen_while_pending
    assert resp.status_code == 201
    assert time.monotonic() - started >= 2.5
    assert twilio.received()["count"] == 1


def test_slow_after_accept_delays_only_creates(twilio: Twilio) -> None:
    twilio.faults(slow_after_accept_ms=2500)
    started = time.monotonic()
    sid = twilio.create(To=VALID_TO, Body=_text()).json()["sid"]
    create_s = time.monotonic() - started

    started = time.monotonic()
    assert twilio.fetch(sid).status_code == 200
    fetch_s = time.monotonic() - started

    assert create_s >= 2.5
    assert fetch_s < 2.0  # not delayed (a loaded machine is slow, but not 2.5 s slow)


def test_an_outage_can_reset_connections(twilio: Twilio) -> None:
    twilio.faults(outage="reset")

    with pytest.raises(httpx2.TransportError):
        twilio.create(To=VALID_TO, Body=_text())

    assert twilio.received()["count"] == 0  # the test routes keep working through the outage


def test_an_outage_can_answer_503(twilio: Twilio) -> None:
    twilio.faults(outage="503")

    resp = twilio.create(To=VALID_TO, Body=_text())

    assert resp.status_code == 503
    assert resp.json()["code"] == 20503


def test_delete_faults_restores_normal_service(twilio: Twilio) -> None:
    twilio.faults(outage="503")

    twilio.http.delete("/_sim/faults").raise_for_status()

    assert twilio.create(To=VALID_TO, Body=_text()).status_code == 201


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (b"{nope", 400, None),
        (b"[1]", 400, None),
        (b'{"latency_ms": -5}', 422, "latency_ms"),
        (b'{"flood": true}', 422, "flood"),
    ],
)
def test_bad_fault_plans_get_the_error_envelope(twilio: Twilio, payload: bytes, status: int, field: str | None) -> None:
    resp = twilio.http.post("/_sim/faults", content=payload, headers={"Content-Type": "application/json"})

    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] in {"invalid_json", "invalid_fault"}
    assert error["message"]
    assert error.get("field") == field
