"""Looking a message up at the provider when its outcome is unknown (CONTRACT §1.8, DESIGN.md "Unknown outcomes").

A claim whose provider call began but whose answer was lost has no sid to fetch. If Twilio created the message,
its Messages list, filtered by `To` and read newest first, holds it; `match_unknown` picks it out by what we sent:
the same body, our sender (our From number, or our Messaging Service), a creation time inside the claim's window.
Exactly one such message is the answer; none or several leave the key unknown (a wrong match would attach another
message's status and sid to this key, which is worse than saying we cannot tell).

    ProviderMessage      one message of the list, typed: the contract's status, dates in epoch seconds
    match_unknown(...)   pure: Found(message) | NotFound() | Ambiguous(sids)
    LookupFailed         the list could not be read (network, 401, 5xx, a bad answer, a bound reached)
    LookupResult         what TwilioProvider.find_unknown saw: one of the four, when, how much it read
    ProviderLookupError  what TwilioProvider.list_messages raises; find_unknown returns it as LookupFailed

Pure Python and no I/O: the HTTP side is TwilioProvider.list_messages / find_unknown (provider.py).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

# Twilio's statuses folded into the contract's: for a lookup, and for the origin's status callbacks
# (express_shim/delivery_status.py), since both are reports of the same record.
_CONTRACT_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "canceled": "failed",
    "undelivered": "undelivered",
}

# The window's slack on each side. Twilio's date_created has whole seconds; our host's clock and Twilio's differ
# (NTP keeps that well under a second, a VM resumed from a pause or a container without time sync can be off by
# tens of seconds); our request may reach Twilio a little after we gave up on it. A slack too tight turns a
# message that exists into "not found", and a later lookup cannot repair that; a wider one can only add
# candidates, which makes the answer "ambiguous" (the key stays unknown), never a wrong match, as long as the
# caller excludes sids its own records already hold for other keys (exclude_sids). A minute is far wider than any
# sane clock error and still far narrower than the gap between two identical texts to one number that are not
# the same logical message.
LOOKUP_SKEW_S = 60.0
# Trial accounts get this prefix on every body, in the message resource too.
TRIAL_PREFIX = "Sent from your Twilio trial account - "

FailureKind = Literal[
    "not_configured", "unreachable", "refused", "provider_error", "bad_answer", "too_many", "timed_out"
]


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    sid: str
    status: str | None  # queued | sent | delivered | failed | undelivered; None for a status we do not know
    provider_status: str  # Twilio's own word (accepted, sending, read, ...)
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    date_created: float  # epoch seconds
    date_sent: float | None  # None until sent (queued, or failed before sending)
    error_code: int | None

    @classmethod
    def from_twilio(cls, resource: Mapping[str, object]) -> ProviderMessage | None:
        """One message of Twilio's JSON; None when it lacks a sid or a readable date_created."""
        sid = resource.get("sid")
        created = _epoch(resource.get("date_created"))
        if not isinstance(sid, str) or not sid or created is None:
            return None
        provider_status = _text(resource.get("status")) or ""
        return cls(
            sid=sid,
            status=contract_status(provider_status),
            provider_status=provider_status,
            to=_text(resource.get("to")) or "",
            from_=_text(resource.get("from")),
            messaging_service_sid=_text(resource.get("messaging_service_sid")),
            body=_text(resource.get("body")) or "",
            date_created=created,
            date_sent=_epoch(resource.get("date_sent")),
            error_code=_int(resource.get("error_code")),
        )


def contract_status(provider_status: str) -> str | None:
    return _CONTRACT_STATUS.get(provider_status.strip().lower())


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: tuple[ProviderMessage, ...]
    next_page_uri: str | None  # relative to the API's base, as Twilio gives it; None on the last page


