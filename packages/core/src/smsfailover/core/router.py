"""FailoverRouter: which endpoint a send goes to (CONTRACT §1), and what each answer means.

    failover disabled   origin only (origin-only timeout), no breaker, no edge
    failover enabled    breaker admits?  origin (2 s) ── 2xx ──────────────────────────▶ result
                                                   ├── 4xx ──────────────────────────▶ MessageRejected
                                                   └── 5xx / timeout / no connection ─┐
                        breaker open, or another probe in flight ─────────────────────┤
                                                                  edge (5 s) ◀────────┘
                                                                   ├── 2xx ──▶ result (`endpoint` from body)
                                                                   ├── 4xx ──▶ MessageRejected (or unknown)
                                                                   └── else ─▶ SendFailed (or unknown)

Only a 2xx or a final 4xx settles a send (shared/DESIGN.md, "the router's side"). After an attempt that may
have sent (a timeout after the request was written, a connection lost mid-request, a 502/504 from a gateway,
a claim still in flight) the result is `unknown`, naming that endpoint, unless another attempt answers 2xx or
a refusal the first must have met too (validation, auth, a reused key). 408, 429, 503 and other 5xx mean
"not sent here" and nothing more: in a hedge race they wait for the other attempt.

`429 rate_limited` (either endpoint) is waited out when it can be: `Retry-After` (1 s if absent or unusable)
plus up to 20 % jitter (at least 250 ms, so clients limited together do not return together), then the same
POST with the same key, while Retry-After is at most `rate_limited_max_wait_s` and the wait leaves the next
request its whole timeout before the send deadline. Otherwise the 429 goes back as `MessageRejected`. Never a
breaker failure, never a failover: the endpoint is up and sent nothing.

Every edge POST says why it is not at the origin (`X-Smsfailover-Failover-Reason`, core/failover_reason.py): how
the origin attempt failed, `breaker_open`, or `hedge`; the edge records it with the message. The origin's
request, and every send the origin settles, carry nothing extra.

The breaker counts the origin's own failures: timeouts, connection errors, 5xx. `503 provider_unavailable` and
`503 ledger_unavailable` are the origin working and a peer of it failing (its provider; the shared ledger at the
edge, DESIGN.md "Ledger authority" rule 5): the send still fails over, but the breaker records a success (a
half-open probe answered so proves the origin is up), so a peer's outage cannot open it for every tenant.

Hedging stops for a workspace while the origin's fresh answers for it say `ledger: "local"` (a hedge would then
be a second send); the view is kept per workspace, since one workspace on the local ledger says nothing of another.

`409 idempotency_in_progress` from either endpoint means the key is claimed and in flight (perhaps by our
own timed-out origin attempt): the router then polls `GET /v1/messages?idempotency_key=` on that endpoint,
honouring `Retry-After`, and never sends again while the claim lives. Everything, polling included, fits
in the send deadline. The same idempotency key goes with every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, NoReturn

from smsfailover.core import failover_reason
from smsfailover.core.breaker import BreakerPolicy, CircuitBreaker, StateChange
from smsfailover.core.breaker_store import BreakerStore, LocalBreakerStore, StorePermission
from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.errors import MessageRejected, SendFailed
from smsfailover.core.hedging import HedgeBudget, OriginLatency
from smsfailover.core.log import log_event
from smsfailover.core.metrics import EndpointMetrics
from smsfailover.core.settings import CachedSettings, SettingsSource
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
_JITTER_SHARE = 0.2  # a 429's wait gets up to this share of its Retry-After more...
_JITTER_MIN_S = 0.25  # ...and at least this much room, so a Retry-After of 0 or 1 still spreads the retries
LEDGER_VIEW_MAX = 4096  # workspaces whose origin ledger the router remembers; the least recently seen go first


class Outcome(StrEnum):
    SENT = "sent"  # 2xx, first send
    REPLAYED = "replayed"  # 2xx with Idempotent-Replayed, or found by polling the key
    REJECTED = "rejected"  # 4xx
    SERVER_ERROR = "server_error"  # 5xx other than 502/504
    GATEWAY_ERROR = "gateway_error"  # 502/504: a gateway lost the endpoint's answer; it may have sent
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    CONNECTION_LOST = "connection_lost"  # the request went out, then the connection broke
    IN_PROGRESS = "in_progress"  # still claimed elsewhere when the deadline ran out
    CANCELLED = "cancelled"  # a hedged attempt that lost the race to the other endpoint


class _Verdict(StrEnum):
    """What one answer says about the message (its health verdict for the breaker is separate)."""

    SENT = "sent"  # 2xx: settled
    REFUSED = "refused"  # a final 4xx: not sent there, and it will not be
    NOT_SENT = "not_sent"  # 408/429/503/other 5xx, a refused connection, never asked: not sent there
    MAYBE_SENT = "maybe_sent"  # timeout, lost connection, 502/504, a claim in flight, a cancelled attempt


# Refusals every endpoint gives the same request, so an attempt that may have sent must have met them too.
_SHARED_REFUSALS = frozenset(
    {
        "invalid_phone_number",
        "invalid_content",
        "invalid_media_url",
        "invalid_workspace_id",
        "invalid_contact_id",
        "invalid_idempotency_key",
        "invalid_request",
        "invalid_json",
        "missing_idempotency_key",
        "payload_too_large",
        "unauthorized",
        "forbidden",
        "idempotency_key_reused",
    }
)
_NO_VERDICT_4XX = frozenset({408, 429})  # "not now": nothing was sent, and the key was not judged
# 503 codes that blame a peer of the endpoint, not the endpoint: its provider, or the shared ledger (DESIGN.md,
# "Ledger authority" rule 5). They fail over but do not count against the breaker. `storage_unavailable`,
# `storage_busy` and any other 5xx are the origin's own.
_PEER_FAULTS = frozenset({"provider_unavailable", "ledger_unavailable"})
_GATEWAY_5XX = frozenset({502, 504})
_FAILOVER_OUTCOMES = frozenset(
    {Outcome.TIMEOUT, Outcome.CONNECT_ERROR, Outcome.CONNECTION_LOST, Outcome.SERVER_ERROR, Outcome.GATEWAY_ERROR}
)
# The reason an edge POST gives for each failover outcome (a SERVER_ERROR is named by its error code).
_FAILOVER_REASONS = {
    Outcome.TIMEOUT: failover_reason.TIMEOUT,
    Outcome.CONNECT_ERROR: failover_reason.CONNECTION_REFUSED,
    Outcome.CONNECTION_LOST: failover_reason.CONNECTION_LOST,
    Outcome.GATEWAY_ERROR: failover_reason.GATEWAY_ERROR,
}


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
    rate_limited_retry_s: float = 1.0  # when a 429 carries no usable Retry-After
    rate_limited_max_wait_s: float = 5.0  # a 429 asking for a longer wait goes back to the caller at once
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
    failover_enabled: bool | None  # None: the origin settled the send before the workspace's setting was read


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
    reply: TransportReply | None  # the HTTP answer; None on timeout / connection error / deadline / cancel
    healthy: bool | None  # True: it worked (a provider outage included); False: count against it; None: no verdict
    verdict: _Verdict

    @property
    def shared_refusal(self) -> bool:
        """A final 4xx that any attempt of this request meets, wherever it went."""
        return self.verdict is _Verdict.REFUSED and self.reply is not None and self.reply.error_code in _SHARED_REFUSALS


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
        rand: Callable[[], float] = random.random,
    ) -> None:
        """`rand`: a number in [0, 1) per call, for the jitter of a rate-limited wait."""
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
        self.hedge_latency = OriginLatency(self._clock)
        self._rand = rand
        self._background: set[asyncio.Future[Any]] = set()  # settings reads that outlived their send
        # The `ledger` of the origin's last fresh answer per workspace: "local" means it sends that workspace's
        # messages on its own ledger, where a hedged edge attempt cannot see its claims and would send a second
        # time. Per workspace: one forced to origin-only (or disabled) says nothing of the others. Bounded.
        self._origin_ledgers: OrderedDict[str, str] = OrderedDict()
        # The view from answers that name no workspace; it stands for every workspace without its own.
        self.origin_ledger: str | None = None

    def observe_origin_ledger(self, ledger: object, workspace_id: str | None = None) -> None:
        """Remember which ledger the origin says it uses for `workspace_id` (a fresh send, its status), or
        for every workspace without its own view when the answer names none."""
        if ledger not in ("edge", "local"):
            return
        if workspace_id is None:
            self.origin_ledger = str(ledger)
            return
        self._origin_ledgers[workspace_id] = str(ledger)
        self._origin_ledgers.move_to_end(workspace_id)
        if len(self._origin_ledgers) > LEDGER_VIEW_MAX:
            self._origin_ledgers.popitem(last=False)

    def origin_ledger_of(self, workspace_id: str | None) -> str | None:
        """The ledger the origin last said it uses for this workspace (else the process-wide view)."""
        if workspace_id is None:
            return self.origin_ledger
        return self._origin_ledgers.get(workspace_id, self.origin_ledger)

    async def send(self, body: Mapping[str, object], *, token: str, idempotency_key: str) -> RouteResult:
        started = self._clock.monotonic()
        deadline = started + self.config.send_deadline_s
        workspace_id = str(body.get("workspace_id", ""))
        context = _Send(body, token, idempotency_key, workspace_id, deadline, started)
        staged = self._settings if isinstance(self._settings, CachedSettings) else None
        enabled = staged.known(workspace_id) if staged is not None else None
        if staged is not None and enabled is None:
            return await self._send_reading_settings(context, staged)
        if enabled is None:  # a source that only answers whole (tests, custom sources): ask it first
            enabled = await self._settings.failover_enabled(workspace_id, token=token)
        if not enabled:
            return await self.send_origin_only(context)
        return await self._send_with_failover(context, await self.breaker_store.acquire())

    async def send_origin_only(self, send: _Send) -> RouteResult:
        log_event("route.origin_only", workspace_id=send.workspace_id, idempotency_key=send.idempotency_key)
        answer = await self._try_endpoint(ORIGIN, send, self.config.origin_only_timeout_s)
        return self._finish(send, [answer], enabled=False)

    async def _send_reading_settings(self, send: _Send, settings: CachedSettings) -> RouteResult:
        """The setting is not cached: both modes begin at the origin, so the origin attempt starts at once and
        the setting is read beside it. The attempt runs under the origin-only timeout until the setting says
        failover is on; then it gets the failover timeout, counted from its start. The caller pays one origin
        timeout, not one for the setting and another for the send. The edge mirror is asked only when the
        origin's read gave no answer, or when the breaker is open (the origin is then not asked at all)."""
        permission = await self.breaker_store.acquire()
        if not permission.allowed:
            if await settings.read_edge(send.workspace_id, token=send.token):
                return await self._send_with_failover(send, permission)
            return await self.send_origin_only(send)
        opened = self._clock.monotonic()
        limit = _RequestLimit(self.config.origin_only_timeout_s)
        origin = asyncio.ensure_future(self._try_endpoint(ORIGIN, send, limit.seconds, limit=limit))
        reading = asyncio.ensure_future(settings.failover_enabled(send.workspace_id, token=send.token))
        try:
            await asyncio.wait({origin, reading}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            origin.cancel()
            reading.cancel()
            self.breaker_store.release(permission)
            raise
        if not reading.done() and origin.result().attempt.outcome not in _FAILOVER_OUTCOMES:
            return await self._settled_before_the_setting(send, permission, origin.result(), reading)
        enabled = await reading
        if not enabled:
            self.breaker_store.release(permission)  # origin-only sends give the breaker no verdict
            log_event("route.origin_only", workspace_id=send.workspace_id, idempotency_key=send.idempotency_key)
            return self._finish(send, [await origin], enabled=False)
        bounded = asyncio.ensure_future(self._within(origin, limit, opened, self.config.origin_timeout_s))
        return await self._send_with_failover(send, permission, origin=bounded)

    async def _settled_before_the_setting(
        self, send: _Send, permission: StorePermission, answer: _EndpointAnswer, reading: asyncio.Future[bool]
    ) -> RouteResult:
        """The origin answered (2xx, a 4xx, or a claim in flight) before the setting was read: the setting cannot
        change that answer, so the caller gets it now; the read goes on and fills the cache for the next send."""
        self._background.add(reading)
        reading.add_done_callback(self._background.discard)
        await self._origin_answered(send, permission, answer)
        return self._finish(send, [answer], enabled=None)

    async def _within(
        self, attempt: asyncio.Future[_EndpointAnswer], limit: _RequestLimit, opened: float, timeout_s: float
    ) -> _EndpointAnswer:
        """The attempt under the failover timeout from now on. Its first request, already on the wire, gets
        `timeout_s` counted from its start: past that it is cancelled, a timeout like the transport's own (the
        request may have gone out). Its later requests (polls of a claim in flight) take `timeout_s` each."""
        limit.seconds = timeout_s
        if limit.replied.is_set():
            return await attempt
        replied: asyncio.Future[Any] = asyncio.ensure_future(limit.replied.wait())
        timer: asyncio.Future[Any] = asyncio.ensure_future(
            self._sleep(max(0.0, opened + timeout_s - self._clock.monotonic()))
        )
        try:
            racing: set[asyncio.Future[Any]] = {attempt, replied, timer}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            attempt.cancel()
            raise
        finally:
            timer.cancel()
            replied.cancel()
        if not attempt.done() and not limit.replied.is_set():
            attempt.cancel()
            await asyncio.wait({attempt})  # let it unwind; it may still have finished first
        if attempt.cancelled():
            return self._answer(ORIGIN, Outcome.TIMEOUT, opened, None, healthy=False, verdict=_Verdict.MAYBE_SENT)
        return await attempt

    async def _send_with_failover(
        self, send: _Send, permission: StorePermission, origin: asyncio.Future[_EndpointAnswer] | None = None
    ) -> RouteResult:
        """`origin`: an origin attempt already under way (started beside the settings read)."""
        answers: list[_EndpointAnswer] = []
        if self.config.hedging:
            self.hedge_budget.deposit()
        reason = failover_reason.BREAKER_OPEN
        if permission.allowed:
            answer = await self._origin_first(send, permission, answers, origin)
            if answer is None:  # a hedge race settled it
                return self._finish(send, answers, enabled=True)
            answers.append(answer)
            await self._origin_answered(send, permission, answer)
            if answer.attempt.outcome not in _FAILOVER_OUTCOMES:  # 2xx, 4xx (429 too), or still in flight
                return self._finish(send, answers, enabled=True)
            log_event(
                "route.failover",
                level=logging.WARNING,
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
                reason=answer.attempt.outcome,
                origin_ms=answer.attempt.latency_ms,
            )
            reason = _failover_reason(answer)
        else:
            log_event(
                "route.breaker_skip",
                workspace_id=send.workspace_id,
                idempotency_key=send.idempotency_key,
                shared=self.breaker_store.shared,  # shared: the fleet's breaker said no (state in Redis)
                state=self.breaker.state.value,
                remaining_open_s=round(self.breaker.remaining_open_s, 3),
            )
        answers.append(await self._try_endpoint(EDGE, send, self.config.edge_timeout_s, reason=reason))
        return self._finish(send, answers, enabled=True)

    async def _origin_first(
        self,
        send: _Send,
        permission: StorePermission,
        answers: list[_EndpointAnswer],
        origin: asyncio.Future[_EndpointAnswer] | None,
    ) -> _EndpointAnswer | None:
        """The origin attempt's answer, or None when a hedge race ran instead (its answers are in `answers`)."""
        if origin is None and not self.config.hedging:
            try:
                return await self._try_endpoint(ORIGIN, send, self.config.origin_timeout_s)  # no task: the hot path
            except BaseException:  # cancelled (or a bug): free a probe slot now instead of after its timeout
                self.breaker_store.release(permission)
                raise
        if origin is None:
            origin = asyncio.ensure_future(self._try_endpoint(ORIGIN, send, self.config.origin_timeout_s))
        try:
            if await self._should_hedge(send, origin):
                await self._race(send, permission, origin, answers)
                return None
            return await origin
        except BaseException:
            origin.cancel()
            if not origin.done() or origin.cancelled():
                self.breaker_store.release(permission)
            raise

    async def _should_hedge(self, send: _Send, origin: asyncio.Future[_EndpointAnswer]) -> bool:
        """Wait up to the hedge delay for the origin; True when it is still running and the budget allows a
        hedge. False: plain failover (hedging off, too few samples, a fast answer, or the budget spent)."""
        if not self.config.hedging:
            return False
        if self.origin_ledger_of(send.workspace_id) == "local":
            return False  # the edge cannot see the origin's claims: a hedge would be a second send
        delay = self.hedge_latency.delay_s(origin_timeout_s=self.config.origin_timeout_s)
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
        answers: list[_EndpointAnswer],
    ) -> None:
        """Both in flight with the same key, so at most one of them reaches the provider. A 2xx ends the race,
        and so does a refusal the other attempt must meet too; any other answer waits for the other attempt,
        which may still send. The loser of an ended race is cancelled."""
        edge = asyncio.ensure_future(
            self._try_endpoint(EDGE, send, self.config.edge_timeout_s, reason=failover_reason.HEDGE)
        )
        tasks = {ORIGIN: origin, EDGE: edge}  # the origin first: its breaker report is awaited before the edge
        try:
            while not _race_over(answers, len(tasks)):
                await asyncio.wait([t for t in tasks.values() if not t.done()], return_when=asyncio.FIRST_COMPLETED)
                for name, task in tasks.items():
                    if task.done() and name not in _endpoints(answers):
                        answers.append(task.result())
                        if name == ORIGIN:
                            await self._origin_answered(send, permission, answers[-1])
        finally:
            for task in tasks.values():
                task.cancel()
            if ORIGIN not in _endpoints(answers):
                self.breaker_store.release(permission)  # outrun, not failed: no verdict on the origin
        answers.extend(self._cancelled(name, send) for name in tasks if name not in _endpoints(answers))

    def _cancelled(self, endpoint: str, send: _Send) -> _EndpointAnswer:
        """An outrun attempt: no success, no failure (metrics and breaker skip it). Its request may have gone
        out. The origin's elapsed time still feeds the hedge delay, as a lower bound of its latency."""
        latency_ms = round((self._clock.monotonic() - send.started) * 1000, 1)
        if endpoint == ORIGIN:
            self.hedge_latency.record(latency_ms)
        return _EndpointAnswer(Attempt(endpoint, Outcome.CANCELLED.value, latency_ms), None, None, _Verdict.MAYBE_SENT)

    async def _origin_answered(self, send: _Send, permission: StorePermission, answer: _EndpointAnswer) -> None:
        await self._report(permission, answer.healthy)
        if answer.attempt.outcome == Outcome.SENT and answer.reply is not None:
            # Only a fresh send says which ledger the origin uses now; a replay says how the key was first sent.
            self.observe_origin_ledger((answer.reply.json or {}).get("ledger"), send.workspace_id)

    async def _report(self, permission: StorePermission, healthy: bool | None) -> None:
        if healthy is None:
            self.breaker_store.release(permission)
        else:
            await self.breaker_store.record(permission, healthy=healthy)

    async def _try_endpoint(
        self,
        endpoint: str,
        send: _Send,
        timeout_s: float,
        *,
        limit: _RequestLimit | None = None,
        reason: str | None = None,
    ) -> _EndpointAnswer:
        """POST, and while the key is in flight poll it; 404 after a 409 means it was released: POST again.
        A 429 that can be waited out is waited out, then the same POST goes again. Each request's timeout is
        `timeout_s`, or the `limit` (which may change) when one is given. `reason`: why an edge attempt is
        made, sent with each of its POSTs."""
        base_url = self.config.origin_url if endpoint == ORIGIN else self.config.edge_url
        headers = {failover_reason.HEADER: reason} if reason is not None else None
        started = self._clock.monotonic()
        post = True
        reply: TransportReply | None = None
        for round_no in range(1, _MAX_ROUNDS + 1):
            remaining = send.deadline - self._clock.monotonic()
            if remaining <= 0:
                break
            if limit is not None:
                timeout_s = limit.seconds
            try:
                if post:
                    reply = await self._transport.post_message(
                        base_url,
                        send.body,
                        token=send.token,
                        idempotency_key=send.idempotency_key,
                        timeout_s=min(timeout_s, remaining),
                        headers=headers,
                    )
                else:
                    reply = await self._transport.get_message_by_key(
                        base_url, send.idempotency_key, token=send.token, timeout_s=min(timeout_s, remaining)
                    )
            except TransportError as exc:
                outcome = _TRANSPORT_OUTCOME.get(type(exc), Outcome.CONNECT_ERROR)
                # Only a refused connection of a POST proves nothing went out; while polling, the key is
                # claimed at this endpoint, and losing the endpoint leaves that claim unknown.
                sure = outcome is Outcome.CONNECT_ERROR and post
                verdict = _Verdict.NOT_SENT if sure else _Verdict.MAYBE_SENT
                return self._answer(endpoint, outcome, started, None, healthy=False, verdict=verdict)
            finally:
                if limit is not None:
                    limit.replied.set()  # answered, or failed: either way the first request is over
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
            # A 429 sent nothing and judged nothing: the same POST again is safe (the last round's goes back).
            if (
                post
                and reply.status == 429
                and round_no < _MAX_ROUNDS
                and await self._waited_out_rate_limit(endpoint, send, reply, timeout_s)
            ):
                continue
            return self._classify(endpoint, started, reply, polled=not post)
        # Out of time: a claim seen in flight (409) may still send; if nothing was asked, nothing was sent.
        verdict = _Verdict.NOT_SENT if post else _Verdict.MAYBE_SENT
        return self._answer(endpoint, Outcome.IN_PROGRESS, started, None, healthy=None, verdict=verdict)

    async def _waited_out_rate_limit(self, endpoint: str, send: _Send, reply: TransportReply, timeout_s: float) -> bool:
        """Sleep out a 429's Retry-After plus jitter and say True; False (no sleep) when it asks for more than
        the cap (retrying sooner would meet the limit again), or when the wait would leave the next request less
        than its whole timeout before the deadline (a request cut short could time out into an unknown)."""
        retry_after = reply.retry_after_s(self.config.rate_limited_retry_s)
        if retry_after > self.config.rate_limited_max_wait_s:
            return False
        wait = retry_after + self._rand() * max(_JITTER_MIN_S, _JITTER_SHARE * retry_after)
        if self._clock.monotonic() + wait + timeout_s > send.deadline:
            return False
        log_event(
            "route.rate_limited_wait",
            endpoint=endpoint,
            idempotency_key=send.idempotency_key,
            retry_after_s=retry_after,
            wait_s=round(wait, 3),
        )
        await self._sleep(wait)
        return True

    def _classify(self, endpoint: str, started: float, reply: TransportReply, *, polled: bool) -> _EndpointAnswer:
        status = reply.status
        # A failed GET of a key claimed in flight says nothing about that claim.
        verdict = _verdict_of(status) if not polled or 200 <= status < 300 else _Verdict.MAYBE_SENT
        if 200 <= status < 300:
            replayed = polled or reply.headers.get("idempotent-replayed", "").lower() == "true"
            outcome = Outcome.REPLAYED if replayed else Outcome.SENT
            return self._answer(endpoint, outcome, started, reply, healthy=True, verdict=verdict)
        if 400 <= status < 500:
            return self._answer(endpoint, Outcome.REJECTED, started, reply, healthy=None, verdict=verdict)
        outcome = Outcome.GATEWAY_ERROR if status in _GATEWAY_5XX else Outcome.SERVER_ERROR
        if status == 503 and reply.error_code in _PEER_FAULTS:
            # The endpoint is up and answered, nothing sent; its peer failed (the provider, or the shared ledger):
            # healthy for the breaker, which guards the origin, not its peers (one peer's outage would open it
            # for every tenant). Still a failed send in the metrics, and still a failover: the edge may reach the
            # provider, and holds the same ledger itself.
            return self._answer(endpoint, outcome, started, reply, healthy=True, verdict=verdict, ok=False)
        return self._answer(endpoint, outcome, started, reply, healthy=False, verdict=verdict)

    def _answer(
        self,
        endpoint: str,
        outcome: Outcome,
        started: float,
        reply: TransportReply | None,
        *,
        healthy: bool | None,
        verdict: _Verdict,
        ok: bool | None = None,
    ) -> _EndpointAnswer:
        """`ok`: the send's success in the client metrics, when it is not the breaker's `healthy` verdict."""
        latency_ms = round((self._clock.monotonic() - started) * 1000, 1)
        if outcome is not Outcome.IN_PROGRESS:
            self.metrics.record(endpoint, ok=healthy is not False if ok is None else ok, latency_ms=latency_ms)
            if endpoint == ORIGIN and self.config.hedging:  # only a hedging router reads these
                self.hedge_latency.record(latency_ms)
        return _EndpointAnswer(Attempt(endpoint, outcome.value, latency_ms), reply, healthy, verdict)

    def _finish(self, send: _Send, answers: list[_EndpointAnswer], *, enabled: bool | None) -> RouteResult:
        """Settle the send from every answer it got (see the module docstring)."""
        attempts = tuple(a.attempt for a in answers)
        sent = _first(answers, _Verdict.SENT)
        if sent is not None:
            return self._result(send, attempts, sent, enabled)
        refused = _first(answers, _Verdict.REFUSED)
        maybe = [a for a in answers if a.verdict is _Verdict.MAYBE_SENT]
        if refused is not None and refused.reply is not None and (not maybe or refused.shared_refusal):
            self._reject(send, attempts, refused.attempt.endpoint, refused.reply)
        if maybe:  # unknown, at the endpoint that may have sent; a refusal elsewhere cannot say it did not
            if refused is not None:
                self._log_unsettled(send, refused, maybe[-1])
            return self._result(send, attempts, maybe[-1], enabled)
        for answer in reversed(answers):  # 408/429 go back as they are: the caller retries later, same key
            if answer.reply is not None and answer.reply.status in _NO_VERDICT_4XX:
                self._reject(send, attempts, answer.attempt.endpoint, answer.reply)
        log_event(
            "route.failed",
            level=logging.ERROR,
            attempts=len(attempts),
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
        )
        raise SendFailed(_failure_text(attempts), attempts=attempts)

    def _reject(self, send: _Send, attempts: tuple[Attempt, ...], endpoint: str, reply: TransportReply) -> NoReturn:
        code, text, field = _error_of(reply)
        log_event(
            "route.rejected",
            endpoint=endpoint,
            status=reply.status,
            code=code,
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
        )
        raise MessageRejected(text, code=code, status=reply.status, field=field, attempts=attempts)

    def _log_unsettled(self, send: _Send, refused: _EndpointAnswer, maybe: _EndpointAnswer) -> None:
        log_event(
            "route.refusal_after_maybe_sent",
            level=logging.WARNING,
            refused_by=refused.attempt.endpoint,
            code=refused.reply.error_code if refused.reply is not None else None,
            maybe_sent_by=maybe.attempt.endpoint,
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
        )

    def _result(
        self, send: _Send, attempts: tuple[Attempt, ...], answer: _EndpointAnswer, enabled: bool | None
    ) -> RouteResult:
        """A 2xx answer's message, or (no message) an unknown outcome at the endpoint that may have sent."""
        latency_ms = round((self._clock.monotonic() - send.started) * 1000, 1)
        message = answer.reply.json if answer.verdict is _Verdict.SENT and answer.reply is not None else None
        endpoint = str((message or {}).get("endpoint") or answer.attempt.endpoint)
        log_event(
            "route.done" if message is not None else "route.unknown",
            endpoint=endpoint,
            outcome=answer.attempt.outcome,
            attempts=len(attempts),
            latency_ms=latency_ms,
            workspace_id=send.workspace_id,
            idempotency_key=send.idempotency_key,
        )
        return RouteResult(message, endpoint, send.idempotency_key, attempts, latency_ms, enabled)


