"""ClientConfig: the SMSFAILOVER_* variables of CONTRACT §5 that a client process uses, read once."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from smsfailover.core.auth import SigningKeys
from smsfailover.core.errors import ConfigurationError
from smsfailover.core.router import RouterConfig

DEV_SECRET_FILE = Path("var") / "dev-secret"


@dataclass(frozen=True)  # no slots: from_env reads the class defaults
class ClientConfig:
    env: str = "production"
    origin_url: str = "http://127.0.0.1:8000"
    edge_url: str = "http://127.0.0.1:8787"
    token: str | None = None
    jwt_secret: str | None = None  # lets the client mint workspace tokens itself: read from the env in development only
    origin_timeout_s: float = 2.0
    edge_timeout_s: float = 5.0
    origin_only_timeout_s: float = 10.0
    breaker_failures: int = 3
    breaker_open_s: float = 30.0
    send_deadline_s: float = 15.0
    settings_ttl_s: float = 30.0
    breaker_open_max_s: float | None = None
    breaker_slow_call_s: float | None = None
    breaker_rate_window_s: float | None = None
    breaker_rate_min_calls: int = 10
    breaker_failure_ratio: float = 0.5
    breaker_redis_url: str | None = None
    hedging: bool = False
    hedge_budget_ratio: float = 0.1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> ClientConfig:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        mode = reader.text("SMSFAILOVER_ENV") or cls.env
        # Outside development an SDK process sends with a token it is given, and holds no signing key.
        secret = None
        if mode == "development":
            secret = signing_keys_from_env({**env, "SMSFAILOVER_ENV": mode}, cwd=cwd).workspace or None
        return cls(
            env=mode,
            origin_url=reader.url("SMSFAILOVER_ORIGIN_URL", cls.origin_url),
            edge_url=reader.url("SMSFAILOVER_EDGE_URL", cls.edge_url),
            token=reader.text("SMSFAILOVER_TOKEN"),
            jwt_secret=secret,
            origin_timeout_s=reader.seconds("SMSFAILOVER_ORIGIN_TIMEOUT_S", cls.origin_timeout_s),
            edge_timeout_s=reader.seconds("SMSFAILOVER_EDGE_TIMEOUT_S", cls.edge_timeout_s),
            origin_only_timeout_s=reader.seconds("SMSFAILOVER_ORIGIN_ONLY_TIMEOUT_S", cls.origin_only_timeout_s),
            breaker_failures=reader.count("SMSFAILOVER_BREAKER_FAILURES", cls.breaker_failures),
            breaker_open_s=reader.seconds("SMSFAILOVER_BREAKER_OPEN_S", cls.breaker_open_s, allow_zero=True),
            send_deadline_s=reader.seconds("SMSFAILOVER_SEND_DEADLINE_S", cls.send_deadline_s),
            settings_ttl_s=reader.seconds("SMSFAILOVER_SETTINGS_TTL_S", cls.settings_ttl_s, allow_zero=True),
            breaker_open_max_s=reader.optional_seconds("SMSFAILOVER_BREAKER_OPEN_MAX_S"),
            breaker_slow_call_s=reader.optional_seconds("SMSFAILOVER_BREAKER_SLOW_CALL_S"),
            breaker_rate_window_s=reader.optional_seconds("SMSFAILOVER_BREAKER_RATE_WINDOW_S"),
            breaker_rate_min_calls=reader.count("SMSFAILOVER_BREAKER_RATE_MIN_CALLS", cls.breaker_rate_min_calls),
            breaker_failure_ratio=reader.ratio("SMSFAILOVER_BREAKER_FAILURE_RATIO", cls.breaker_failure_ratio),
            breaker_redis_url=reader.text("SMSFAILOVER_BREAKER_REDIS_URL"),
            hedging=reader.flag("SMSFAILOVER_HEDGING"),
            hedge_budget_ratio=reader.ratio("SMSFAILOVER_HEDGE_BUDGET", cls.hedge_budget_ratio),
        )

    def with_overrides(self, **changes: object) -> ClientConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    def router_config(self) -> RouterConfig:
        return RouterConfig(
            origin_url=self.origin_url,
            edge_url=self.edge_url,
            origin_timeout_s=self.origin_timeout_s,
            edge_timeout_s=self.edge_timeout_s,
            origin_only_timeout_s=self.origin_only_timeout_s,
            send_deadline_s=self.send_deadline_s,
            breaker_failures=self.breaker_failures,
            breaker_open_s=self.breaker_open_s,
            breaker_open_max_s=self.breaker_open_max_s,
            breaker_slow_call_s=self.breaker_slow_call_s,
            breaker_rate_window_s=self.breaker_rate_window_s,
            breaker_rate_min_calls=self.breaker_rate_min_calls,
            breaker_failure_ratio=self.breaker_failure_ratio,
            hedging=self.hedging,
            hedge_budget_ratio=self.hedge_budget_ratio,
        )


def dev_derived_key(secret: str, purpose: str) -> str:
    """A development credential derived from var/dev-secret (the service key, Twilio's test account)."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:32]


def signing_keys_from_env(environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> SigningKeys:
    """The keys that mint tokens (`smsfailover token`): SMSFAILOVER_JWT_SECRET and SMSFAILOVER_SERVICE_KEY, and in
    development what var/dev-secret gives for either that is unset. Either may be empty."""
    env = os.environ if environ is None else environ
    workspace = env.get("SMSFAILOVER_JWT_SECRET", "").strip()
    service = env.get("SMSFAILOVER_SERVICE_KEY", "").strip()
    if env.get("SMSFAILOVER_ENV", "").strip() == "development" and not (workspace and service):
        dev = _read_dev_secret((cwd or Path.cwd()) / DEV_SECRET_FILE)
        if dev is not None:
            workspace = workspace or dev
            service = service or dev_derived_key(dev, "service-key")
    return SigningKeys(workspace, service)


def _read_dev_secret(path: Path) -> str | None:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return secret or None


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def url(self, name: str, default: str) -> str:
        value = self.text(name) or default
        if not value.startswith(("http://", "https://")):
            raise ConfigurationError(f"{name} must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    def seconds(self, name: str, default: float, *, allow_zero: bool = False) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
        if value < 0 or (value == 0 and not allow_zero) or value != value or value == float("inf"):
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {raw!r}")
        return value

    def optional_seconds(self, name: str) -> float | None:
        return None if self.text(name) is None else self.seconds(name, 0.0)

    def ratio(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a fraction between 0 and 1, got {raw!r}") from None
        if not 0 < value <= 1:
            raise ConfigurationError(f"{name} must be a fraction between 0 and 1, got {raw!r}")
        return value

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "0").lower()
        if raw not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
            raise ConfigurationError(f"{name} must be 1 or 0, got {raw!r}")
        return raw in {"1", "true", "yes", "on"}

    def count(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 1:
            raise ConfigurationError(f"{name} must be at least 1, got {raw!r}")
        return value
