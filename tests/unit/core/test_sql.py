"""The SQL stores on stdlib SQLite: messages (write-ahead row, updates, pages, the seq feed) and the ledger rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import LedgerState
from smsfailover.core.sql import (
    SCHEMA,
    SqliteExecutor,
    SqlMessageStore,
    is_valid_cursor,
    message_from_row,
    message_to_row,
    record_from_row,
    schema_statements,
)

T0 = 1_800_000_000.0


@pytest.fixture
def db() -> Iterator[SqliteExecutor]:
    executor = SqliteExecutor()
    executor.create_schema()
    yield executor
    executor.close()


def message(n: int = 1, *, ws: str = "ws_a", at: float = T0, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"msg_{n:026d}",
        "workspace_id": ws,
        "idempotency_key": f"key-{n}",
        "to": "+16266635938",
        "content": "hello",
        "contact_id": None,
        "media_urls": [],
        "status": "unknown",
        "endpoint": "origin",
        "ledger": "local",
        "provider_message_id": None,
        "segments": 1,
        "encoding": "GSM-7",
        "latency_ms": None,
        "error": None,
        "created_at": rfc3339(at),
        "updated_at": rfc3339(at),
        "requires_refresh": False,
    }
    body.update(extra)
    return body


def without_seq(row: dict[str, object] | None) -> dict[str, object]:
    assert row is not None
    return {k: v for k, v in row.items() if k != "seq"}


def test_sqlite_here_supports_upsert_with_returning() -> None:
    assert sqlite3.sqlite_version_info >= (3, 35)


def test_the_schema_splits_into_statements_and_applies_twice(db: SqliteExecutor) -> None:
    statements = schema_statements()
    assert len(statements) == SCHEMA.count(";")
    assert all(s.startswith("CREATE") for s in statements)
    db.create_schema(upgrades=False)  # SCHEMA itself is IF NOT EXISTS: migration 1 can run on every start


async def test_a_message_reads_back_as_written(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    written = message(media_urls=["https://example.com/a.png"], contact_id="c-1", content="")
    await store.insert(written)
    assert without_seq(await store.get("ws_a", written["id"])) == written
    assert without_seq(await store.get_by_key("ws_a", "key-1")) == written


async def test_messages_are_per_workspace(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.insert(message())
    assert await store.get("ws_b", message()["id"]) is None
    assert await store.get_by_key("ws_b", "key-1") is None


async def test_an_update_changes_only_the_given_fields_and_moves_seq(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.insert(message(1))
    await store.insert(message(2))
    error = {"code": "provider_rejected", "message": "blocked", "provider_code": 21610}
    await store.update("ws_a", message(1)["id"], {"status": "failed", "error": error, "latency_ms": 12.5}, T0 + 2)
    stored = await store.get("ws_a", message(1)["id"])
    assert stored is not None
    assert (stored["status"], stored["error"], stored["latency_ms"]) == ("failed", error, 12.5)
    assert stored["updated_at"] == rfc3339(T0 + 2)
    assert stored["content"] == "hello"
    assert stored["seq"] == 3  # inserts took 1 and 2; the update is the newest change


async def test_an_update_of_another_workspace_changes_nothing(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.insert(message())
    await store.update("ws_b", message()["id"], {"status": "sent"}, T0 + 1)
    stored = await store.get("ws_a", message()["id"])
    assert stored is not None
    assert stored["status"] == "unknown"


async def test_only_outcome_fields_can_be_updated(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    with pytest.raises(ValueError, match="not updatable"):
        await store.update("ws_a", "msg_x", {"to": "+15555550100"}, T0)


async def test_the_list_is_newest_first_in_pages_joined_by_cursor(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    for n in range(1, 6):
        await store.insert(message(n, at=T0 + n // 2))  # pairs share a millisecond: ties broken by id
    await store.insert(message(9, ws="ws_b"))
    seen: list[object] = []
    cursor: str | None = None
    for _ in range(5):
        page, cursor = await store.list("ws_a", limit=2, cursor=cursor)
        seen += [m["id"] for m in page]
        if cursor is None:
            break
        assert is_valid_cursor(cursor)
    assert seen == [message(n)["id"] for n in (5, 4, 3, 2, 1)]


async def test_a_full_last_page_has_no_cursor(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.insert(message(1))
    page, cursor = await store.list("ws_a", limit=1)
    assert (len(page), cursor) == (1, None)


async def test_changed_since_feeds_each_row_once_at_its_latest_change(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.insert(message(1, endpoint="edge"))
    await store.insert(message(2))
    await store.insert(message(3, endpoint="edge"))
    await store.update("ws_a", message(1)["id"], {"status": "sent", "provider_message_id": "SM1"}, T0 + 1)
    feed = await store.changed_since(0)
    assert [(m["id"], m["seq"]) for m in feed] == [(message(2)["id"], 2), (message(3)["id"], 3), (message(1)["id"], 4)]
    edge_only = await store.changed_since(0, endpoint="edge")
    assert [m["id"] for m in edge_only] == [message(3)["id"], message(1)["id"]]
    assert edge_only[1]["requires_refresh"] is True
    assert [m["id"] for m in await store.changed_since(3, limit=10)] == [message(1)["id"]]
    assert len(await store.changed_since(0, limit=1)) == 1


async def test_upsert_inserts_then_brings_the_row_up_to_date(db: SqliteExecutor) -> None:
    store = SqlMessageStore(db)
    await store.upsert(message(1, endpoint="edge"))
    await store.upsert(message(1, endpoint="edge", status="delivered", provider_message_id="SM9", latency_ms=40.0))
    stored = await store.get("ws_a", message(1)["id"])
    assert stored is not None
    assert (stored["status"], stored["provider_message_id"], stored["seq"]) == ("delivered", "SM9", 2)
    assert without_seq(await store.get_by_provider_id("SM9")) == without_seq(stored)
    assert await store.get_by_provider_id("SM-none") is None


def test_row_conversion_fills_defaults_for_a_minimal_message() -> None:
    minimal = {
        "id": "msg_1",
        "workspace_id": "ws",
        "idempotency_key": "k",
        "to": "+16266635938",
        "status": "queued",
        "endpoint": "edge",
        "created_at": rfc3339(T0),
    }
    row = message_to_row(minimal)
    assert row[4:7] == ["", None, "[]"]
    assert row[9] == "local"
    assert row[11:13] == [1, "GSM-7"]
    assert row[-2] == row[-1] == round(T0 * 1000)


def test_a_row_without_seq_or_optional_columns_reads_as_a_message() -> None:
    row = {
        "id": "msg_1",
        "workspace_id": "ws",
        "idempotency_key": "k",
        "to_number": "+16266635938",
        "content": "hi",
        "media_urls": "",
        "status": "sent",
        "endpoint": "origin",
        "ledger": "edge",
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": round(T0 * 1000),
        "updated_at": round(T0 * 1000),
    }
    parsed = message_from_row(row)
    assert (parsed["media_urls"], parsed["error"], parsed["contact_id"]) == ([], None, None)
    assert "seq" not in parsed


def test_a_ledger_row_converts_ms_to_seconds_and_parses_the_message() -> None:
    row = {
        "workspace_id": "ws",
        "idempotency_key": "k",
        "fingerprint": "f",
        "state": "completed",
        "endpoint": "edge",
        "lease_expires_at": 1_800_000_030_000,
        "created_at": 1_800_000_000_500,
        "updated_at": "garbage",
        "message": '{"id": "msg_1"}',
        "message_id": None,
    }
    record = record_from_row(row)
    assert (record.state, record.lease_expires_at, record.created_at) == (LedgerState.COMPLETED, T0 + 30, T0 + 0.5)
    assert (record.updated_at, record.message, record.message_id) == (0.0, {"id": "msg_1"}, "")


@pytest.mark.parametrize(
    ("cursor", "valid"),
    [
        ("1800000000000.msg_01ABC", True),
        ("1800000000000", False),
        ("abc.msg_01ABC", False),
        ("1800000000000.other", False),
        ("1." + "msg_" + "A" * 40, False),
    ],
)
def test_cursor_validation(cursor: str, valid: bool) -> None:
    assert is_valid_cursor(cursor) is valid


async def test_execute_reports_changed_rows_and_fetch_returns_dicts(tmp_path: Any) -> None:
    db = SqliteExecutor(str(tmp_path / "x.sqlite3"))
    try:
        assert await db.execute("CREATE TABLE t (a INTEGER)") == 0
        assert await db.execute("INSERT INTO t VALUES (?), (?)", [1, 2]) == 2
        assert await db.fetch("SELECT a FROM t ORDER BY a") == [{"a": 1}, {"a": 2}]
    finally:
        db.close()
