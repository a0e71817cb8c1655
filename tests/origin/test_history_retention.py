"""The origin's message history keeps its own retention (SMSFAILOVER_HISTORY_RETENTION_S), apart from the ledger's
(`retention_s`): each purge leaves the other's rows alone. A manual clock, the real migrated database of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.ids import new_message_id, rfc3339
from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.core.provider import HttpReply
from smsfailover.express_shim import history_retention
from smsfailover.express_shim.config import ConfigError, OriginConfig
from smsfailover.express_shim.services import OriginServices, build_services
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate

DAY = 24 * 3600.0
WS = "ws_history"
SECRET = "origin-history-test-secret-of-sufficient-length"
SERVICE_KEY = "origin-history-test-service-key-of-sufficient-length"


class NoProvider:
    """Nothing here sends."""

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        raise AssertionError("no provider call in these tests")


class Origin:
    """The origin's services over a migrated database and a manual clock, one per configuration."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.clock = ManualClock()
        self.made: list[OriginServices] = []

    def services(self, **config: Any) -> OriginServices:
        settings = OriginConfig(jwt_secret=SECRET, env="test", background=False, **config)
        self.made.append(build_services(settings, self.database, clock=self.clock, poster=NoProvider()))
        return self.made[-1]


@pytest.fixture
async def origin(database: Database) -> AsyncIterator[Origin]:
    await migrate(database)
    made = Origin(database)
    yield made
    for services in made.made:
        await services.aclose()


async def record_send(services: OriginServices, key: str) -> None:
    """A completed send as the origin leaves it: its message row and its ledger record, both created now."""
    now = services.clock.time()
    message_id = new_message_id(now)
    message: dict[str, object] = {
        "id": message_id,
        "workspace_id": WS,
        "idempotency_key": key,
        "to": "+16266635938",
        "content": "history",
        "media_urls": [],
        "status": "delivered",
        "endpoint": "origin",
        "ledger": "local",
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": rfc3339(now),
        "updated_at": rfc3339(now),
    }
    await services.messages.insert(message)
    claim = LedgerRecord(WS, key, "f" * 64, LedgerState.CLAIMED, "origin", now + 30, now, now, None, message_id)
    assert await services.local_ledger.try_claim(claim)
    await services.local_ledger.complete(WS, key, message, now, message_id=message_id)


async def counts(database: Database) -> tuple[int, int]:
    """(messages, ledger records)."""
    messages = await database.fetch("SELECT COUNT(*) AS n FROM messages")
    ledger = await database.fetch("SELECT COUNT(*) AS n FROM idempotency_ledger")
    return int(str(messages[0]["n"])), int(str(ledger[0]["n"]))


async def test_by_default_the_history_is_kept_for_good(origin: Origin) -> None:
    database, clock = origin.database, origin.clock
    services = origin.services()
    assert services.config.history_retention_s == 0
    await record_send(services, "k")
    clock.advance(10 * 365 * DAY)
    await services.purge()
    assert await counts(database) == (1, 0)  # the ledger's 24 h went; the message stays


async def test_the_ledger_retention_leaves_the_history_and_the_history_its_own_way(
    origin: Origin,
) -> None:
    database, clock = origin.database, origin.clock
    services = origin.services(retention_s=DAY, history_retention_s=30 * DAY)
    await record_send(services, "k")
    clock.advance(2 * DAY)
    await services.purge()
    assert await counts(database) == (1, 0)
    clock.advance(27 * DAY)  # day 29
    await services.purge()
    assert await counts(database) == (1, 0)
    clock.advance(2 * DAY)  # day 31
    await services.purge()
    assert await counts(database) == (0, 0)


async def test_a_history_shorter_than_the_ledger_leaves_the_ledger_keys(origin: Origin) -> None:
    database, clock = origin.database, origin.clock
    services = origin.services(retention_s=3 * DAY, history_retention_s=DAY)
    await record_send(services, "old")
    clock.advance(DAY + 60)
    await record_send(services, "new")
    await services.purge()
    assert await counts(database) == (1, 2)  # one message past the history's day; both keys still replayable
    assert await services.messages.get_by_key(WS, "new") is not None
    assert await services.local_ledger.get(WS, "old") is not None


async def test_the_history_purge_is_bounded_and_drains_over_rounds(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_retention, "BATCH_ROWS", 2)
    monkeypatch.setattr(history_retention, "BATCHES_PER_ROUND", 2)
    database, clock = origin.database, origin.clock
    services = origin.services(retention_s=30 * DAY, history_retention_s=DAY)
    for i in range(5):
        await record_send(services, f"k{i}")
    clock.advance(2 * DAY)
    await services.purge()
    assert await counts(database) == (1, 5)
    await services.purge()
    assert await counts(database) == (0, 5)


# -- the setting ------------------------------------------------------------------------------------------------

KEYS = {"SMSFAILOVER_JWT_SECRET": SECRET, "SMSFAILOVER_SERVICE_KEY": SERVICE_KEY}


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 0.0), ("", 0.0), ("0", 0.0), ("2592000", 30 * DAY), ("86400", DAY)]
)
def test_the_history_retention_setting(value: str | None, seconds: float) -> None:
    env = dict(KEYS) if value is None else {**KEYS, "SMSFAILOVER_HISTORY_RETENTION_S": value}
    config = OriginConfig.from_env(env)
    assert config.history_retention_s == seconds
    assert config.retention_s == DAY  # the ledger's own, untouched


@pytest.mark.parametrize("value", ["abc", "-1", "3600", "86399", "inf", "nan"])
def test_a_history_retention_that_is_not_0_or_a_day_at_least_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="SMSFAILOVER_HISTORY_RETENTION_S"):
        OriginConfig.from_env({**KEYS, "SMSFAILOVER_HISTORY_RETENTION_S": value})
