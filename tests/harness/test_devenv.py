from __future__ import annotations

import stat
from pathlib import Path

from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.simulator.config import ACCOUNT_SID


def test_the_dev_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-secret"

    first = DevSecrets.load_or_create(path)
    again = DevSecrets.load_or_create(path)

    assert again == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.jwt_secret
    assert len(first.jwt_secret) >= 32


def test_twilio_dev_credentials_derive_from_the_secret() -> None:
    secrets = DevSecrets.from_secret("s3cret")

    assert ACCOUNT_SID.match(secrets.twilio_account_sid)
    assert secrets == DevSecrets.from_secret("s3cret")
    assert DevSecrets.from_secret("other").twilio_auth_token != secrets.twilio_auth_token


def test_the_environment_has_what_all_three_processes_need() -> None:
    env = DevSecrets.from_secret("s").environment(
        provider_url="http://127.0.0.1:1", origin_url="http://127.0.0.1:2", edge_url="http://127.0.0.1:3"
    )

    assert env["SMSFAILOVER_ENV"] == "development"
    assert env["SMSFAILOVER_JWT_SECRET"] == "s"
    assert env["SMSFAILOVER_SERVICE_KEY"] not in ("", "s")  # derived from it, never the same key
    assert env["SMSFAILOVER_PROVIDER_URL"] == "http://127.0.0.1:1"
    assert env["SMSFAILOVER_STATUS_CALLBACK_URL"] == "http://127.0.0.1:2/v1/provider/twilio/status"
    assert env["SMSFAILOVER_EDGE_URL"] == "http://127.0.0.1:3"
    assert env["SMSFAILOVER_FROM"] == "+15005550006"
