"""The origin's Prometheus metrics, in a registry of its own (one per app, so tests can run several).

No label carries a workspace id: per-workspace series would grow without bound and leak tenant names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class OriginMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "smsfailover_origin_http_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "smsfailover_origin_http_request_seconds",
            "HTTP request duration",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sends = Counter(
            "smsfailover_origin_sends", "POST /v1/messages outcomes at the origin", ["outcome"], registry=r
        )
        self.ledger_local_claims = Counter(
            "smsfailover_origin_degraded_ledger_claims",
            "Keys claimed in the local ledger because the edge ledger was unreachable",
            registry=r,
        )
        self.ledger_degraded = Gauge(
            "smsfailover_origin_ledger_degraded",
            "1 while no origin process has reached the edge ledger for the failover budget: sends use the local ledger",
            registry=r,
        )
        self.ledger_unavailable = Counter(
            "smsfailover_origin_ledger_unavailable",
            "Sends answered 503 ledger_unavailable (the edge ledger gave no answer; nothing sent), by failure kind",
            ["kind"],
            registry=r,
        )
        self.edge_ledger_queue = Gauge(
            "smsfailover_origin_edge_ledger_queue", "Pushes and releases the edge ledger has not taken yet", registry=r
        )
        self.reconciled = Counter(
            "smsfailover_origin_reconciled_keys", "Origin records merged into the edge ledger", registry=r
        )
        self.double_sends = Counter(
            "smsfailover_origin_double_sends",
            "Keys found sent by two attempts when reconciling with the edge ledger (0 is the normal figure)",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "smsfailover_origin_settings_outbox_pending",
            "Settings changes not yet mirrored to the edge",
            registry=r,
        )
        self.synced_messages = Counter(
            "smsfailover_origin_synced_edge_messages", "Edge-sent messages copied into the origin", registry=r
        )
        self.endpoint_up = Gauge(
            "smsfailover_origin_probe_up", "Last active probe result (1 up, 0 down)", ["endpoint"], registry=r
        )
        self.probe_seconds = Gauge(
            "smsfailover_origin_probe_latency_seconds", "Last active probe latency", ["endpoint"], registry=r
        )
        self.callbacks = Counter(
            "smsfailover_origin_twilio_callbacks", "Twilio status callbacks by result", ["result"], registry=r
        )
        self.rate_limited = Counter("smsfailover_origin_rate_limited", "Requests refused with 429", registry=r)
        self.purged = Counter("smsfailover_origin_purged_ledger_records", "Ledger records purged", registry=r)
        self.task_errors = Counter(
            "smsfailover_origin_background_task_errors",
            "Background task rounds that failed",
            ["task"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
