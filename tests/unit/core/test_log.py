from __future__ import annotations

import logging

import pytest
from smsfailover.core.log import log_event


def test_an_event_is_one_readable_line_with_structured_extra(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="smsfailover")
    log_event("route.failover", workspace_id="w1", latency_ms=2001.234, reason="timed out", ok=False, x=None)
    (record,) = caplog.records
    assert record.getMessage() == (
        "route.failover workspace_id=w1 latency_ms=2001.2 reason='timed out' ok=False x=None"
    )
    assert record.event == "route.failover"  # type: ignore[attr-defined]
    assert record.fields["workspace_id"] == "w1"  # type: ignore[attr-defined]


def test_secret_or_content_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        log_event("oops", token="abc")
    with pytest.raises(ValueError, match="content"):
        log_event("oops", content="hello")


def test_disabled_levels_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="smsfailover")
    log_event("quiet", level=logging.DEBUG, value="")
    log_event("loud", level=logging.WARNING, value="")
    assert [r.getMessage() for r in caplog.records] == ["loud value=''"]
