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
        SMSFAILOVER_JWT_SECRET="s",
        TWILIO_ACCOUNT_SID="AC1",
        TWILIO_AUTH_TOKEN="t",
        SMSFAILOVER_FROM="+15005550006",
    )
    assert complete.problems() == []


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
