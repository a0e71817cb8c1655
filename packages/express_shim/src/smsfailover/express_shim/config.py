"""The origin's configuration: CONTRACT §5's SMSFAILOVER_* variables, read once into a frozen dataclass."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from smsfailover.core.auth import SigningKeys
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.storage.sqlite import MAX_PENDING_WRITES

TWILIO_API_BASE = "https://api.twilio.com"


class ConfigError(Exception):
    """The environment cannot run the origin; the message says which variable to set."""


@dataclass(frozen=True, slots=True)
class OriginConfig:
    jwt_secret: str
    service_key: str = ""  # signs service tokens (origin -> edge) and operator tokens; never the workspace key
    env: str = "production"
    database_url: str = "sqlite:///var/smsfailover.db"
    origin_url: str = "http://127.0.0.1:8000"
    edge_url: str = "http://127.0.0.1:8787"
    public_url: str | None = None  # what Twilio signs, when the origin sits behind a proxy
    provider_url: str = TWILIO_API_BASE
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    from_number: str | None = None
    status_callback_url: str | None = None  # default: the public (or origin) URL + the callback route
    messaging_service_sid: str | None = None
    lease_s: float = 30.0
    rate_limit: float = 50.0
    status_rate_limit: float = 5.0  # status route and settings-page polls, per workspace a second (read_limits.py)
    metrics_public: bool = False
    sqlite_max_pending_writes: int = MAX_PENDING_WRITES  # past it a request's first write is 503 storage_busy
    edge_timeout_s: float = 1.0  # one edge-ledger call: short, since the client gives the whole send 2 s
    ledger_claim_budget_s: float = 0.4  # a send's edge claim and its retry; then 503 ledger_unavailable (rule 5)
    ledger_outage_s: float = 7.0  # no ledger round trip anywhere for this long: degraded mode (origin + edge timeout)
    outbox_interval_s: float = 2.0  # retries; a change itself wakes the outbox at once
    sync_interval_s: float = 2.0
    probe_interval_s: float = 5.0
    reconcile_interval_s: float = 1.0  # the edge ledger queue, and the ping that ends degraded mode
    switch_interval_s: float = 0.5  # the two-phase failover switch
    purge_interval_s: float = 300.0
    unknowns_interval_s: float = 5.0  # unknown outcomes: not sent, or looked up at the provider (unknown_outcomes.py)
    retention_s: float = 24 * 3600.0  # the ledger and the status window's rows
    history_retention_s: float = 0.0  # the message history (product data), its own setting; 0 keeps it for good
    background: bool = True  # tests that drive the tasks by hand turn them off

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def signing_keys(self) -> SigningKeys:
        return SigningKeys(self.jwt_secret, self.service_key)

    @property
    def callback_base_url(self) -> str:
        return (self.public_url or self.origin_url).rstrip("/")

    @property
    def twilio_status_callback(self) -> str:
        return self.status_callback_url or self.callback_base_url + "/v1/provider/twilio/status"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OriginConfig:
        env = os.environ if environ is None else environ
        mode = env.get("SMSFAILOVER_ENV", "production")
        development = mode == "development"
        secret = env.get("SMSFAILOVER_JWT_SECRET", "")
        dev = DevSecrets.load_or_create() if development and not secret else None
        keys = SigningKeys(secret or (dev.jwt_secret if dev else ""), env.get("SMSFAILOVER_SERVICE_KEY", ""))
        if dev is not None and not keys.service:
            keys = SigningKeys(keys.workspace, dev.service_key)
        _check_keys(keys, development)
        return cls(
            jwt_secret=keys.workspace,
            service_key=keys.service,
            env=mode,
            database_url=env.get("SMSFAILOVER_DATABASE_URL", "sqlite:///var/smsfailover.db"),
            origin_url=env.get("SMSFAILOVER_ORIGIN_URL", "http://127.0.0.1:8000"),
            edge_url=env.get("SMSFAILOVER_EDGE_URL", "http://127.0.0.1:8787"),
            public_url=env.get("SMSFAILOVER_PUBLIC_URL") or None,
            provider_url=env.get(
                "SMSFAILOVER_PROVIDER_URL", "http://127.0.0.1:8025" if development else TWILIO_API_BASE
            ),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or (dev.twilio_account_sid if dev else ""),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or (dev.twilio_auth_token if dev else ""),
            from_number=env.get("SMSFAILOVER_FROM") or (dev.from_number if dev else None),
            status_callback_url=env.get("SMSFAILOVER_STATUS_CALLBACK_URL") or None,
            messaging_service_sid=env.get("SMSFAILOVER_MESSAGING_SERVICE_SID") or None,
            lease_s=_number(env, "SMSFAILOVER_LEASE_S", 30.0),
            rate_limit=_number(env, "SMSFAILOVER_RATE_LIMIT", 50.0),
            ledger_claim_budget_s=_number(env, "SMSFAILOVER_LEDGER_CLAIM_BUDGET_S", 0.4),
            ledger_outage_s=_number(env, "SMSFAILOVER_LEDGER_OUTAGE_S", 7.0),
            status_rate_limit=_number(env, "SMSFAILOVER_STATUS_RATE_LIMIT", 5.0),
            metrics_public=env.get("SMSFAILOVER_METRICS_PUBLIC", "") in {"1", "true", "yes"},
            history_retention_s=_history_retention(env, "SMSFAILOVER_HISTORY_RETENTION_S"),
            sqlite_max_pending_writes=_count(env, "SMSFAILOVER_SQLITE_MAX_PENDING_WRITES", MAX_PENDING_WRITES),
        )


def _check_keys(keys: SigningKeys, development: bool) -> None:
    """Outside development: both keys set, each at least 32 bytes, and different (CONTRACT §3)."""
    if development:
        return
    problems = keys.problems(workspace_name="SMSFAILOVER_JWT_SECRET", service_name="SMSFAILOVER_SERVICE_KEY")
    if problems:
        raise ConfigError("; ".join(problems) + "; outside development the origin will not start without them")


MIN_HISTORY_RETENTION_S = 24 * 3600.0


def _history_retention(env: Mapping[str, str], name: str) -> float:
    """Seconds to keep a message, or 0 (the default) to keep every message. Otherwise at least a day: a message
    outlives the ledger records (kept 24 h) whose replays and lookups name it, and its delivery callbacks."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value == 0:
        return 0.0
    if not (math.isfinite(value) and value >= MIN_HISTORY_RETENTION_S):
        raise ConfigError(
            f"{name} must be 0 (keep every message) or at least {MIN_HISTORY_RETENTION_S:.0f} seconds, not {raw!r}"
        )
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return int(raw)
