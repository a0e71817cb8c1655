"""Twilio's Messages list, `GET /2010-04-01/Accounts/{AccountSid}/Messages.json`: filters and newest-first pages.

Filters, each optional: `To`, `From`, `DateSent` (sent on that UTC day), `DateSent<` and `DateSent>` (Twilio's
inequality parameters: `DateSent<=2026-12-01` in a query string is the parameter `DateSent<` with the value
`2026-12-01`, so both are inclusive: sent on or before / on or after that instant). A value is a date
(`YYYY-MM-DD`, meaning its midnight UTC) or a UTC time (`YYYY-MM-DDTHH:MM:SSZ`, as the official client sends
every date). A message that was never sent (queued, or failed before sending) has no date_sent and no DateSent
filter matches it, as at Twilio.

Pages: `PageSize` (1..1000, default 50), `Page` (0-based) and `PageToken`: `PA<sid>` is the page after that
message, `PB<sid>` the page before it, which is what next_page_uri and previous_page_uri carry. Without a token
`Page` alone counts from the newest message. The answer has Twilio's keys and no others (the official client
takes the one key that is not paging metadata as the list).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

from smsfailover.express_shim.simulator.errors import TwilioError
from smsfailover.express_shim.simulator.store import SimMessage

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
INVALID_PARAMETER = 20001
# Twilio's order for the filters in the page URIs it gives.
FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")


@dataclass(frozen=True, slots=True)
class ListQuery:
    filters: tuple[tuple[str, str], ...]  # as given (non-empty values only), in FILTERS order
    to: str | None = None
    from_: str | None = None
    sent_on: date | None = None
    sent_before: float | None = None  # epoch seconds, inclusive
    sent_after: float | None = None  # epoch seconds, inclusive
    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 0
    page_token: str | None = None

    def admits(self, message: SimMessage) -> bool:
        if self.to is not None and message.to != self.to:
            return False
        if self.from_ is not None and message.from_ != self.from_:
            return False
        dated = self.sent_on is not None or self.sent_before is not None or self.sent_after is not None
        if not dated:
            return True
        if message.sent_at is None:
            return False
        sent = math.floor(message.sent_at)  # Twilio's dates have whole seconds
        return (
            (self.sent_on is None or datetime.fromtimestamp(sent, UTC).date() == self.sent_on)
            and (self.sent_before is None or sent <= self.sent_before)
            and (self.sent_after is None or sent >= self.sent_after)
        )


def parse_query(params: Mapping[str, str]) -> ListQuery:
    """The list's query parameters; TwilioError 400 for a value Twilio would refuse."""
    filters = tuple((name, params[name].strip()) for name in FILTERS if params.get(name, "").strip())
    given = dict(filters)
    token = params.get("PageToken") or None
    if token is not None and not (token.startswith(("PA", "PB")) and len(token) > 2):
        raise TwilioError(INVALID_PARAMETER, f"Invalid PageToken: {token!r}")
    return ListQuery(
        filters=filters,
        to=given.get("To"),
        from_=given.get("From"),
        sent_on=_instant("DateSent", given["DateSent"]).date() if "DateSent" in given else None,
        sent_before=_instant("DateSent<", given["DateSent<"]).timestamp() if "DateSent<" in given else None,
        sent_after=_instant("DateSent>", given["DateSent>"]).timestamp() if "DateSent>" in given else None,
        page_size=_whole("PageSize", params.get("PageSize"), DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE),
        page=_whole("Page", params.get("Page"), 0, low=0, high=None),
        page_token=token,
    )


def list_page(messages: Sequence[SimMessage], query: ListQuery, *, path: str) -> dict[str, object]:
    """One page of `messages` (newest first) as Twilio answers it."""
    matching = [m for m in messages if query.admits(m)]
    start = _offset(matching, query)
    stop = start + query.page_size
    if query.page_token is not None and query.page_token.startswith("PB"):
        stop, start = start, max(0, start - query.page_size)
    items = matching[start:stop]
    first_index = query.page * query.page_size  # Twilio's start/end count from the page number

    def uri(page: int, token: str | None = None) -> str:
        pairs = [*query.filters, ("PageSize", str(query.page_size)), ("Page", str(page))]
        if token is not None:
            pairs.append(("PageToken", token))
        return f"{path}?{urlencode(pairs)}"

    has_next = bool(items) and stop < len(matching)
    has_previous = bool(items) and start > 0 and query.page > 0
    return {
        "end": first_index + max(len(items) - 1, 0),
        "first_page_uri": uri(0),
        "messages": [m.twilio_resource() for m in items],
        "next_page_uri": uri(query.page + 1, "PA" + items[-1].sid) if has_next else None,
        "page": query.page,
        "page_size": query.page_size,
        "previous_page_uri": uri(query.page - 1, "PB" + items[0].sid) if has_previous else None,
        "start": first_index,
        "uri": uri(query.page, query.page_token),
    }


def _offset(matching: Sequence[SimMessage], query: ListQuery) -> int:
    """Where the page starts: after (PA) or before (PB) the token's message, else Page x PageSize."""
    if query.page_token is None:
        return query.page * query.page_size
    sid = query.page_token[2:]
    for index, message in enumerate(matching):
        if message.sid == sid:
            return index + 1 if query.page_token.startswith("PA") else index
    raise TwilioError(INVALID_PARAMETER, f"Invalid PageToken: {query.page_token!r}")


def _instant(name: str, value: str) -> datetime:
    try:
        if "T" in value:
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise TwilioError(INVALID_PARAMETER, f"Invalid {name}: {value!r} is not a date (YYYY-MM-DD)") from None


def _whole(name: str, value: str | None, default: int, *, low: int, high: int | None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f"{low} or more"
        raise TwilioError(INVALID_PARAMETER, f"Invalid {name}: {value!r} (must be a whole number, {bounds})")
    return number
