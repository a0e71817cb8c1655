"""The origin's provider HttpPoster on aiohttp: core's HttpPoster seam, with a cheaper connection pool than httpx2.

Benchmark 3 (docs/BENCHMARKS.md) measured the provider call as the origin's first bottleneck; aiohttp's pool does
far less bookkeeping per request than httpcore's. Errors map onto core's two outcomes the same way HttpxPoster does:
ConnectFailed when the request was never written, ReplyLost when it may have been.

aiohttp's `total` timeout cancels the request wherever it is and raises a bare TimeoutError, whether it ran out in the
pool wait, the TCP connect or the read, so the exception alone cannot say whether anything was written. A trace hook
marks the moment the request got a connection (new or reused): nothing can be written before it, so any failure
before it is ConnectFailed (a pool wait or connect that ran out included), and any failure after it, save aiohttp's
own connect-phase errors, is ReplyLost.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from smsfailover.core.provider import ConnectFailed, HttpReply, ReplyLost

if TYPE_CHECKING:
    import aiohttp

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class _Progress:
    """One request's phase, set by the trace hooks: whether it got a connection, so may have been written."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


async def _got_connection(session: object, ctx: SimpleNamespace, params: object) -> None:
    progress = ctx.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.connected = True


class AiohttpPoster:
    """One aiohttp ClientSession (keep-alive pool), made on first use inside the running event loop."""

    def __init__(self, *, max_connections: int = 64) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            trace = aiohttp.TraceConfig()
            trace.on_connection_create_end.append(_got_connection)
            trace.on_connection_reuseconn.append(_got_connection)
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[trace])
        return self._session

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        import aiohttp

        progress = _Progress()
        request = self._client().post(
            url,
            data=urlencode(list(fields)).encode(),
            headers={**_FORM, "Authorization": aiohttp.encode_basic_auth(*auth)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            trace_request_ctx=progress,
        )
        return await _reply(request, progress)

    async def get(self, url: str, auth: tuple[str, str], timeout_s: float) -> HttpReply:
        """core's HttpGetter, for looking unknown outcomes up in the provider's message list."""
        import aiohttp
        from yarl import URL

        progress = _Progress()
        request = self._client().get(
            URL(url, encoded=True),  # sent exactly as built, never re-quoted
            headers={"Accept": "application/json", "Authorization": aiohttp.encode_basic_auth(*auth)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            trace_request_ctx=progress,
        )
        return await _reply(request, progress)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _reply(request: Any, progress: _Progress) -> HttpReply:
    """Send an aiohttp request (its context manager) and read the answer, errors mapped onto core's two outcomes."""
    import aiohttp

    try:
        async with request as response:
            return HttpReply(response.status, await response.read())
    except (TimeoutError, aiohttp.ClientError) as exc:
        # ConnectionTimeoutError (a `connect` timeout: pool wait or TCP connect) and ClientConnectorError (refused,
        # DNS, TLS) come only from getting a connection. Check them before ServerTimeoutError's other subclass,
        # SocketTimeoutError (a read after the request was written), which must stay ReplyLost.
        never_written = not progress.connected or isinstance(
            exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError
        )
        raise (ConnectFailed if never_written else ReplyLost)(type(exc).__name__) from exc
