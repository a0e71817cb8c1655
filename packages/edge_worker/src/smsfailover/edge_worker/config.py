"""The edge's configuration, read once per isolate from the Worker's vars and secrets (wrangler.toml)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.auth import SigningKeys

DEFAULT_PROVIDER_URL = "https://api.twilio.com"
DEFAULT_RATE_LIMIT = 50.0
DEFAULT_LEASE_S = 30.0
# Below the client's 5 s edge timeout (CONTRACT §5), so a stalled provider becomes an honest `unknown` answer
# that reaches the caller instead of a client-side timeout.
DEFAULT_PROVIDER_TIMEOUT_S = 4.0
MIN_RETENTION_S = 24 * 3600.0  # DESIGN.md: ledger records are kept at least 24 h
DEFAULT_RETENTION_S = 2 * MIN_RETENTION_S
DEFAULT_D1_SHARDS = ("DB",)
MAX_D1_SHARDS = 64
_BINDING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class EdgeConfigError(ValueError):
    """A var has a value the edge cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    environment: str
    jwt_secret: str | None
    service_key: str | None
    provider_url: str
    account_sid: str | None
    auth_token: str | None
    from_number: str | None
    messaging_service_sid: str | None
    rate_limit: float
    lease_s: float
    provider_timeout_s: float
    retention_s: float
    status_callback_url: str | None
    d1_shards: tuple[str, ...] = DEFAULT_D1_SHARDS  # D1 bindings, in shard order (shards.py)

    @classmethod
    def from_env(cls, get: Callable[[str], str | None]) -> EdgeConfig:
        """`get(name)` returns a var or secret, or None when it is not set."""
        environment = _text(get, "SMSFAILOVER_ENV") or "production"
        return cls(
            environment=environment,
            jwt_secret=_text(get, "SMSFAILOVER_JWT_SECRET"),
            service_key=_text(get, "SMSFAILOVER_SERVICE_KEY"),
            provider_url=(_text(get, "SMSFAILOVER_PROVIDER_URL") or DEFAULT_PROVIDER_URL).rstrip("/"),
            account_sid=_text(get, "TWILIO_ACCOUNT_SID"),
            auth_token=_text(get, "TWILIO_AUTH_TOKEN"),
            from_number=_text(get, "SMSFAILOVER_FROM"),
            messaging_service_sid=_text(get, "SMSFAILOVER_MESSAGING_SERVICE_SID"),
            rate_limit=_positive(get, "SMSFAILOVER_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            lease_s=_positive(get, "SMSFAILOVER_LEASE_S", DEFAULT_LEASE_S),
            provider_timeout_s=_positive(get, "SMSFAILOVER_PROVIDER_TIMEOUT_S", DEFAULT_PROVIDER_TIMEOUT_S),
            retention_s=max(MIN_RETENTION_S, _positive(get, "SMSFAILOVER_RETENTION_S", DEFAULT_RETENTION_S)),
            status_callback_url=_text(get, "SMSFAILOVER_STATUS_CALLBACK_URL"),
            d1_shards=_bindings(get, "SMSFAILOVER_D1_SHARDS"),
        )

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def signing_keys(self) -> SigningKeys:
        return SigningKeys(self.jwt_secret or "", self.service_key or "")

    def key_problems(self) -> list[str]:
        """What keeps the edge from verifying tokens: no workspace key anywhere; outside development also a key
        under 32 bytes, no service key, or one key for both. The edge then serves nothing but health."""
        if self.development:
            return [] if self.jwt_secret else ["SMSFAILOVER_JWT_SECRET is not set"]
        return self.signing_keys.problems(
            workspace_name="SMSFAILOVER_JWT_SECRET", service_name="SMSFAILOVER_SERVICE_KEY"
        )

    def problems(self) -> list[str]:
        """What keeps the edge from sending; empty when it can. Health reports `degraded` otherwise."""
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self.auth_token),
            )
            if not value
        ]
        if not (self.from_number or self.messaging_service_sid):
            missing.append("SMSFAILOVER_FROM or SMSFAILOVER_MESSAGING_SERVICE_SID")
        return self.key_problems() + [f"{name} is not set" for name in missing]


def _text(get: Callable[[str], str | None], name: str) -> str | None:
    value = get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _positive(get: Callable[[str], str | None], name: str, default: float) -> float:
    raw = _text(get, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EdgeConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise EdgeConfigError(f"{name} must be positive, not {raw!r}")
    return value


def _bindings(get: Callable[[str], str | None], name: str) -> tuple[str, ...]:
    raw = _text(get, name)
    if raw is None:
        return DEFAULT_D1_SHARDS
    names = tuple(part.strip() for part in raw.split(","))
    if not 1 <= len(names) <= MAX_D1_SHARDS or not all(_BINDING_NAME.fullmatch(n) for n in names):
        raise EdgeConfigError(f"{name} must be 1 to {MAX_D1_SHARDS} D1 binding names separated by commas")
    if len(set(names)) != len(names):
        raise EdgeConfigError(f"{name} names a binding twice")
    return names
