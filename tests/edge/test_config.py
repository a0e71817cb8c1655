"""EdgeConfig: the Worker's vars and secrets, read once per isolate."""

from __future__ import annotations

import pytest
from smsfailover.edge_worker.config import MIN_RETENTION_S, EdgeConfig, EdgeConfigError


def config(**values: str) -> EdgeConfig:
    return EdgeConfig.from_env(values.get)


def test_defaults_follow_the_contract() -> None:
    cfg = config()
    assert cfg.environment == "production"
    assert cfg.provider_url == "https://api.twilio.com"
    assert cfg.rate_limit == 50
    assert cfg.lease_s == 30
    assert cfg.retention_s >= MIN_RETENTION_S


def test_problems_name_every_missing_setting() -> None:
    problems = config().problems()
    assert any("SMSFAILOVER_JWT_SECRET" in p for p in problems)
    assert any("TWILIO_AUTH_TOKEN" in p for p in problems)
    assert any("SMSFAILOVER_FROM" in p for p in problems)
    complete = config(
        SMSFAILOVER_JWT_SECRET="w" * 32,
        SMSFAILOVER_SERVICE_KEY="s" * 32,
        TWILIO_ACCOUNT_SID="AC1",
        TWILIO_AUTH_TOKEN="t",
        SMSFAILOVER_FROM="+15005550006",
    )
    assert complete.problems() == []


KEYS = {"SMSFAILOVER_JWT_SECRET": "w" * 32, "SMSFAILOVER_SERVICE_KEY": "s" * 32}


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"SMSFAILOVER_JWT_SECRET": "short"}, "SMSFAILOVER_JWT_SECRET must be at least 32 bytes (it is 5)"),
        ({"SMSFAILOVER_SERVICE_KEY": "s" * 31}, "SMSFAILOVER_SERVICE_KEY must be at least 32 bytes (it is 31)"),
        ({"SMSFAILOVER_SERVICE_KEY": ""}, "SMSFAILOVER_SERVICE_KEY is not set"),
        ({"SMSFAILOVER_SERVICE_KEY": "w" * 32}, "SMSFAILOVER_SERVICE_KEY must differ from SMSFAILOVER_JWT_SECRET"),
    ],
)
def test_outside_development_the_keys_must_be_long_set_and_distinct(keys: dict[str, str], problem: str) -> None:
    cfg = config(**{**KEYS, **keys})
    assert cfg.key_problems() == [problem]
    assert problem in cfg.problems()


def test_in_development_one_short_secret_is_enough() -> None:
    assert config(SMSFAILOVER_ENV="development", SMSFAILOVER_JWT_SECRET="dev").key_problems() == []
    assert config(SMSFAILOVER_ENV="development").key_problems() == ["SMSFAILOVER_JWT_SECRET is not set"]


def test_blank_values_count_as_unset_and_urls_lose_a_trailing_slash() -> None:
    cfg = config(SMSFAILOVER_JWT_SECRET="  ", SMSFAILOVER_PROVIDER_URL="http://127.0.0.1:8025/")
    assert cfg.jwt_secret is None
    assert cfg.provider_url == "http://127.0.0.1:8025"


def test_retention_never_drops_below_a_day() -> None:
    assert config(SMSFAILOVER_RETENTION_S="60").retention_s == MIN_RETENTION_S


@pytest.mark.parametrize("value", ["fast", "0", "-5"])
def test_bad_numbers_are_refused_by_name(value: str) -> None:
    with pytest.raises(EdgeConfigError, match="SMSFAILOVER_RATE_LIMIT"):
        config(SMSFAILOVER_RATE_LIMIT=value)