def parse_page(body: bytes) -> MessagePage:
    """A page of Twilio's Messages list; ValueError when it is not one (malformed messages are skipped)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the provider's message list is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError("the provider's answer has no `messages` list")
    parsed = (ProviderMessage.from_twilio(item) for item in data["messages"] if isinstance(item, dict))
    next_uri = data.get("next_page_uri")
    return MessagePage(
        tuple(m for m in parsed if m is not None), next_uri if isinstance(next_uri, str) and next_uri else None
    )


# ---- the match ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    message: ProviderMessage

    @property
    def sid(self) -> str:
        return self.message.sid

    @property
    def status(self) -> str | None:
        return self.message.status


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


@dataclass(frozen=True, slots=True)
class Ambiguous:
    sids: tuple[str, ...]  # newest first, as the list gave them


Match = Found | NotFound | Ambiguous


def match_unknown(
    candidates: Iterable[ProviderMessage],
    *,
    body: str,
    from_number: str | None,
    messaging_service_sid: str | None,
    window_start: float,
    window_end: float,
    skew_s: float = LOOKUP_SKEW_S,
    to: str | None = None,
    exclude_sids: Collection[str] = (),
) -> Match:
    """The one message that is ours: same body, our sender, created in [window_start - skew, window_end + skew].

    `window_start`/`window_end` are epoch seconds: when the provider call began, and the latest moment it could
    still have been acted on (the claim's lease end). `exclude_sids` are sids our records already give to other
    keys (e.g. the caller's resend under a new key): never this key's message.
    """
    if window_end < window_start:
        raise ValueError("the window ends before it starts")
    low, high = window_start - skew_s, window_end + skew_s
    seen: dict[str, ProviderMessage] = {}
    for message in candidates:
        if (
            message.sid not in seen
            and message.sid not in exclude_sids
            and (to is None or message.to == to)
            and low <= message.date_created <= high
            and _same_body(message.body, body)
            and _our_sender(message, from_number, messaging_service_sid)
        ):
            seen[message.sid] = message
    if not seen:
        return NotFound()
    if len(seen) == 1:
        return Found(next(iter(seen.values())))
    return Ambiguous(tuple(seen))


def _same_body(theirs: str, ours: str) -> bool:
    return theirs == ours or theirs == TRIAL_PREFIX + ours


def _our_sender(message: ProviderMessage, from_number: str | None, messaging_service_sid: str | None) -> bool:
    by_number = from_number is not None and message.from_ == from_number
    by_service = messaging_service_sid is not None and message.messaging_service_sid == messaging_service_sid
    return by_number or by_service


# ---- the lookup's result -----------------------------------------------------------------------------------------


class ProviderLookupError(Exception):
    """The provider's message list could not be read; `kind` says why, `http_status` what it answered."""

    def __init__(self, kind: FailureKind, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.kind: FailureKind = kind
        self.reason = reason
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class LookupFailed:
    kind: FailureKind
    reason: str
    http_status: int | None = None

    @classmethod
    def of(cls, exc: ProviderLookupError) -> LookupFailed:
        return cls(exc.kind, exc.reason, exc.http_status)


LookupOutcome = Found | NotFound | Ambiguous | LookupFailed


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What one lookup concluded. Found: resolve the key to its status and sid. NotFound and Ambiguous: the key
    stays unknown, marked so with `checked_at`. LookupFailed: nothing was learned; try again later."""

    outcome: LookupOutcome
    checked_at: float  # epoch seconds, when the lookup ended
    pages: int = 0  # list pages read
    scanned: int = 0  # messages read

    def describe(self) -> str:
        """The outcome in a line, for a mark on the message or a log event."""
        outcome = self.outcome
        when = datetime.fromtimestamp(self.checked_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(outcome, Found):
            return f"found at the provider as {outcome.sid} ({outcome.message.provider_status}), checked {when}"
        if isinstance(outcome, NotFound):
            return f"not found at the provider, checked {when}"
        if isinstance(outcome, Ambiguous):
            return f"ambiguous at the provider ({len(outcome.sids)} matches: {', '.join(outcome.sids)}), checked {when}"
        return f"lookup at the provider failed ({outcome.kind}: {outcome.reason}), at {when}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _epoch(value: object) -> float | None:
    """Twilio's RFC 2822 date (`Tue, 01 Dec 2026 17:00:00 +0000`) as epoch seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # "-0000" parses naive: UTC, per RFC 2822
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
