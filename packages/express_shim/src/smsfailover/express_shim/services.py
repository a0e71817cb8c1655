"""Everything the origin's routes and background tasks share, built once per app and closed at shutdown.

The settings page (another module) reaches these through `request.app.state.services`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from smsfailover.core.auth import issue_token
from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.log import log_event
from smsfailover.core.provider import HttpPoster, TwilioProvider
from smsfailover.core.ratelimit import TokenBucketLimiter
from smsfailover.core.sql import SqlLedgerStore, SqlMessageStore
from smsfailover.express_shim.aiohttp_poster import AiohttpPoster
from smsfailover.express_shim.background import PeriodicTask
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.delivery_updates import DeliveryUpdates
from smsfailover.express_shim.edge_client import EdgeClient
from smsfailover.express_shim.edge_sync import EdgeMessageSync
from smsfailover.express_shim.failover_events import FailoverEvents
from smsfailover.express_shim.history_retention import purge_history
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector
from smsfailover.express_shim.ledger.liveness import LedgerLiveness
from smsfailover.express_shim.ledger.origin_ledger import LedgerParts, LedgerSelection
from smsfailover.express_shim.ledger.queue import EdgeLedgerQueue
from smsfailover.express_shim.ledger.reconcile import DoubleSends, Reconciler, ReconcileResult
from smsfailover.express_shim.ledger.remote_store import EdgeLedger
from smsfailover.express_shim.ledger.switch import FailoverSwitch
from smsfailover.express_shim.mirror_push import MirrorPusher
from smsfailover.express_shim.origin_metrics import OriginMetrics
from smsfailover.express_shim.page_sessions import PageSessions
from smsfailover.express_shim.probes import HealthProbes, timed
from smsfailover.express_shim.read_limits import ReadLimiter
from smsfailover.express_shim.shared_breaker import SharedBreakerView
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.unknown_outcomes import UnknownOutcomes
from smsfailover.express_shim.window_stats import SendLog
from smsfailover.express_shim.workspace_settings import (
    FailoverFlags,
    SettingsOutbox,
    SettingsStore,
    WorkspaceSettings,
)

VERSION = "0.1.0"
SERVICE_TOKEN_TTL_S = 600.0


class ServiceToken:
    """A service token for origin-to-edge calls, minted with the service key and renewed before it expires."""

    def __init__(self, service_key: str, clock: Clock) -> None:
        self._key = service_key
        self._clock = clock
        self._token = ""
        self._expires_at = 0.0

    def __call__(self) -> str:
        now = self._clock.time()
        if now > self._expires_at - SERVICE_TOKEN_TTL_S / 2:
            self._token = issue_token(self._key, service=True, ttl_s=SERVICE_TOKEN_TTL_S, now=now)
            self._expires_at = now + SERVICE_TOKEN_TTL_S
        return self._token


@dataclass
class OriginServices:
    config: OriginConfig
    db: Database
    clock: Clock
    metrics: OriginMetrics
    settings: SettingsStore
    flags: FailoverFlags
    outbox: SettingsOutbox
    edge: EdgeClient
    messages: SqlMessageStore
    local_ledger: SqlLedgerStore
    ledgers: LedgerSelection
    edge_ledger_queue: EdgeLedgerQueue
    double_sends: DoubleSends
    switch: FailoverSwitch
    send_log: SendLog
    provider: TwilioProvider
    poster: HttpPoster
    limiter: TokenBucketLimiter
    read_limiter: ReadLimiter  # the status route and the settings page's poll
    breaker: SharedBreakerView  # the fleet's shared breaker, through one Redis client per process
    probes: HealthProbes
    mirror: MirrorPusher
    sync: EdgeMessageSync
    reconciler: Reconciler
    liveness: LedgerLiveness
    delivery: DeliveryUpdates
    unknowns: UnknownOutcomes  # unknown outcomes resolved: not sent, a callback, a lookup at the provider
    outbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    switch_wake: asyncio.Event = field(default_factory=asyncio.Event)

    def now_ms(self) -> int:
        return int(self.clock.time() * 1000)

    @property
    def degraded(self) -> bool:
        """Sending on the local ledger alone: no origin process has reached the edge ledger for the failover budget
        (DESIGN.md rule 5; ledger/liveness.py)."""
        return self.ledgers.detector.unreachable

    def problems(self) -> list[str]:
        """What an operator should fix or know, for health with a service or operator token (never for anyone)."""
        found = []
        if self.degraded:
            found.append("the edge ledger is unreachable: sends use the origin's local ledger (degraded mode)")
        if not self.provider.configured:
            found.append("the provider is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender")
        return found

    async def aclose(self) -> None:
        await self.ledgers.parts.completions.drain(timeout_s=2.0)  # completions the edge has not heard yet
        self.probes.cancel()  # a probe a page's poll started, still waiting for its answer
        await self.edge.aclose()
        await self.breaker.aclose()
        close = getattr(self.poster, "aclose", None)
        if close is not None:
            await close()

    async def set_failover(self, workspace_id: str, enabled: bool, *, force: bool = False) -> WorkspaceSettings:
        """Change a workspace's flag and start the two-phase switch (ledger/switch.py); this process's sends see
        the switch at once, the others within the flags' cache time."""
        settings = await self.settings.set_failover(workspace_id, enabled, self.now_ms(), force=force)
        self.flags.invalidate(workspace_id)
        self.outbox_wake.set()  # push a disable to the edge mirror now, not at the next round
        self.switch_wake.set()
        log_event("settings_changed", workspace_id=workspace_id, sms_failover_enabled=enabled)
        if force and not enabled:
            log_event("failover_force_disabled", level=logging.WARNING, workspace_id=workspace_id)
        return settings

    # -- background rounds --
    async def push_outbox(self) -> None:
        await self.mirror.push_due(self.now_ms())
        self.metrics.outbox_pending.set(await self.outbox.pending_count())

    async def sync_edge_messages(self) -> None:
        copied = await self.sync.run_once(self.now_ms())
        if copied:
            self.metrics.synced_messages.inc(copied)

    async def probe(self) -> None:
        results = await self.probes.run_once()
        for name, result in results.items():
            self.metrics.endpoint_up.labels(name).set(1 if result.healthy else 0)
            if result.latency_ms is not None:
                self.metrics.probe_seconds.labels(name).set(result.latency_ms / 1000)

    async def reconcile(self) -> None:
        """Degraded mode's start and end (liveness.py: an authenticated ping, never /v1/health), then the edge
        ledger's queue."""
        await self.liveness.run_once()
        await self.reconciler.run_once()
        self.metrics.edge_ledger_queue.set(await self.edge_ledger_queue.count())

    async def advance_switches(self) -> None:
        if await self.switch.run_once():
            self.outbox_wake.set()  # an enable the switch just queued goes out now, not at the next round

    async def purge(self) -> None:
        cutoff = self.clock.time() - self.config.retention_s
        purged = await self.local_ledger.purge(cutoff)
        await self.send_log.purge(int(cutoff * 1000))
        await FailoverEvents(self.db).purge(int(cutoff * 1000))
        await self.delivery.purge(int(cutoff * 1000))
        await PageSessions(self.db).purge(self.now_ms())
        if purged:
            self.metrics.purged.inc(purged)
            log_event("ledger_purged", records=purged)
        if self.config.history_retention_s > 0:  # the message history's own retention (history_retention.py)
            await purge_history(self.messages, self.clock.time() - self.config.history_retention_s)

    def periodic_tasks(self) -> list[PeriodicTask]:
        c = self.config
        return [
            PeriodicTask("settings_outbox", c.outbox_interval_s, self.push_outbox, wake=self.outbox_wake),
            PeriodicTask("edge_sync", c.sync_interval_s, self.sync_edge_messages),
            PeriodicTask("health_probes", c.probe_interval_s, self.probe),
            PeriodicTask("ledger_reconcile", c.reconcile_interval_s, self.reconcile),
            PeriodicTask("failover_switch", c.switch_interval_s, self.advance_switches, wake=self.switch_wake),
            PeriodicTask("ledger_purge", c.purge_interval_s, self.purge),
            PeriodicTask("unknown_outcomes", c.unknowns_interval_s, self.unknowns.run_once),
        ]


