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

from smsfailover.core.breaker import BreakerPolicy, CircuitBreaker, StateChange
from smsfailover.core.breaker_store import BreakerStore, LocalBreakerStore, StorePermission
from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.errors import MessageRejected, SendFailed
from smsfailover.core.hedging import HedgeBudget, hedge_delay_s
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
    CANCELLED = "cancelled"  # a hedged attempt that lost the race to the other endpoint


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
    breaker_open_max_s: float | None = None
    breaker_slow_call_s: float | None = None
    breaker_rate_window_s: float | None = None
    breaker_rate_min_calls: int = 10
    breaker_failure_ratio: float = 0.5
    hedging: bool = False  # start the edge beside an origin attempt slower than the origin's p95
    hedge_budget_ratio: float = 0.1  # at most this share of sends (plus a small burst) is hedged

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            failures=self.breaker_failures,
            open_s=self.breaker_open_s,
            open_max_s=self.breaker_open_max_s,
            slow_call_s=self.breaker_slow_call_s,
            rate_window_s=self.breaker_rate_window_s,
            rate_min_calls=self.breaker_rate_min_calls,
            failure_ratio=self.breaker_failure_ratio,
        )


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
        self._breakers: dict[tuple[str, BreakerPolicy], CircuitBreaker] = {}

    def get(
        self,
        origin_url: str,
        *,
        failures: int = 3,
        open_s: float = 30.0,
        clock: Clock,
        policy: BreakerPolicy | None = None,
    ) -> CircuitBreaker:
        """`policy` wins over `failures`/`open_s` (kept for callers that only know the seed's two knobs)."""
        chosen = policy if policy is not None else BreakerPolicy(failures=failures, open_s=open_s)
        key = (origin_url.rstrip("/"), chosen)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = chosen.build(clock, name=key[0])
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
        breaker_store: BreakerStore | None = None,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self.config = config
        self._clock = clock if clock is not None else SystemClock()
        self._sleep = sleep
        self.metrics = metrics if metrics is not None else EndpointMetrics(self._clock)
        self.breaker = breakers.get(config.origin_url, clock=self._clock, policy=config.breaker_policy())
        # The store decides (in-process by default, or shared by a fleet); `breaker` is this process's own.
        self.breaker_store: BreakerStore = (
            breaker_store if breaker_store is not None else LocalBreakerStore(self.breaker)
        )
        self.hedge_budget = HedgeBudget(config.hedge_budget_ratio)

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
        permission = await self.breaker_store.acquire()
        if self.config.hedging:
            self.hedge_budget.deposit()
        if permission.allowed:
            origin = asyncio.ensure_future(self._try_endpoint(ORIGIN, send, self.config.origin_timeout_s))
            try:
                if await self._should_hedge(send, origin):
                    winner = await self._race(send, permission, origin, attempts)
                    return self._finish(send, attempts, winner, enabled=True)
                answer = await origin
            except BaseException:  # cancelled (or a bug): free a probe slot now instead of after its timeout
                origin.cancel()
                if not origin.done() or origin.cancelled():
                    self.breaker_store.release(permission)
                raise
            attempts.append(answer.attempt)
            await self._report(permission, answer.healthy)
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
                shared=self.breaker_store.shared,  # shared: the fleet's breaker said no (state in Redis)
                state=self.breaker.state.value,
                remaining_open_s=round(self.breaker.remaining_open_s, 3),
            )
        answer = await self._try_endpoint(EDGE, send, self.config.edge_timeout_s)
        attempts.append(answer.attempt)
        return self._finish(send, attempts, answer, enabled=True)

    async def _should_hedge(self, send: _Send, origin: asyncio.Future[_EndpointAnswer]) -> bool:
        """Wait up to the hedge delay for the origin; True when it is still running and the budget allows a
        hedge. False: plain failover (hedging off, too few samples, a fast answer, or the budget spent)."""
        if not self.config.hedging:
            return False
        stats = self.metrics.for_endpoint(ORIGIN).stats()
        delay = hedge_delay_s(stats.p95_ms, samples=stats.requests, origin_timeout_s=self.config.origin_timeout_s)
        if delay is None:
            return False
        timer: asyncio.Future[Any] = asyncio.ensure_future(self._sleep(delay))
        racing: set[asyncio.Future[Any]] = {origin, timer}
        try:
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if origin.done():
            return False
        if not self.hedge_budget.try_spend():
            log_event("route.hedge_budget_spent", workspace_id=send.workspace_id, idempotency_key=send.idempotency_key)
            return False
        log_event(
            "route.hedge",
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
            after_ms=round(delay * 1000, 1),
        )
        return True

    async def _race(
        self,
        send: _Send,
        permission: StorePermission,
        origin: asyncio.Future[_EndpointAnswer],
        attempts: list[Attempt],
    ) -> _EndpointAnswer:
        """Both in flight; the first definite answer (2xx or 4xx) wins and the other is cancelled. The same key
        rides on both, so at most one of them reaches the provider."""
        edge = asyncio.ensure_future(self._try_endpoint(EDGE, send, self.config.edge_timeout_s))
        pending: set[asyncio.Future[_EndpointAnswer]] = {origin, edge}
        answers: dict[str, _EndpointAnswer] = {}
        winner: _EndpointAnswer | None = None
        try:
            while pending and winner is None:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for name, task in ((ORIGIN, origin), (EDGE, edge)):
                    if task.done() and name not in answers:
                        answers[name] = answer = task.result()
                        attempts.append(answer.attempt)
                        if name == ORIGIN:
                            await self._report(permission, answer.healthy)
                        if winner is None and answer.reply is not None:
                            winner = answer
        finally:
            for task in pending:
                task.cancel()
            if ORIGIN not in answers:
                self.breaker_store.release(permission)  # outrun, not failed: no verdict on the origin
        for name in (ORIGIN, EDGE):
            if name not in answers:
                latency_ms = round((self._clock.monotonic() - send.started) * 1000, 1)
                attempts.append(Attempt(name, Outcome.CANCELLED.value, latency_ms))
                if name == ORIGIN:  # censored at this latency: keeps the p95 honest instead of drifting down
                    self.metrics.record(ORIGIN, ok=True, latency_ms=latency_ms)
        if winner is None:  # neither answered: an in-flight claim says more than a failure
            in_flight = [a for a in answers.values() if a.attempt.outcome == Outcome.IN_PROGRESS]
            winner = in_flight[0] if in_flight else answers[EDGE]
        return winner

    async def _report(self, permission: StorePermission, healthy: bool | None) -> None:
        if healthy is None:
            self.breaker_store.release(permission)
        else:
            await self.breaker_store.record(permission, healthy=healthy)

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