@dataclass(slots=True)
class _RequestLimit:
    """The timeout of each request of an attempt begun before the setting was known, and whether one has
    been answered yet (until then the first request may still be cut to the failover timeout)."""

    seconds: float
    replied: asyncio.Event = field(default_factory=asyncio.Event)


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


def _failover_reason(answer: _EndpointAnswer) -> str:
    """Why the router leaves the origin after this answer (one of core/failover_reason.py's words)."""
    if answer.attempt.outcome == Outcome.SERVER_ERROR:
        return failover_reason.of_server_error(answer.reply.error_code if answer.reply is not None else None)
    return _FAILOVER_REASONS.get(Outcome(answer.attempt.outcome), failover_reason.OTHER)


def _verdict_of(status: int) -> _Verdict:
    if 200 <= status < 300:
        return _Verdict.SENT
    if 400 <= status < 500:
        return _Verdict.NOT_SENT if status in _NO_VERDICT_4XX else _Verdict.REFUSED
    return _Verdict.MAYBE_SENT if status in _GATEWAY_5XX else _Verdict.NOT_SENT


def _endpoints(answers: list[_EndpointAnswer]) -> set[str]:
    return {a.attempt.endpoint for a in answers}


def _first(answers: list[_EndpointAnswer], verdict: _Verdict) -> _EndpointAnswer | None:
    return next((a for a in answers if a.verdict is verdict), None)


def _race_over(answers: list[_EndpointAnswer], racers: int) -> bool:
    return len(answers) >= racers or any(a.verdict is _Verdict.SENT or a.shared_refusal for a in answers)


def _failure_text(attempts: tuple[Attempt, ...]) -> str:
    tried = ", ".join(f"{a.endpoint}: {a.outcome} after {a.latency_ms:.0f} ms" for a in attempts)
    return f"no endpoint could send the message ({tried}); a retry with the same idempotency key cannot send it twice"