def build_services(
    config: OriginConfig,
    db: Database,
    *,
    clock: Clock | None = None,
    poster: HttpPoster | None = None,
    edge: EdgeClient | None = None,
) -> OriginServices:
    clock = clock or SystemClock()
    metrics = OriginMetrics()
    settings = SettingsStore(db)
    flags = FailoverFlags(settings, clock=clock)
    edge = edge or EdgeClient(config.edge_url, ServiceToken(config.service_key, clock), timeout_s=config.edge_timeout_s)
    local_ledger = SqlLedgerStore(db)
    queue = EdgeLedgerQueue(db)
    edge_ledger = EdgeLedger(edge)

    def on_edge_change(reachable: bool) -> None:
        metrics.ledger_degraded.set(0 if reachable else 1)

    detector = EdgeLedgerDetector(clock, budget_s=config.ledger_outage_s, on_change=on_edge_change)
    parts = LedgerParts(
        local=local_ledger,
        edge=edge_ledger,
        detector=detector,
        queue=queue,
        clock=clock,
        lease_s=config.lease_s,
        on_degraded_claim=metrics.ledger_local_claims.inc,
        on_unavailable=lambda kind: metrics.ledger_unavailable.labels(kind).inc(),
        claim_budget_s=config.ledger_claim_budget_s,
    )
    ledgers = LedgerSelection(parts, flags.edge_may_accept)
    double_sends = DoubleSends(db, on_found=metrics.double_sends.inc)
    # aiohttp: benchmark 3 measured httpx2's connection pool as the send path's first bottleneck (docs/decisions.md).
    poster = poster or AiohttpPoster()
    provider = TwilioProvider(
        poster,
        base_url=config.provider_url,
        account_sid=config.twilio_account_sid,
        auth_token=config.twilio_auth_token,
        from_number=config.from_number,
        messaging_service_sid=config.messaging_service_sid,
    )
    if not provider.configured:
        log_event("provider_not_configured", level=logging.WARNING)
    messages = SqlMessageStore(db)
    send_log = SendLog(db)

    async def db_ping() -> tuple[bool, float]:
        return await timed(lambda: db.fetch("SELECT 1 AS ok"))

    def on_reconciled(result: ReconcileResult) -> None:
        metrics.reconciled.inc(result.merged)

    delivery = DeliveryUpdates(db, messages)
    sync = EdgeMessageSync(
        db, edge, messages, send_log, delivery, ledger=local_ledger, lease_s=config.lease_s, clock=clock
    )

    return OriginServices(
        config=config,
        db=db,
        clock=clock,
        metrics=metrics,
        settings=settings,
        flags=flags,
        outbox=SettingsOutbox(db),
        edge=edge,
        messages=messages,
        local_ledger=local_ledger,
        ledgers=ledgers,
        edge_ledger_queue=queue,
        double_sends=double_sends,
        switch=FailoverSwitch(
            db=db,
            edge=edge_ledger,
            queue=queue,
            double_sends=double_sends,
            clock=clock,
            flags_ttl_s=flags.ttl_s,
            lease_s=config.lease_s,
            retention_s=config.retention_s,
            synced_through_ms=lambda: sync.caught_up_from_ms,
            on_switched=lambda ws, state: flags.invalidate(ws),
        ),
        send_log=send_log,
        provider=provider,
        poster=poster,
        limiter=TokenBucketLimiter(rate=config.rate_limit, clock=clock),
        read_limiter=ReadLimiter(rate=config.status_rate_limit, clock=clock, on_refused=metrics.rate_limited.inc),
        breaker=SharedBreakerView(config.origin_url),
        probes=HealthProbes({"origin": db_ping, "edge": edge.health}, clock.time),
        mirror=MirrorPusher(SettingsOutbox(db), edge),
        sync=sync,
        liveness=LedgerLiveness(db, edge_ledger, detector, queue, clock),
        reconciler=Reconciler(
            queue=queue,
            local=local_ledger,
            edge=edge_ledger,
            detector=detector,
            double_sends=double_sends,
            clock=clock,
            on_result=on_reconciled,
        ),
        delivery=delivery,
        unknowns=UnknownOutcomes(
            db,
            messages,
            ledgers.ledger_for,
            provider,
            clock,
            lease_s=config.lease_s,
            retention_s=config.retention_s,
        ),
    )
