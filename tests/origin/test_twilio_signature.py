"""X-Twilio-Signature, checked against the example in Twilio's security documentation."""

from __future__ import annotations

from smsfailover.express_shim.delivery_status import contract_status, statuses_that_may_advance_to
from smsfailover.express_shim.twilio_signature import signature_is_valid, twilio_signature

# Twilio's documented example (https://www.twilio.com/docs/usage/security#validating-requests)
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
TOKEN = "12345"


def test_signature_matches_twilios_documented_example() -> None:
    assert twilio_signature(TOKEN, URL, PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_param_order_does_not_matter_and_tampering_does() -> None:
    good = twilio_signature(TOKEN, URL, PARAMS)
    assert signature_is_valid(TOKEN, URL, list(reversed(PARAMS)), good)
    assert not signature_is_valid(TOKEN, URL, [*PARAMS, ("Extra", "1")], good)
    assert not signature_is_valid(TOKEN, URL + "&x=1", PARAMS, good)
    assert not signature_is_valid("other", URL, PARAMS, good)
    assert not signature_is_valid(TOKEN, URL, PARAMS, "")
    assert not signature_is_valid("", URL, PARAMS, good)


def test_twilio_statuses_map_to_the_contract() -> None:
    assert contract_status("sending") == "sent"
    assert contract_status("read") == "delivered"
    assert contract_status("nonsense") is None


def test_status_only_moves_forward() -> None:
    assert set(statuses_that_may_advance_to("sent")) == {"unknown", "queued"}
    assert set(statuses_that_may_advance_to("delivered")) == {"unknown", "queued", "sent"}
    assert set(statuses_that_may_advance_to("failed")) == {"unknown", "queued", "sent"}
    assert statuses_that_may_advance_to("queued") == ["unknown"]
