from __future__ import annotations

from pathlib import Path

import pytest
from smsfailover.core.config import ClientConfig
from smsfailover.core.errors import ConfigurationError


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    config = ClientConfig.from_env({}, cwd=tmp_path)
    assert config == ClientConfig()
    assert (config.origin_url, config.edge_url) == ("http://127.0.0.1:8000", "http://127.0.0.1:8787")
    assert (config.origin_timeout_s, config.edge_timeout_s, config.origin_only_timeout_s) == (2, 5, 10)
    assert (config.breaker_failures, config.breaker_open_s) == (3, 30)
    assert (config.send_deadline_s, config.settings_ttl_s) == (15, 30)
    assert config.token is None
    assert config.jwt_secret is None
    assert config.env == "production"


def test_every_variable_is_read(tmp_path: Path) -> None:
    config = ClientConfig.from_env(
        {
            "SMSFAILOVER_ENV": "staging",
            "SMSFAILOVER_ORIGIN_URL": "https://api.example.com/",
            "SMSFAILOVER_EDGE_URL": "https://edge.example.com",
            "SMSFAILOVER_TOKEN": " tok ",
            "SMSFAILOVER_JWT_SECRET": "s" * 32,
            "SMSFAILOVER_ORIGIN_TIMEOUT_S": "1.5",
            "SMSFAILOVER_EDGE_TIMEOUT_S": "4",
            "SMSFAILOVER_ORIGIN_ONLY_TIMEOUT_S": "8",
            "SMSFAILOVER_BREAKER_FAILURES": "5",
            "SMSFAILOVER_BREAKER_OPEN_S": "0",
            "SMSFAILOVER_SEND_DEADLINE_S": "20",
            "SMSFAILOVER_SETTINGS_TTL_S": "0.5",
        },
        cwd=tmp_path,
    )
    assert config.origin_url == "https://api.example.com"
    assert config.token == "tok"
    assert (config.origin_timeout_s, config.breaker_failures, config.breaker_open_s) == (1.5, 5, 0)
    router = config.router_config()
    assert (router.origin_url, router.edge_timeout_s, router.send_deadline_s) == (
        "https://api.example.com",
        4,
        20,
    )
    assert config.with_overrides(token="other").token == "other"


def test_development_reads_the_dev_secret_file(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "dev-secret").write_text("dev-secret-value\n")
    assert ClientConfig.from_env({"SMSFAILOVER_ENV": "development"}, cwd=tmp_path).jwt_secret == ("dev-secret-value")
    assert ClientConfig.from_env({}, cwd=tmp_path).jwt_secret is None  # production never reads it
    explicit = ClientConfig.from_env({"SMSFAILOVER_ENV": "development", "SMSFAILOVER_JWT_SECRET": "x"}, cwd=tmp_path)
    assert explicit.jwt_secret == "x"


@pytest.mark.parametrize("mode", ["production", "staging", ""])
def test_outside_development_an_sdk_process_holds_no_signing_key(tmp_path: Path, mode: str) -> None:
    env = {"SMSFAILOVER_ENV": mode, "SMSFAILOVER_JWT_SECRET": "s" * 40, "SMSFAILOVER_SERVICE_KEY": "k" * 40}
    assert ClientConfig.from_env(env, cwd=tmp_path).jwt_secret is None


def test_a_missing_dev_secret_file_is_no_secret(tmp_path: Path) -> None:
    assert ClientConfig.from_env({"SMSFAILOVER_ENV": "development"}, cwd=tmp_path).jwt_secret is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SMSFAILOVER_ORIGIN_URL", "ftp://x", "http"),
        ("SMSFAILOVER_ORIGIN_TIMEOUT_S", "soon", "number of seconds"),
        ("SMSFAILOVER_ORIGIN_TIMEOUT_S", "0", "positive"),
        ("SMSFAILOVER_EDGE_TIMEOUT_S", "-1", "positive"),
        ("SMSFAILOVER_SEND_DEADLINE_S", "nan", "positive"),
        ("SMSFAILOVER_SEND_DEADLINE_S", "inf", "positive"),
        ("SMSFAILOVER_BREAKER_FAILURES", "2.5", "whole number"),
        ("SMSFAILOVER_BREAKER_FAILURES", "0", "at least 1"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as caught:
        ClientConfig.from_env({name: value}, cwd=tmp_path)
    assert says in str(caught.value)


def test_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFAILOVER_TOKEN", "from-env")
    assert ClientConfig.from_env().token == "from-env"
