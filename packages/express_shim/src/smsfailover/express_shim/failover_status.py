"""The failover status of one workspace (CONTRACT §3): enabled flag, ledger mode, probes and 15-minute figures.

Its cost is bounded whatever the traffic (window_stats.py): one aggregate read of the send log's rollup, one count
of the window's unknown messages, the last failover events (at most 20 rows, by index), and the shared breaker
through the process's one Redis pool.
"""

from __future__ import annotations

from collections.abc import Mapping

from smsfailover.core.ids import rfc3339
from smsfailover.express_shim.failover_events import FailoverEvents
from smsfailover.express_shim.probes import ProbeResult
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.window_stats import WINDOW_S
from smsfailover.express_shim.workspace_settings import OFF


def _endpoint_view(probe: ProbeResult, stats: Mapping[str, object]) -> dict[str, object]:
    return {
        "healthy": probe.healthy,
        "latency_ms": probe.latency_ms,
        "checked_at": rfc3339(probe.checked_at) if probe.checked_at is not None else None,
        "window_s": WINDOW_S,
        **stats,
    }


def _detector_view(services: OriginServices) -> dict[str, object]:
    snapshot = services.ledgers.detector.snapshot()
    return {
        "state": snapshot.state,
        "since": rfc3339(snapshot.since) if snapshot.since is not None else None,
        "reason": snapshot.reason,
        "config_fault": snapshot.config_fault,
        # each D1 shard of the edge ledger, from the liveness round's last ping: [{"shard", "binding", "ok"}]
        "shards": services.liveness.shards,
        "shards_error": services.liveness.shards_error,
        "shards_checked_at": rfc3339(services.liveness.checked_at) if services.liveness.checked_at else None,
    }


async def workspace_status(services: OriginServices, ws: str) -> dict[str, object]:
    """The body of GET /v1/workspaces/{ws}/sms-failover/status (the settings page shows the same)."""
    now_ms = services.now_ms()
    settings = await services.settings.get(ws)
    enabled = settings.sms_failover_enabled
    edge_guards = settings.failover_state != OFF  # the origin claims this workspace's keys at the edge
    degraded = edge_guards and services.degraded
    windows = await services.send_log.windows(ws, now_ms)
    endpoints: dict[str, object] = {}
    for name, window in windows.items():
        stats = {
            "requests": window.requests,
            "success_rate": window.success_rate,
            "p50_ms": window.p50_ms,
            "p95_ms": window.p95_ms,
            "p99_ms": window.p99_ms,
        }
        endpoints[name] = _endpoint_view(services.probes.results[name], stats)
    return {
        "workspace_id": ws,
        "enabled": enabled,
        "ledger": "edge" if edge_guards and not degraded else "local",
        "degraded": degraded,
        "failover_state": settings.failover_state,
        "edge_ledger": _detector_view(services),
        # keys found sent twice (reconcile); 0 is the normal figure
        "double_sends_found": await services.double_sends.count(ws),
        "endpoints": endpoints,
        "failovers_15m": windows["edge"].requests,  # every edge send is a failover
        "unknown_15m": await services.send_log.unknown_messages(ws, now_ms, services.config.lease_s),
        # the last 20 edge sends with the reason their router gave (failover_events.py); an added field
        "failover_events": await FailoverEvents(services.db).recent(ws),
        # None unless a shared breaker store is configured (else each client process keeps its own)
        "breaker": await services.breaker.status(),
    }
