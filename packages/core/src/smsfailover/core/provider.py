"""The SMS provider: Twilio's Messages API, over any HTTP client that can POST a form (the HttpPoster seam).

Both endpoints use this one client: the origin over httpx2 (HttpxPoster), the edge over the Workers fetch API.

    ProviderRejected      a definite refusal (bad number, blocked, ...): nothing was sent -> 422 provider_rejected
    ProviderUnavailable   the provider could not answer; `maybe_sent` says whether a message may have gone out
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from smsfailover.core.message import SendRequest


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
    ) -> None:
        self._poster = poster
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
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

    async def aclose(self) -> None:
        await self._client.aclose()
