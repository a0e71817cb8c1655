from __future__ import annotations

from smsfailover.express_shim.simulator.signature import twilio_signature


def test_signature_matches_twilios_published_example() -> None:
    # The example Twilio's helper libraries test their RequestValidator with.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_depends_on_the_token_and_every_parameter() -> None:
    base = twilio_signature("http://x/cb", {"A": "1", "B": "2"}, "t")

    assert twilio_signature("http://x/cb", {"B": "2", "A": "1"}, "t") == base  # order of the form is irrelevant
    assert twilio_signature("http://x/cb", {"A": "1", "B": "3"}, "t") != base
    assert twilio_signature("http://x/cb", {"A": "1", "B": "2"}, "u") != base
