"""The origin's configuration: CONTRACT §5's SMSFAILOVER_* variables, read once into a frozen dataclass."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEV_SECRET_PATH = Path("var/dev-secret")
TWILIO_API_BASE = "https://api.twilio.com"


class ConfigError(Exception):
    """The environment cannot run the origin; the message says which variable to set."""


@dataclass(frozen=True, slots=True)
class OriginConfig:
    jwt_secret: str
    env: str = "production"
    database_url: str = "sqlite:///var/smsfailover.db"
    origin_url: str = "http://127.0.0.1:8000"
    edge_url: str = "http://127.0.0.1:8787"
    public_url: str | None = None  # what Twilio signs, when the origin sits behind a proxy
    provider_url: str = TWILIO_API_BASE
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    from_number: str | None = None
    messaging_service_sid: str | None = None
    lease_s: float = 30.0
    rate_limit: float = 50.0
    metrics_public: bool = False
    edge_timeout_s: float = 1.0  # one edge-ledger call: short, since the client gives the whole send 2 s
    outbox_interval_s: float = 0.5
    sync_interval_s: float = 2.0
    probe_interval_s: float = 5.0
    purge_interval_s: float = 300.0
    retention_s: float = 24 * 3600.0
    background: bool = True  # tests that drive the tasks by hand turn them off

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def callback_base_url(self) -> str:
        return (self.public_url or self.origin_url).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OriginConfig:
        env = os.environ if environ is None else environ
        mode = env.get("SMSFAILOVER_ENV", "production")
        development = mode == "development"
        return cls(
            jwt_secret=_jwt_secret(env, development),
            env=mode,
            database_url=env.get("SMSFAILOVER_DATABASE_URL", "sqlite:///var/smsfailover.db"),
            origin_url=env.get("SMSFAILOVER_ORIGIN_URL", "http://127.0.0.1:8000"),
            edge_url=env.get("SMSFAILOVER_EDGE_URL", "http://127.0.0.1:8787"),
            public_url=env.get("SMSFAILOVER_PUBLIC_URL") or None,
            provider_url=env.get(
                "SMSFAILOVER_PROVIDER_URL", "http://127.0.0.1:8025" if development else TWILIO_API_BASE
            ),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            from_number=env.get("SMSFAILOVER_FROM") or None,
            messaging_service_sid=env.get("SMSFAILOVER_MESSAGING_SERVICE_SID") or None,
            lease_s=_number(env, "SMSFAILOVER_LEASE_S", 30.0),
            rate_limit=_number(env, "SMSFAILOVER_RATE_LIMIT", 50.0),
            metrics_public=env.get("SMSFAILOVER_METRICS_PUBLIC", "") in {"1", "true", "yes"},
        )


def _jwt_secret(env: Mapping[str, str], development: bool) -> str:
    secret = env.get("SMSFAILOVER_JWT_SECRET", "")
    if secret:
        return secret
    if development:
        return dev_secret()
    raise ConfigError(
        "SMSFAILOVER_JWT_SECRET is not set; outside development the origin will not start without it"
    )


def dev_secret(path: Path = DEV_SECRET_PATH) -> str:
    """The development secret shared by origin, edge and CLI: read var/dev-secret, creating it once."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


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
