"""FailoverRouter: which endpoint a send goes to (CONTRACT §1), and what each answer means.

    failover disabled   origin only (origin-only timeout), no breaker, no edge
    failover enabled    breaker admits?  origin (2 s) ── 2xx ──────────────────────────▶ result
                                                   ├── 4xx ──────────────────────────▶ MessageRejected
                                                   └── 5xx / timeout / no connection ─┐
                        breaker open, or another probe in flight ─────────────────────┤
                                                                  edge (5 s) ◀────────┘
                                                                   ├── 2xx ──▶ result (`endpoint` from body)
                                                                   ├── 4xx ──▶ MessageRejected
                                                                   └── else ─▶ SendFailed(attempts)

`409 idempotency_in_progress` from either endpoint means the key is claimed and in flight (perhaps by our
own timed-out origin attempt): the router then polls `GET /v1/messages?idempotency_key=` on that endpoint,
honouring `Retry-After`, and never sends again while the claim lives. Everything, polling included, fits
in the send deadline. The same idempotency key goes with every attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from smsfailover.core.breaker import CircuitBreaker, Permission, StateChange
from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.errors import MessageRejected, SendFailed
from smsfailover.core.log import log_event
from smsfailover.core.metrics import EndpointMetrics
from smsfailover.core.settings import SettingsSource
from smsfailover.core.transport import (
    EndpointTransport,
    TransportError,
    TransportLost,
    TransportReply,
    TransportTimeout,
)

Sleep = Callable[[float], Awaitable[None]]
ORIGIN = "origin"
EDGE = "edge"
_MAX_ROUNDS = 50  # POST / poll rounds on one endpoint; the deadline normally ends the loop long before
_MIN_POLL_S = 0.05


class Outcome(StrEnum):
    SENT = "sent"  # 2xx, first send
    REPLAYED = "replayed"  # 2xx with Idempotent-Replayed, or found by polling the key
    REJECTED = "rejected"  # 4xx
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    CONNECTION_LOST = "connection_lost"  # the request went out, then the connection broke
    IN_PROGRESS = "in_progress"  # still claimed elsewhere when the deadline ran out


class Attempt(NamedTuple):
    """One endpoint's part in a send; a tuple `(endpoint, outcome, latency_ms)` as CONTRACT §4 lists it."""

    endpoint: str
    outcome: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class RouterConfig:
    origin_url: str
    edge_url: str
    origin_timeout_s: float = 2.0
    edge_timeout_s: float = 5.0
    origin_only_timeout_s: float = 10.0
    send_deadline_s: float = 15.0
    breaker_failures: int = 3
    breaker_open_s: float = 30.0
    in_progress_retry_s: float = 1.0  # when a 409 carries no usable Retry-After


@dataclass(frozen=True, slots=True)
class RouteResult:
    message: Mapping[str, Any] | None  # the endpoint's message object; None if still in flight at the deadline
    endpoint: str  # who sent it, from the message (a replay keeps its endpoint); else who holds the claim
    idempotency_key: str
    attempts: tuple[Attempt, ...]
    latency_ms: float
    failover_enabled: bool


class BreakerRegistry:
    """Breakers per origin URL (and breaker settings), shared by every client and workspace of the process."""

    def __init__(self) -> None:
        self._breakers: dict[tuple[str, int, float], CircuitBreaker] = {}

    def get(self, origin_url: str, *, failures: int, open_s: float, clock: Clock) -> CircuitBreaker:
        key = (origin_url.rstrip("/"), failures, open_s)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(clock, failure_threshold=failures, open_s=open_s, name=key[0])
            breaker.add_listener(_log_state_change(key[0]))
            self._breakers[key] = breaker
        return breaker

    def clear(self) -> None:
        self._breakers.clear()


def _log_state_change(origin_url: str) -> Callable[[StateChange], None]:
    def listener(change: StateChange) -> None:
        log_event(
            "breaker.state_change",
            level=logging.WARNING,
            origin_url=origin_url,
            old=change.old.value,
            new=change.new.value,
            reason=change.reason,
        )

    return listener


BREAKERS = BreakerRegistry()


@dataclass(slots=True)
class _EndpointAnswer:
    """What one endpoint finally said, after any 409 polling."""

    attempt: Attempt
    reply: TransportReply | None  # None on timeout / connection error / deadline
    healthy: bool | None  # True: it answered well; False: count against it; None: no verdict


