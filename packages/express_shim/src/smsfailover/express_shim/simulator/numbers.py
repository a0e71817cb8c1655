"""Which numbers the simulator accepts, modelled on Twilio's test-credential "magic numbers".

To:   +15005550001 invalid (21211), +15005550002 cannot route (21612), +15005550003 no international
      permission (21408), +15005550004 blocked (21610), +15005550009 not SMS-capable (21614).
From: +15005550001 invalid (21212), +15005550007 not owned by the account (21606), +15005550008 queue
      full (21611); +15005550006 is the usual valid sender.
Delivery (the simulator's own): +15005550010 ends `undelivered` (30003), +15005550011 ends `failed` (30008);
every other accepted number ends `delivered`.
Any other To must be a valid number in E.164 (libphonenumber's metadata), as Twilio checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from smsfailover.express_shim.simulator.errors import TwilioError

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")

MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: +15005550002, is not currently reachable using the 'From' phone number via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (
        21212,
        "The 'From' number +15005550001 is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
    "+15005550007": (
        21606,
        "The From phone number +15005550007 is not a valid, SMS-capable inbound phone "
        "number or short code for your account.",
    ),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages"),
}


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    status: str  # delivered | undelivered | failed
    error_code: int | None = None
    error_message: str | None = None


DELIVERED = DeliveryOutcome("delivered")
DESIGNATED_OUTCOMES = {
    "+15005550010": DeliveryOutcome("undelivered", 30003, "Unreachable destination handset"),
    "+15005550011": DeliveryOutcome("failed", 30008, "Unknown error"),
}


def outcome_for(to: str) -> DeliveryOutcome:
    return DESIGNATED_OUTCOMES.get(to, DELIVERED)


def _is_valid_number(number: str) -> bool:
    if not E164.match(number):
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def check_to(to: str) -> None:
    if not to:
        raise TwilioError(21604, "A 'To' phone number is required.")
    if to in MAGIC_TO:
        raise TwilioError(*MAGIC_TO[to])
    if to in DESIGNATED_OUTCOMES:
        return
    if not _is_valid_number(to):
        raise TwilioError(21211, f"The 'To' number {to} is not a valid phone number.")


def check_sender(from_: str, messaging_service_sid: str) -> None:
    if not from_ and not messaging_service_sid:
        raise TwilioError(21603, "A 'From' phone number is required.")
    if messaging_service_sid and not MESSAGING_SERVICE_SID.match(messaging_service_sid):
        raise TwilioError(21701, f"The Messaging Service Sid {messaging_service_sid} is invalid.")
    if not from_:
        return
    if from_ in MAGIC_FROM:
        raise TwilioError(*MAGIC_FROM[from_])
    valid = _is_valid_number(from_) if from_.startswith("+") else bool(ALPHANUMERIC_SENDER.match(from_))
    if not valid:
        raise TwilioError(
            21212,
            f"The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID.",
        )
