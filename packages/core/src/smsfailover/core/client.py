"""The Python SDK of CONTRACT §4: FailoverClient (async), SyncFailoverClient (blocking), module functions."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import urllib.parse
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from smsfailover.core.breaker import BreakerState
from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.config import ClientConfig
from smsfailover.core.errors import ConfigurationError, MessageRejected, SendFailed, SmsFailoverError
from smsfailover.core.log import log_event
from smsfailover.core.metrics import EndpointMetrics
from smsfailover.core.router import (
    BREAKERS,
    Attempt,
    BreakerRegistry,
    FailoverRouter,
    RouteResult,
    Sleep,
)
from smsfailover.core.settings import CachedSettings, SettingsSource, settings_path
from smsfailover.core.transport import (
    EndpointTransport,
    TransportError,
    TransportLost,
    TransportReply,
    TransportTimeout,
)

if TYPE_CHECKING:
    from smsfailover.core.redis_breaker import RedisBreakerStore

T = TypeVar("T")
TOKEN_TTL_S = 3600
_TOKEN_REUSE_S = TOKEN_TTL_S / 2  # a minted token is reused while at least half its life is left
_TOKEN_CACHE_MAX = 10_000  # workspaces; past this the cache starts again (a token is cheap to mint once)
_STRICT_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # already E.164: phonenumbers would give it back unchanged
_GATEWAY_5XX = frozenset({502, 504})  # a gateway lost the origin's answer: the origin may have sent


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str | None  # None only for an unknown outcome with no message recorded yet
    status: str  # queued | sent | delivered | failed | undelivered | unknown
    endpoint: str  # "origin" or "edge": who sent it (a replay keeps the original sender)
    requires_refresh: bool  # true when the edge sent it: refresh message lists
    idempotency_key: str
    provider_message_id: str | None
    segments: int | None
    encoding: str | None
    ledger: str | None  # "edge" (shared ledger) or "local" (the origin's own, while degraded)
    attempts: tuple[Attempt, ...]
    latency_ms: float

    def as_dict(self) -> dict[str, object]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "endpoint": self.endpoint,
            "requires_refresh": self.requires_refresh,
            "idempotency_key": self.idempotency_key,
            "provider_message_id": self.provider_message_id,
            "segments": self.segments,
            "encoding": self.encoding,
            "ledger": self.ledger,
            "attempts": [list(a) for a in self.attempts],
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_route(cls, route: RouteResult) -> SendResult:
        message = route.message or {}
        endpoint = route.endpoint
        segments = message.get("segments")
        return cls(
            message_id=_text(message.get("id")),
            status=_text(message.get("status")) or "unknown",
            endpoint=endpoint,
            requires_refresh=bool(message.get("requires_refresh", endpoint == "edge")),
            idempotency_key=_text(message.get("idempotency_key")) or route.idempotency_key,
            provider_message_id=_text(message.get("provider_message_id")),
            segments=segments if isinstance(segments, int) else None,
            encoding=_text(message.get("encoding")),
            ledger=_text(message.get("ledger")),
            attempts=route.attempts,
            latency_ms=route.latency_ms,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def new_idempotency_key() -> str:
    return "sf_" + secrets.token_urlsafe(24)


class FailoverClient:
    """One per process (or per event loop): holds the keep-alive pool, the settings cache and the metrics."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: EndpointTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        breakers: BreakerRegistry = BREAKERS,
        settings: SettingsSource | None = None,
    ) -> None:
        self.config = config
        clock = clock if clock is not None else SystemClock()
        self._clock = clock
        if transport is None:
            from smsfailover.core.transport import HttpxTransport

            transport = HttpxTransport()
        self._transport = transport
        self._cache = CachedSettings(
            transport,
            origin_url=config.origin_url,
            edge_url=config.edge_url,
            clock=clock,
            ttl_s=config.settings_ttl_s,
            origin_timeout_s=config.origin_timeout_s,
            edge_timeout_s=config.edge_timeout_s,
        )
        self._metrics = EndpointMetrics(clock)
        self.router = FailoverRouter(
            transport,
            settings if settings is not None else self._cache,
            config.router_config(),
            clock=clock,
            sleep=sleep,
            metrics=self._metrics,
            breakers=breakers,
        )
        self._minted: dict[str, tuple[str, float]] = {}  # workspace -> (token, reuse until: wall clock)
        self._shared_store: RedisBreakerStore | None = None
        self._pending_resets: set[asyncio.Task[None]] = set()
        if config.breaker_redis_url:
            from smsfailover.core.redis_breaker import RedisBreakerStore

            self._shared_store = RedisBreakerStore.from_url(
                config.breaker_redis_url,
                config.origin_url,
                policy=self.router.config.breaker_policy(),
                fallback=self.router.breaker,
                clock=clock,
            )
            self.router.breaker_store = self._shared_store

    @classmethod
    def from_env(cls, **kwargs: Any) -> FailoverClient:
        return cls(ClientConfig.from_env(), **kwargs)

    async def __aenter__(self) -> FailoverClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._shared_store is not None:
            await self._shared_store.aclose()

    # -- sending ---------------------------------------------------------------------------------------------

    async def send_message(
        self,
        *,
        to: str,
        content: str | None = None,
        workspace_id: str,
        contact_id: str | None = None,
        media_urls: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        token: str | None = None,
    ) -> SendResult:
        """Send through the failover router; if the router itself breaks, fall back to a plain origin send."""
        body = _body(to, content, workspace_id, contact_id, media_urls)
        key = idempotency_key or new_idempotency_key()
        auth = self.token_for(workspace_id, token)
        try:
            route = await self.router.send(body, token=auth, idempotency_key=key)
        except (SmsFailoverError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log_event(
                "client.failover_layer_error",
                level=logging.ERROR,
                error=type(exc).__name__,
                workspace_id=workspace_id,
                idempotency_key=key,
                action="plain origin send",
            )
            return await self._plain_origin_send(body, auth, key)
        return SendResult.from_route(route)

    async def send_sms_with_conditional_failover(
        self,
        *,
        to: str,
        message: str | None = None,
        workspace_id: str,
        contact_id: str | None = None,
        media_urls: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        token: str | None = None,
    ) -> SendResult:
        """The router only: a bug or misconfiguration in the failover layer raises instead of falling back."""
        body = _body(to, message, workspace_id, contact_id, media_urls)
        key = idempotency_key or new_idempotency_key()
        route = await self.router.send(body, token=self.token_for(workspace_id, token), idempotency_key=key)
        return SendResult.from_route(route)

    async def _plain_origin_send(self, body: Mapping[str, object], token: str, key: str) -> SendResult:
        """The pre-failover behaviour, independent of the router's code: one POST to the origin. After a
        timeout, a lost connection or a 502/504 the origin may have sent: that is an unknown result, never
        SendFailed (a caller told "failed" would send again under a new key)."""
        started = self._clock.monotonic()
        try:
            reply = await self._transport.post_message(
                self.config.origin_url,
                body,
                token=token,
                idempotency_key=key,
                timeout_s=self.config.origin_only_timeout_s,
            )
        except (TransportTimeout, TransportLost) as exc:
            outcome = "timeout" if isinstance(exc, TransportTimeout) else "connection_lost"
            return _plain_unknown(key, Attempt("origin", outcome, self._elapsed_ms(started)))
        except TransportError as exc:
            attempt = Attempt("origin", "connect_error", self._elapsed_ms(started))
            raise SendFailed(f"the origin could not be reached: {exc.reason}", attempts=(attempt,)) from exc
        if reply.status in _GATEWAY_5XX:
            return _plain_unknown(key, Attempt("origin", f"http_{reply.status}", self._elapsed_ms(started)))
        return _plain_result(reply, key, self._elapsed_ms(started))

    def _elapsed_ms(self, started: float) -> float:
        return round((self._clock.monotonic() - started) * 1000, 1)

    # -- settings and status ---------------------------------------------------------------------------------

    async def get_settings(self, workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
        return await self._origin_json("GET", settings_path(workspace_id), workspace_id, token)

    async def set_failover_enabled(
        self, workspace_id: str, enabled: bool, *, token: str | None = None
    ) -> dict[str, Any]:
        body = {"sms_failover_enabled": enabled}
        settings = await self._origin_json("PATCH", settings_path(workspace_id), workspace_id, token, body)
        self._cache.remember(workspace_id, enabled)
        return settings

    async def list_unknowns(self, workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
        """The workspace's messages still unknown, with what was checked (the origin's unknown outcomes)."""
        path = f"/v1/workspaces/{urllib.parse.quote(workspace_id, safe='')}/unknowns"
        return await self._origin_json("GET", path, workspace_id, token)

    async def mark_unknown_failed(
        self, workspace_id: str, message_id: str, *, token: str | None = None
    ) -> dict[str, Any]:
        """An operator's decision (an operator token): the unknown is failed; send it again under a new key."""
        quoted = urllib.parse.quote(workspace_id, safe="")
        path = f"/v1/workspaces/{quoted}/unknowns/{urllib.parse.quote(message_id, safe='')}/mark-failed"
        return await self._origin_json("POST", path, workspace_id, token, {})

    async def get_sms_failover_status(self, workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
        """The origin's status merged with this client's own view (its metrics and its breaker).

        When the origin is unreachable the status is built from what this client knows (the setting from the
        edge mirror or the cache), with `origin_reachable: false`, rather than failing.
        """
        path = f"/v1/workspaces/{urllib.parse.quote(workspace_id, safe='')}/sms-failover/status"
        auth = self.token_for(workspace_id, token)
        status: dict[str, Any]
        try:
            # The short origin timeout: there is a fallback answer if the origin is slow.
            status = await self._origin_json("GET", path, workspace_id, auth, timeout_s=self.config.origin_timeout_s)
            status["origin_reachable"] = True
            if status.get("enabled") is True:  # a disabled workspace is on the origin's own ledger anyway
                self.router.observe_origin_ledger(status.get("ledger"), workspace_id)
        except SendFailed as exc:
            enabled = await self._cache.failover_enabled(workspace_id, token=auth)
            status = {
                "workspace_id": workspace_id,
                "enabled": enabled,
                "origin_reachable": False,
                "origin_error": str(exc),
                "settings_source": self._cache.source_of(workspace_id),
            }
        shared = status.get("breaker")
        if shared is not None:
            status["shared_breaker"] = shared
        status["breaker"] = await self.router.breaker_store.snapshot()
        status["client"] = {
            "origin_url": self.config.origin_url,
            "edge_url": self.config.edge_url,
            "endpoints": self._metrics.snapshot(),
        }
        return status

    def reset_circuit_breaker(self) -> None:
        """Close this process's breaker now; a shared breaker is closed too, in the background (see
        `reset_shared_circuit_breaker` to wait for it)."""
        before = self.router.breaker.state
        self.router.breaker.reset()
        if before is not BreakerState.CLOSED:
            log_event("client.breaker_reset", origin_url=self.config.origin_url, was=before.value)
        if self._shared_store is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to run it on: the caller should use the async method
                log_event("client.shared_breaker_not_reset", level=logging.WARNING, origin_url=self.config.origin_url)
                return
            task = loop.create_task(self._shared_store.reset())
            self._pending_resets.add(task)
            task.add_done_callback(self._pending_resets.discard)

    async def reset_shared_circuit_breaker(self) -> None:
        """Close the breaker here and, when one is configured, the fleet's shared breaker (awaited)."""
        self.router.breaker.reset()
        await self.router.breaker_store.reset()
        log_event("client.breaker_reset", origin_url=self.config.origin_url, shared=self._shared_store is not None)

    # -- tokens and plumbing ---------------------------------------------------------------------------------

    def token_for(self, workspace_id: str, override: str | None = None) -> str:
        if override:
            return override
        if self.config.token:
            return self.config.token
        if self.config.jwt_secret:
            return self._minted_token(self.config.jwt_secret, workspace_id)
        raise ConfigurationError(
            "no API token: set SMSFAILOVER_TOKEN or pass token= (SMSFAILOVER_JWT_SECRET mints tokens only when "
            "SMSFAILOVER_ENV=development)"
        )

    def _minted_token(self, secret: str, workspace_id: str) -> str:
        """A workspace token signed here, reused for half its life: signing one per send was a fifth of the
        SDK's own cost."""
        now = self._clock.time()
        cached = self._minted.get(workspace_id)
        if cached is not None and now < cached[1]:
            return cached[0]
        from smsfailover.core.auth import issue_token

        token = issue_token(secret, workspace_id=workspace_id, ttl_s=TOKEN_TTL_S, now=now)
        if len(self._minted) >= _TOKEN_CACHE_MAX:
            self._minted.clear()
        self._minted[workspace_id] = (token, now + _TOKEN_REUSE_S)
        return token

    async def _origin_json(
        self,
        method: str,
        path: str,
        workspace_id: str,
        token: str | None,
        body: Mapping[str, object] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        url = self.config.origin_url + path
        auth = self.token_for(workspace_id, token)
        timeout_s = timeout_s if timeout_s is not None else self.config.origin_only_timeout_s
        try:
            if method == "PATCH":
                reply = await self._transport.patch_json(url, body or {}, token=auth, timeout_s=timeout_s)
            elif method == "POST":
                reply = await self._transport.post_json(url, body or {}, token=auth, timeout_s=timeout_s)
            else:
                reply = await self._transport.get_json(url, token=auth, timeout_s=timeout_s)
        except TransportError as exc:
            raise SendFailed(f"the origin could not be reached: {exc.reason}", attempts=()) from exc
        if reply.status == 200 and reply.json is not None:
            return dict(reply.json)
        raise _rejection(reply, ())


def _body(
    to: str,
    content: str | None,
    workspace_id: str,
    contact_id: str | None,
    media_urls: Sequence[str] | None,
) -> dict[str, object]:
    body: dict[str, object] = {"to": _normalized(to), "workspace_id": workspace_id}
    if content is not None:
        body["content"] = content
    if contact_id is not None:
        body["contact_id"] = contact_id
    if media_urls:
        body["media_urls"] = list(media_urls)
    return body


def _normalized(to: str) -> str:
    """Friendlier input ("+1 (626) 663-5938") becomes E.164; anything else goes as given, for the server
    to judge. Input already in strict E.164 goes as it is, without the cost of parsing it."""
    if _STRICT_E164.fullmatch(to):
        return to
    from smsfailover.core.message import normalize_phone

    try:
        return normalize_phone(to)
    except ValueError:
        return to


def _rejection(reply: TransportReply, attempts: tuple[Attempt, ...]) -> SmsFailoverError:
    error = (reply.json or {}).get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http_{reply.status}")
    message = str(error.get("message") or f"the origin answered HTTP {reply.status}")
    field = error.get("field") if isinstance(error.get("field"), str) else None
    if reply.status >= 500:
        return SendFailed(f"{message} ({code})", attempts=attempts)
    return MessageRejected(message, code=code, status=reply.status, field=field, attempts=attempts)


def _plain_unknown(key: str, attempt: Attempt) -> SendResult:
    log_event("client.plain_send_unknown", level=logging.WARNING, idempotency_key=key, outcome=attempt.outcome)
    return SendResult.from_route(RouteResult(None, "origin", key, (attempt,), attempt.latency_ms, False))


def _plain_result(reply: TransportReply, key: str, latency_ms: float) -> SendResult:
    attempt = Attempt("origin", "sent" if 200 <= reply.status < 300 else f"http_{reply.status}", latency_ms)
    if not 200 <= reply.status < 300 or reply.json is None:
        raise _rejection(reply, (attempt,))
    route = RouteResult(reply.json, str(reply.json.get("endpoint") or "origin"), key, (attempt,), latency_ms, False)
    return SendResult.from_route(route)


# -- blocking client -----------------------------------------------------------------------------------------


class SyncFailoverClient:
    """The same methods, blocking. The async client runs on a private event loop in a daemon thread, so its
    keep-alive pool, settings cache and breaker live across calls (asyncio.run per call would lose them)."""

    def __init__(self, config: ClientConfig | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smsfailover-client", daemon=True)
        self._thread.start()
        self._closed = False
        cfg = config if config is not None else ClientConfig.from_env()
        self._client: FailoverClient = self._run(_build(cfg, kwargs))

    @classmethod
    def from_env(cls, **kwargs: Any) -> SyncFailoverClient:
        return cls(ClientConfig.from_env(), **kwargs)

    @property
    def client(self) -> FailoverClient:
        return self._client

    def send_message(self, **kwargs: Any) -> SendResult:
        return self._run(self._client.send_message(**kwargs))

    def send_sms_with_conditional_failover(self, **kwargs: Any) -> SendResult:
        return self._run(self._client.send_sms_with_conditional_failover(**kwargs))

    def get_sms_failover_status(self, workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
        return self._run(self._client.get_sms_failover_status(workspace_id, token=token))

    def get_settings(self, workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
        return self._run(self._client.get_settings(workspace_id, token=token))

    def set_failover_enabled(self, workspace_id: str, enabled: bool, *, token: str | None = None) -> dict[str, Any]:
        return self._run(self._client.set_failover_enabled(workspace_id, enabled, token=token))

    def reset_circuit_breaker(self) -> None:
        self._run(self._client.reset_shared_circuit_breaker())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._client.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def __enter__(self) -> SyncFailoverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed and not self._loop.is_running():
            coro.close()
            raise RuntimeError("this SyncFailoverClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def _build(config: ClientConfig, kwargs: Mapping[str, Any]) -> FailoverClient:
    return FailoverClient(config, **kwargs)  # built on the private loop, where its pool will live


# -- module-level functions on a default client --------------------------------------------------------------

_default: tuple[asyncio.AbstractEventLoop, FailoverClient] | None = None


def default_client() -> FailoverClient:
    """One client per running event loop, built from the environment (a pool cannot cross event loops)."""
    global _default
    loop = asyncio.get_running_loop()
    if _default is None or _default[0] is not loop:
        _default = (loop, FailoverClient.from_env())
    return _default[1]


async def send_message(**kwargs: Any) -> SendResult:
    return await default_client().send_message(**kwargs)


async def send_sms_with_conditional_failover(**kwargs: Any) -> SendResult:
    return await default_client().send_sms_with_conditional_failover(**kwargs)


async def get_sms_failover_status(workspace_id: str, *, token: str | None = None) -> dict[str, Any]:
    return await default_client().get_sms_failover_status(workspace_id, token=token)


async def reset_circuit_breaker() -> None:
    await default_client().reset_shared_circuit_breaker()
