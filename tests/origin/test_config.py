"""OriginConfig from the environment (CONTRACT §5)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from smsfailover.express_shim.config import ConfigError, OriginConfig

KEYS = {"SMSFAILOVER_JWT_SECRET": "w" * 32, "SMSFAILOVER_SERVICE_KEY": "s" * 32}


def test_production_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="SMSFAILOVER_JWT_SECRET"):
        OriginConfig.from_env({})


def test_defaults_follow_the_contract() -> None:
    config = OriginConfig.from_env(KEYS)
    assert config.database_url == "sqlite:///var/smsfailover.db"
    assert config.edge_url == "http://127.0.0.1:8787"
    assert config.provider_url == "https://api.twilio.com"
    assert config.rate_limit == 50.0
    assert config.lease_s == 30.0
    assert config.metrics_public is False
    assert config.twilio_status_callback == "http://127.0.0.1:8000/v1/provider/twilio/status"


def test_a_public_url_is_what_twilio_calls_back() -> None:
    config = OriginConfig.from_env({**KEYS, "SMSFAILOVER_PUBLIC_URL": "https://api.example.com/"})
    assert config.twilio_status_callback == "https://api.example.com/v1/provider/twilio/status"


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"SMSFAILOVER_JWT_SECRET": "x"}, "SMSFAILOVER_JWT_SECRET must be at least 32 bytes (it is 1)"),
        ({"SMSFAILOVER_SERVICE_KEY": ""}, "SMSFAILOVER_SERVICE_KEY is not set"),
        ({"SMSFAILOVER_SERVICE_KEY": "s" * 31}, "SMSFAILOVER_SERVICE_KEY must be at least 32 bytes (it is 31)"),
        ({"SMSFAILOVER_SERVICE_KEY": "w" * 32}, "SMSFAILOVER_SERVICE_KEY must differ from SMSFAILOVER_JWT_SECRET"),
    ],
)
def test_outside_development_weak_missing_or_shared_keys_stop_the_origin(keys: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        OriginConfig.from_env({**KEYS, **keys})


def test_the_keys_are_read_and_kept_apart() -> None:
    config = OriginConfig.from_env(KEYS)
    assert (config.signing_keys.workspace, config.signing_keys.service) == ("w" * 32, "s" * 32)


def test_development_reads_or_creates_var_dev_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = OriginConfig.from_env({"SMSFAILOVER_ENV": "development"})
    second = OriginConfig.from_env({"SMSFAILOVER_ENV": "development"})
    assert first.jwt_secret == second.jwt_secret == (tmp_path / "var" / "dev-secret").read_text().strip()
    assert first.service_key == second.service_key
    assert first.service_key not in ("", first.jwt_secret)
    assert first.provider_url == "http://127.0.0.1:8025"
    assert first.twilio_account_sid.startswith("AC")
    assert first.from_number
    assert oct(os.stat(tmp_path / "var" / "dev-secret").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_bad_numbers_are_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(ConfigError, match="SMSFAILOVER_RATE_LIMIT"):
        OriginConfig.from_env({**KEYS, "SMSFAILOVER_RATE_LIMIT": value})
