"""The SMS provider: Twilio's Messages API, over any HTTP client that can POST a form (the HttpPoster seam).

Both endpoints use this one client: the origin over httpx2 (HttpxPoster), the edge over the Workers fetch API.

    ProviderRejected      a definite refusal (bad number, blocked, ...): nothing was sent -> 422 provider_rejected
    ProviderUnavailable   the provider could not answer; `maybe_sent` says whether a message may have gone out
    ProviderLookupError   list_messages could not read the list (provider_lookup.py); find_unknown never raises

Unknown outcomes are looked up in Twilio's Messages list over the HttpGetter seam (`find_unknown`), matched by
provider_lookup.match_unknown.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode

from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.message import SendRequest
from smsfailover.core.provider_lookup import (
    LOOKUP_SKEW_S,
    FailureKind,
    LookupFailed,
    LookupOutcome,
    LookupResult,
    MessagePage,
    ProviderLookupError,
    ProviderMessage,
    match_unknown,
    parse_page,
)


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes


class ConnectFailed(Exception):
    """The request was never written (refused, DNS, TLS): the provider cannot have acted on it."""


class ReplyLost(Exception):
    """The request may have been written but no answer came (timeout, reset): the provider may have acted."""


class HttpPoster(Protocol):
    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        """POST `application/x-www-form-urlencoded` with Basic auth; raise ConnectFailed or ReplyLost."""
        ...


@runtime_checkable
class HttpGetter(Protocol):
    async def get(self, url: str, auth: tuple[str, str], timeout_s: float) -> HttpReply:
        """GET (accepting JSON) with Basic auth; raise ConnectFailed or ReplyLost, as post_form does."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderResult:
    sid: str
    status: str
    num_segments: int | None


