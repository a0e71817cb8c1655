"""Development credentials and the environment every local process gets (`make dev`, the test harness).

One random secret is the root: the JWT secret is that secret, and the service key and the Twilio development
account SID and auth token are derived from it, so `var/dev-secret` (the secret, one line) is the only file to
keep and nothing credential-like is written in the source.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from smsfailover.core.config import dev_derived_key

# Twilio's test-credential "valid sender" magic number; the simulator accepts it as a From.
DEV_FROM_NUMBER = "+15005550006"
DEV_SECRET_PATH = Path("var") / "dev-secret"


@dataclass(frozen=True, slots=True)
class DevSecrets:
    jwt_secret: str
    service_key: str
    twilio_account_sid: str
    twilio_auth_token: str
    from_number: str = DEV_FROM_NUMBER

    @classmethod
    def from_secret(cls, secret: str) -> DevSecrets:
        return cls(
            jwt_secret=secret,
            service_key=dev_derived_key(secret, "service-key"),
            twilio_account_sid="AC" + dev_derived_key(secret, "twilio-account-sid"),
            twilio_auth_token=dev_derived_key(secret, "twilio-auth-token"),
        )

    @classmethod
    def generate(cls) -> DevSecrets:
        return cls.from_secret(secrets.token_urlsafe(32))

    @classmethod
    def load_or_create(cls, path: Path = DEV_SECRET_PATH) -> DevSecrets:
        """The secret in path, written first (random, owner-only) if the file does not exist yet."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        secret = path.read_text(encoding="utf-8").strip()
        if not secret:
            raise ValueError(f"{path} is empty; delete it and a new development secret is made")
        return cls.from_secret(secret)

    def environment(
        self, *, provider_url: str, origin_url: str | None = None, edge_url: str | None = None
    ) -> dict[str, str]:
        """The variables all three processes (and an SDK pointed at them) need in development."""
        env = {
            "SMSFAILOVER_ENV": "development",
            "SMSFAILOVER_JWT_SECRET": self.jwt_secret,
            "SMSFAILOVER_SERVICE_KEY": self.service_key,
            "TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "SMSFAILOVER_PROVIDER_URL": provider_url,
            "SMSFAILOVER_FROM": self.from_number,
        }
        if origin_url is not None:
            env["SMSFAILOVER_ORIGIN_URL"] = origin_url
            env["SMSFAILOVER_STATUS_CALLBACK_URL"] = origin_url + "/v1/provider/twilio/status"
        if edge_url is not None:
            env["SMSFAILOVER_EDGE_URL"] = edge_url
        return env