class FailoverRouter:
    def __init__(
        self,
        transport: EndpointTransport,
        settings: SettingsSource,
        config: RouterConfig,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        metrics: EndpointMetrics | None = None,
        breakers: BreakerRegistry = BREAKERS,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self.config = config
        self._clock = clock if clock is not None else SystemClock()
        self._sleep = sleep
        self.metrics = metrics if metrics is not None else EndpointMetrics(self._clock)
        self.breaker = breakers.get(
            config.origin_url,
            failures=config.breaker_failures,
            open_s=config.breaker_open_s,
            clock=self._clock,
        )

    async def send(self, body: Mapping[str, object], *, token: str, idempotency_key: str) -> RouteResult:
        started = self._clock.monotonic()
        deadline = started + self.config.send_deadline_s
        workspace_id = str(body.get("workspace_id", ""))
        enabled = await self._settings.failover_enabled(workspace_id, token=token)
        context = _Send(body, token, idempotency_key, workspace_id, deadline, started)
        if not enabled:
            log_event("route.origin_only", workspace_id=workspace_id, idempotency_key=idempotency_key)
            return await self.send_origin_only(context)
        return await self._send_with_failover(context)

    async def send_origin_only(self, send: _Send) -> RouteResult:
        answer = await self._try_endpoint(ORIGIN, send, self.config.origin_only_timeout_s)
        return self._finish(send, [answer.attempt], answer, enabled=False)

    async def _send_with_failover(self, send: _Send) -> RouteResult:
        attempts: list[Attempt] = []
        permission = self.breaker.try_acquire()
        if permission.allowed:
            try:
                answer = await self._try_endpoint(ORIGIN, send, self.config.origin_timeout_s)
            except BaseException:  # cancelled (or a bug): free a probe slot now instead of after its timeout
                self.breaker.release(permission)
                raise
            attempts.append(answer.attempt)
            self._report(permission, answer.healthy)
            if answer.reply is not None or answer.attempt.outcome == Outcome.IN_PROGRESS:
                return self._finish(send, attempts, answer, enabled=True)
            log_event(
                "route.failover",
                level=logging.WARNING,
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
                reason=answer.attempt.outcome,
                origin_ms=answer.attempt.latency_ms,
            )
        else:
            log_event(
                "route.breaker_skip",
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
                state=self.breaker.state.value,
                remaining_open_s=round(self.breaker.remaining_open_s, 3),
            )
        answer = await self._try_endpoint(EDGE, send, self.config.edge_timeout_s)
        attempts.append(answer.attempt)
        return self._finish(send, attempts, answer, enabled=True)

    def _report(self, permission: Permission, healthy: bool | None) -> None:
        if healthy is True:
            self.breaker.record_success(permission)
        elif healthy is False:
            self.breaker.record_failure(permission)
        else:
            self.breaker.release(permission)

    async def _try_endpoint(self, endpoint: str, send: _Send, timeout_s: float) -> _EndpointAnswer:
        """POST, and while the key is in flight poll it; 404 after a 409 means it was released: POST again."""
        base_url = self.config.origin_url if endpoint == ORIGIN else self.config.edge_url
        started = self._clock.monotonic()
        post = True
        reply: TransportReply | None = None
        for _ in range(_MAX_ROUNDS):
            remaining = send.deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            try:
                if post:
                    reply = await self._transport.post_message(
                        base_url,
                        send.body,
                        token=send.token,
                        idempotency_key=send.idempotency_key,
                        timeout_s=min(timeout_s, remaining),
                    )
                else:
                    reply = await self._transport.get_message_by_key(
                        base_url, send.idempotency_key, token=send.token, timeout_s=min(timeout_s, remaining)
                    )
            except TransportError as exc:
                outcome = _TRANSPORT_OUTCOME.get(type(exc), Outcome.CONNECT_ERROR)
                return self._answer(endpoint, outcome, started, None, healthy=False)
            if reply.status == 409 and reply.error_code == "idempotency_in_progress":
                wait = reply.retry_after_s(self.config.in_progress_retry_s)
                log_event(
                    "route.in_progress_wait",
                    endpoint=endpoint,
                    idempotency_key=send.idempotency_key,
                    retry_after_s=wait,
                )
                wait = max(_MIN_POLL_S, min(wait, send.deadline - self._clock.monotonic()))
                await self._sleep(wait)
                post = False
                continue
            if not post and reply.status == 404:
                post = True  # the claim was released without a send: sending again is safe
                continue
            return self._classify(endpoint, started, reply, polled=not post)
        return self._answer(endpoint, Outcome.IN_PROGRESS, started, None, healthy=None)

    def _classify(self, endpoint: str, started: float, reply: TransportReply, *, polled: bool) -> _EndpointAnswer:
        if 200 <= reply.status < 300:
            replayed = polled or reply.headers.get("idempotent-replayed", "").lower() == "true"
            outcome = Outcome.REPLAYED if replayed else Outcome.SENT
            return self._answer(endpoint, outcome, started, reply, healthy=True)
        if 400 <= reply.status < 500:
            return self._answer(endpoint, Outcome.REJECTED, started, reply, healthy=None)
        return self._answer(endpoint, Outcome.SERVER_ERROR, started, None, healthy=False)

    def _answer(
        self,
        endpoint: str,
        outcome: Outcome,
        started: float,
        reply: TransportReply | None,
        *,
        healthy: bool | None,
    ) -> _EndpointAnswer:
        latency_ms = round((self._clock.monotonic() - started) * 1000, 1)
        if outcome is not Outcome.IN_PROGRESS:
            self.metrics.record(endpoint, ok=healthy is not False, latency_ms=latency_ms)
        return _EndpointAnswer(Attempt(endpoint, outcome.value, latency_ms), reply, healthy)

    def _finish(self, send: _Send, attempts: list[Attempt], answer: _EndpointAnswer, *, enabled: bool) -> RouteResult:
        latency_ms = round((self._clock.monotonic() - send.started) * 1000, 1)
        last = answer.attempt
        if answer.reply is not None and answer.attempt.outcome == Outcome.REJECTED:
            error = _error_of(answer.reply)
            log_event(
                "route.rejected",
                endpoint=last.endpoint,
                status=answer.reply.status,
                code=error[0],
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
            )
            raise MessageRejected(
                error[1], code=error[0], status=answer.reply.status, field=error[2], attempts=tuple(attempts)
            )
        if answer.reply is None and last.outcome != Outcome.IN_PROGRESS and not _may_have_sent(attempts):
            log_event(
                "route.failed",
                level=logging.ERROR,
                attempts=len(attempts),
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
            )
            raise SendFailed(_failure_text(attempts), attempts=tuple(attempts))
        message = answer.reply.json if answer.reply is not None else None
        endpoint = str((message or {}).get("endpoint") or last.endpoint)
        log_event(
            "route.done",
            endpoint=endpoint,
            outcome=last.outcome,
            attempts=len(attempts),
            latency_ms=latency_ms,
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
        )
        return RouteResult(message, endpoint, send.idempotency_key, tuple(attempts), latency_ms, enabled)


@dataclass(frozen=True, slots=True)
class _Send:
    body: Mapping[str, object]
    token: str
    idempotency_key: str
    workspace_id: str
    deadline: float
    started: float


def _error_of(reply: TransportReply) -> tuple[str, str, str | None]:
    error = (reply.json or {}).get("error")
    if not isinstance(error, dict):
        return ("http_" + str(reply.status), f"the endpoint answered HTTP {reply.status}", None)
    code = error.get("code")
    message = error.get("message")
    field = error.get("field")
    return (
        code if isinstance(code, str) else "http_" + str(reply.status),
        message if isinstance(message, str) else f"the endpoint answered HTTP {reply.status}",
        field if isinstance(field, str) else None,
    )


_TRANSPORT_OUTCOME = {TransportTimeout: Outcome.TIMEOUT, TransportLost: Outcome.CONNECTION_LOST}
# Attempts after which the endpoint may have sent: a send that ends with only these and failures is unknown,
# never "failed" (a caller told "failed" would retry with a new key and could send twice).
_AMBIGUOUS = frozenset({Outcome.TIMEOUT.value, Outcome.CONNECTION_LOST.value})


def _may_have_sent(attempts: list[Attempt]) -> bool:
    return any(a.outcome in _AMBIGUOUS for a in attempts)


def _failure_text(attempts: list[Attempt]) -> str:
    tried = ", ".join(f"{a.endpoint}: {a.outcome} after {a.latency_ms:.0f} ms" for a in attempts)
    return f"no endpoint could send the message ({tried}); a retry with the same idempotency key cannot send it twice"
