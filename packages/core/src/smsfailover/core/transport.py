"""How the router talks HTTP to an endpoint: a small protocol, and one implementation on httpx2.

    TransportError                 the endpoint gave no HTTP answer (the router treats it like a 5xx)
      ├── TransportTimeout         no answer within the timeout (it may still have acted on the request)
      ├── TransportLost            the connection broke after the request went out (it may have acted on it)
      └── TransportConnectError    could not connect: the request never reached the endpoint

An HTTP answer of any status is a `TransportReply`, never an exception: deciding what a status means is the
router's job. `HttpxTransport` imports httpx2 only when built, so `smsfailover.core` imports without it
(the `httpx` extra), e.g. under Pyodide where a test or the worker supplies another transport.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx2

USER_AGENT = "smsfailover-core/0.1"


class TransportError(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason} ({url})")
        self.url = url
        self.reason = reason


class TransportTimeout(TransportError):
    pass


class TransportConnectError(TransportError):
    pass


class TransportLost(TransportError):
    pass


@dataclass(frozen=True, slots=True)
class TransportReply:
    status: int
    json: dict[str, Any] | None  # None when the body was not a JSON object
    headers: Mapping[str, str] = field(default_factory=dict)  # read with lower-case names (httpx2's are case-blind)

    @property
    def error_code(self) -> str | None:
        error = (self.json or {}).get("error")
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else None

    def retry_after_s(self, default: float) -> float:
        try:
            return max(0.0, float(self.headers.get("retry-after", default)))
        except ValueError:
            return default


class EndpointTransport(Protocol):
    async def post_message(
        self,
        base_url: str,
        body: Mapping[str, object],
        *,
        token: str,
        idempotency_key: str,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> TransportReply:
        """`headers`: more request headers (the router's failover reason on an edge POST)."""
        ...

    async def get_message_by_key(
        self, base_url: str, idempotency_key: str, *, token: str, timeout_s: float
    ) -> TransportReply: ...

    async def get_json(self, url: str, *, token: str | None, timeout_s: float) -> TransportReply: ...

    async def patch_json(
        self, url: str, body: Mapping[str, object], *, token: str, timeout_s: float
    ) -> TransportReply: ...

    async def post_json(
        self, url: str, body: Mapping[str, object], *, token: str, timeout_s: float
    ) -> TransportReply: ...

    async def aclose(self) -> None: ...


def messages_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/v1/messages"


def message_by_key_url(base_url: str, idempotency_key: str) -> str:
    return messages_url(base_url) + "?" + urllib.parse.urlencode({"idempotency_key": idempotency_key})


class HttpxTransport:
    """One httpx2.AsyncClient (one keep-alive pool) per transport; pass `transport=` for tests."""

    def __init__(self, *, transport: httpx2.AsyncBaseTransport | None = None, max_connections: int = 100) -> None:
        import httpx2

        self._httpx = httpx2
        self._client = httpx2.AsyncClient(
            transport=transport,
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )
        self._timeouts: dict[float, httpx2.Timeout] = {}

    async def post_message(
        self,
        base_url: str,
        body: Mapping[str, object],
        *,
        token: str,
        idempotency_key: str,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> TransportReply:
        sent = {"authorization": f"Bearer {token}", "idempotency-key": idempotency_key}
        if headers:
            sent.update(headers)
        return await self._request("POST", messages_url(base_url), sent, dict(body), timeout_s)

    async def get_message_by_key(
        self, base_url: str, idempotency_key: str, *, token: str, timeout_s: float
    ) -> TransportReply:
        url = message_by_key_url(base_url, idempotency_key)
        return await self._request("GET", url, {"authorization": f"Bearer {token}"}, None, timeout_s)

    async def get_json(self, url: str, *, token: str | None, timeout_s: float) -> TransportReply:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self._request("GET", url, headers, None, timeout_s)

    async def patch_json(self, url: str, body: Mapping[str, object], *, token: str, timeout_s: float) -> TransportReply:
        return await self._request("PATCH", url, {"authorization": f"Bearer {token}"}, dict(body), timeout_s)

    async def post_json(self, url: str, body: Mapping[str, object], *, token: str, timeout_s: float) -> TransportReply:
        return await self._request("POST", url, {"authorization": f"Bearer {token}"}, dict(body), timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: dict[str, object] | None,
        timeout_s: float,
    ) -> TransportReply:
        httpx2 = self._httpx
        try:
            response = await self._client.request(
                method, url, headers=headers, json=body, timeout=self._timeout(timeout_s)
            )
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise TransportConnectError(url, f"could not connect: {type(exc).__name__}") from exc
        except httpx2.TimeoutException as exc:
            raise TransportTimeout(url, f"no answer within {timeout_s:g} s") from exc
        except httpx2.TransportError as exc:  # written, then the connection broke: the endpoint may have acted
            raise TransportLost(url, f"connection lost: {type(exc).__name__}") from exc
        return TransportReply(response.status_code, _json_object(response.content), response.headers)

    def _timeout(self, seconds: float) -> httpx2.Timeout:
        """One Timeout object per value: the router asks for the same few timeouts on every send."""
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            if len(self._timeouts) > _TIMEOUTS_KEPT:
                self._timeouts.clear()  # deadline-clipped values are all different: keep the cache small
            timeout = self._timeouts[seconds] = self._httpx.Timeout(seconds)
        return timeout


_TIMEOUTS_KEPT = 64


def _json_object(content: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; JSON is UTF-8 (RFC 8259), so no charset detection is needed."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
