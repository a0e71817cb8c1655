"""OriginConfig from the environment (CONTRACT §5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from smsfailover.express_shim.config import ConfigError, OriginConfig


def test_production_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="SMSFAILOVER_JWT_SECRET"):
        OriginConfig.from_env({})


def test_defaults_follow_the_contract() -> None:
    config = OriginConfig.from_env({"SMSFAILOVER_JWT_SECRET": "s"})
    assert config.database_url == "sqlite:///var/smsfailover.db"
    assert config.edge_url == "http://127.0.0.1:8787"
    assert config.provider_url == "https://api.twilio.com"
    assert config.rate_limit == 50.0
    assert config.lease_s == 30.0
    assert config.metrics_public is False
    assert config.twilio_status_callback == "http://127.0.0.1:8000/v1/provider/twilio/status"


def test_a_public_url_is_what_twilio_calls_back() -> None:
    config = OriginConfig.from_env(
        {"SMSFAILOVER_JWT_SECRET": "s", "SMSFAILOVER_PUBLIC_URL": "https://api.example.com/"}
    )
    assert config.twilio_status_callback == "https://api.example.com/v1/provider/twilio/status"


def test_development_reads_or_creates_var_dev_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = OriginConfig.from_env({"SMSFAILOVER_ENV": "development"})
    second = OriginConfig.from_env({"SMSFAILOVER_ENV": "development"})
    assert first.jwt_secret == second.jwt_secret == (tmp_path / "var" / "dev-secret").read_text().strip()
    assert first.provider_url == "http://127.0.0.1:8025"
    assert first.twilio_account_sid.startswith("AC")
    assert first.from_number
    assert oct(os.stat(tmp_path / "var" / "dev-secret").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_bad_numbers_are_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(ConfigError, match="SMSFAILOVER_RATE_LIMIT"):
        OriginConfig.from_env({"SMSFAILOVER_JWT_SECRET": "s", "SMSFAILOVER_RATE_LIMIT": value})