class ProviderRejected(Exception):
    def __init__(self, code: int | str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


class ProviderUnavailable(Exception):
    def __init__(self, reason: str, *, maybe_sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_sent = maybe_sent


# Twilio answers these when it did not create the message and a retry may succeed later.
_RETRYABLE_REFUSALS = frozenset({429, 503})
# 401/403/404 mean our credentials or account are wrong: not this message's fault, and nothing was sent.
_OUR_CONFIGURATION = frozenset({401, 403, 404})

# A lookup's bounds: 5 pages of 200 is a thousand messages to one number inside one claim's window, far more than
# any real recipient gets; past that, or past the time budget, the lookup fails rather than guess.
LOOKUP_PAGE_SIZE = 200
LOOKUP_MAX_PAGES = 5
LOOKUP_TIME_BUDGET_S = 20.0
MAX_PAGE_SIZE = 1000  # Twilio's


class TwilioProvider:
    def __init__(
        self,
        poster: HttpPoster,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        timeout_s: float = 10.0,
        getter: HttpGetter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._poster = poster
        # The lookups' GET: the poster's own when it has one (HttpxPoster, the origin's AiohttpPoster).
        self._getter = getter if getter is not None else poster if isinstance(poster, HttpGetter) else None
        self._clock: Clock = clock or SystemClock()
        self._base_url = base_url.rstrip("/")
        self._url = f"{self._base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = (account_sid, auth_token)
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._timeout_s = timeout_s

    @property
    def configured(self) -> bool:
        return bool(self._auth[0] and self._auth[1] and (self._from_number or self._messaging_service_sid))

    def form(self, req: SendRequest, status_callback: str | None = None) -> list[tuple[str, str]]:
        fields = [("To", req.to)]
        if self._messaging_service_sid:
            fields.append(("MessagingServiceSid", self._messaging_service_sid))
        else:
            fields.append(("From", self._from_number or ""))
        if req.content:
            fields.append(("Body", req.content))
        fields.extend(("MediaUrl", url) for url in req.media_urls)
        if status_callback:
            fields.append(("StatusCallback", status_callback))
        return fields

    async def send(self, req: SendRequest, *, status_callback: str | None = None) -> ProviderResult:
        if not self.configured:
            raise ProviderUnavailable("the provider credentials or sender are not configured", maybe_sent=False)
        fields = self.form(req, status_callback)
        reply = await self._post_once_more_if_unsent(fields)
        return self._interpret(reply)

    async def _post_once_more_if_unsent(self, fields: list[tuple[str, str]]) -> HttpReply:
        """One retry, only when the first request was never written: the one retry that cannot double-send."""
        for attempt in range(2):
            try:
                return await self._poster.post_form(self._url, fields, self._auth, self._timeout_s)
            except ConnectFailed as exc:
                if attempt == 1:
                    raise ProviderUnavailable(f"could not connect to the provider: {exc}", maybe_sent=False) from exc
            except ReplyLost as exc:
                raise ProviderUnavailable(f"the provider did not answer: {exc}", maybe_sent=True) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _interpret(self, reply: HttpReply) -> ProviderResult:
        data = _json_object(reply.body)
        if 200 <= reply.status < 300:
            sid = data.get("sid")
            if not isinstance(sid, str) or not sid:
                raise ProviderUnavailable("the provider accepted the message but sent no sid", maybe_sent=True)
            return ProviderResult(sid, str(data.get("status") or "queued"), _int_or_none(data.get("num_segments")))
        raw_code = data.get("code")
        code: int | str = raw_code if isinstance(raw_code, int | str) else reply.status
        message = str(data.get("message") or f"the provider answered HTTP {reply.status}")
        if reply.status in _RETRYABLE_REFUSALS or reply.status in _OUR_CONFIGURATION:
            raise ProviderUnavailable(f"{message} (provider code {code})", maybe_sent=False)
        if 400 <= reply.status < 500:
            raise ProviderRejected(code, message, reply.status)
        # A 5xx other than 503 may come after the message was created: it may have been sent.
        raise ProviderUnavailable(f"{message} (HTTP {reply.status})", maybe_sent=True)

    # -- looking messages up (unknown outcomes) --

    async def list_messages(
        self,
        *,
        to: str,
        from_: str | None = None,
        date_sent: date | None = None,
        date_sent_after: date | None = None,
        date_sent_before: date | None = None,
        page_size: int = 50,
        max_pages: int = 1,
    ) -> MessagePage:
        """Twilio's Messages list to `to`, newest first, at most `max_pages` pages of `page_size` (<= 1000).

        The DateSent filters take UTC days (Twilio's YYYY-MM-DD; a datetime counts as its UTC day) and are
        inclusive; a message not sent yet (queued, or failed before sending) has no date_sent and matches none.
        The answer's `next_page_uri` is set when more pages remain. Raises ProviderLookupError.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE or max_pages < 1:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE} and max_pages at least 1")
        filters = [("To", to)]
        if from_:
            filters.append(("From", from_))
        for name, day in (("DateSent", date_sent), ("DateSent<", date_sent_before), ("DateSent>", date_sent_after)):
            if day is not None:
                filters.append((name, _utc_day(day)))
        url: str | None = self._list_url(filters, page_size)
        messages: list[ProviderMessage] = []
        pages = 0
        while url is not None and pages < max_pages:
            page = await self._read_page(url, self._timeout_s)
            pages += 1
            messages.extend(page.messages)
            url = self._next_url(page)
        return MessagePage(tuple(messages), None if url is None else url.removeprefix(self._base_url))

    async def find_unknown(
        self,
        *,
        to: str,
        body: str,
        window: tuple[float, float],
        skew_s: float = LOOKUP_SKEW_S,
        exclude_sids: Collection[str] = (),
        page_size: int = LOOKUP_PAGE_SIZE,
        max_pages: int = LOOKUP_MAX_PAGES,
        time_budget_s: float = LOOKUP_TIME_BUDGET_S,
    ) -> LookupResult:
        """Look up the message a claim may have created: Twilio's list to `to`, read newest first until the
        window's start (less the skew), then match_unknown on body, our sender and date_created in the window.

        `window` is (when the provider call began, when the claim's lease ended), epoch seconds; `body` is what was
        sent ("" for media alone). Bounded by `max_pages` and `time_budget_s`; never raises: a list that cannot be
        read, or a bound reached before the window's start, is LookupFailed.

        No DateSent filter: an unknown message may still be queued, or may have failed before sending, and then
        has no date_sent; reading newest first and stopping at the window narrows the search as well.
        A From filter narrows it when we send from a number; through a Messaging Service Twilio picks the number.
        """
        clock = self._clock
        started = clock.monotonic()

        def ended(outcome: LookupOutcome, pages: int = 0, scanned: int = 0) -> LookupResult:
            return LookupResult(outcome, clock.time(), pages, scanned)

        if self._getter is None:
            return ended(LookupFailed("not_configured", "the provider's HTTP client cannot GET: no lookups"))
        if not self.configured:
            return ended(LookupFailed("not_configured", "the provider credentials or sender are not configured"))
        window_start, window_end = window[0], max(window)  # an end before the start counts as the start
        oldest_wanted = window_start - skew_s
        filters = [("To", to)]
        if self._from_number and not self._messaging_service_sid:
            filters.append(("From", self._from_number))
        url: str | None = self._list_url(filters, min(max(page_size, 1), MAX_PAGE_SIZE))
        candidates: list[ProviderMessage] = []
        pages = 0
        while url is not None:
            remaining = time_budget_s - (clock.monotonic() - started)
            if remaining <= 0:
                reason = f"the lookup's time budget ({time_budget_s:g} s) ran out after {pages} pages"
                return ended(LookupFailed("timed_out", reason), pages, len(candidates))
            if pages >= max_pages:
                reason = f"more than {max_pages} pages of messages to this number inside the window"
                return ended(LookupFailed("too_many", reason), pages, len(candidates))
            try:
                page = await self._read_page(url, min(self._timeout_s, remaining))
            except ProviderLookupError as exc:
                return ended(LookupFailed.of(exc), pages, len(candidates))
            pages += 1
            candidates.extend(page.messages)
            reached_window_start = bool(page.messages) and _older_than(page.messages[-1], oldest_wanted)
            url = None if reached_window_start else self._next_url(page)
        match = match_unknown(
            candidates,
            body=body,
            from_number=self._from_number,
            messaging_service_sid=self._messaging_service_sid,
            window_start=window_start,
            window_end=window_end,
            skew_s=skew_s,
            to=to,
            exclude_sids=exclude_sids,
        )
        return ended(match, pages, len(candidates))

    def _list_url(self, filters: list[tuple[str, str]], page_size: int) -> str:
        return f"{self._url}?{urlencode([*filters, ('PageSize', str(page_size))])}"

    def _next_url(self, page: MessagePage) -> str | None:
        # Only a path on our own base URL: the answer cannot send our credentials anywhere else.
        uri = page.next_page_uri
        return f"{self._base_url}/{uri.lstrip('/')}" if uri and "://" not in uri else None

    async def _read_page(self, url: str, timeout_s: float) -> MessagePage:
        getter = self._getter
        if getter is None:
            raise ProviderLookupError("not_configured", "the provider's HTTP client cannot GET")
        try:
            reply = await getter.get(url, self._auth, timeout_s)
        except (ConnectFailed, ReplyLost) as exc:
            raise ProviderLookupError("unreachable", f"the provider did not answer: {exc}") from exc
        except Exception as exc:  # a lookup must not raise past its caller: any client failure is "unreachable"
            raise ProviderLookupError("unreachable", f"the provider could not be asked: {type(exc).__name__}") from exc
        if reply.status == 200:
            try:
                return parse_page(reply.body)
            except ValueError as exc:
                raise ProviderLookupError("bad_answer", str(exc), http_status=200) from exc
        data = _json_object(reply.body)
        message = str(data.get("message") or f"the provider answered HTTP {reply.status}")
        code = data.get("code", reply.status)
        kind: FailureKind = "refused" if reply.status in _OUR_CONFIGURATION else "provider_error"
        raise ProviderLookupError(kind, f"{message} (provider code {code})", http_status=reply.status)


def _utc_day(day: date) -> str:
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date() if day.tzinfo is not None else day.date()
    return day.isoformat()


def _older_than(message: ProviderMessage, when: float) -> bool:
    """Created and sent before `when`: every message after it in the newest-first list is older still."""
    latest = message.date_created if message.date_sent is None else max(message.date_created, message.date_sent)
    return latest < when


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


class HttpxPoster:
    """HttpPoster on one shared httpx2.AsyncClient (keep-alive pool); needs the `httpx` extra."""

    def __init__(self, *, max_connections: int = 64) -> None:
        import httpx2

        self._httpx = httpx2
        self._client = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        httpx2 = self._httpx
        try:
            response = await self._client.post(
                url,
                content=urlencode(list(fields)).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=auth,
                timeout=timeout_s,
            )
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        except httpx2.TransportError as exc:
            raise ReplyLost(type(exc).__name__) from exc
        return HttpReply(response.status_code, response.content)

    async def get(self, url: str, auth: tuple[str, str], timeout_s: float) -> HttpReply:
        httpx2 = self._httpx
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"}, auth=auth, timeout=timeout_s)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise ConnectFailed(type(exc).__name__) from exc
        except httpx2.TransportError as exc:
            raise ReplyLost(type(exc).__name__) from exc
        return HttpReply(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()
