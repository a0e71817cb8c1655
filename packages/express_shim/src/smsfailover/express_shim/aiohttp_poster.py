"""The origin's provider HttpPoster on aiohttp: core's HttpPoster seam, with a cheaper connection pool than httpx2.

Benchmark 3 (docs/BENCHMARKS.md) measured the provider call as the origin's first bottleneck; aiohttp's pool does
far less bookkeeping per request than httpcore's. Errors map onto core's two outcomes the same way HttpxPoster does:
ConnectFailed when the request was never written, ReplyLost when it may have been.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from smsfailover.core.provider import ConnectFailed, HttpReply, ReplyLost

if TYPE_CHECKING:
    import aiohttp

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class AiohttpPoster:
    """One aiohttp ClientSession (keep-alive pool), made on first use inside the running event loop."""

    def __init__(self, *, max_connections: int = 64) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        import aiohttp

        request = self._client().post(
            url,
            data=urlencode(list(fields)).encode(),
            headers={**_FORM, "Authorization": aiohttp.encode_basic_auth(*auth)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
        return await _reply(request)

    async def get(self, url: str, auth: tuple[str, str], timeout_s: float) -> HttpReply:
        """core's HttpGetter, for looking unknown outcomes up in the provider's message list."""
        import aiohttp
        from yarl import URL

        request = self._client().get(
            URL(url, encoded=True),  # sent exactly as built, never re-quoted
            headers={"Accept": "application/json", "Authorization": aiohttp.encode_basic_auth(*auth)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
        return await _reply(request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _reply(request: Any) -> HttpReply:
    """Send an aiohttp request (its context manager) and read the answer, errors mapped onto core's two outcomes."""
    import aiohttp

    try:
        async with request as response:
            return HttpReply(response.status, await response.read())
    except aiohttp.ClientConnectorError as exc:
        raise ConnectFailed(type(exc).__name__) from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise ReplyLost(type(exc).__name__) from exc
