"""Versioned migrations on both databases, the `migrate` command, and the sync cursor across a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from smsfailover.core.sql import SqlMessageStore
from smsfailover.express_shim.edge_client import EdgeClient
from smsfailover.express_shim.edge_sync import EdgeMessageSync
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import MIGRATIONS, Migration, applied_versions, migrate
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from smsfailover.express_shim.window_stats import SendLog

from tests.origin.fake_edge import FakeEdgeState, fake_edge
from tests.origin.pg import PG_URL, drop_pg_schema, new_pg_schema
from tests.origin.servers import serve
from tests.origin.test_origin_routes import _edge_message

REPO = Path(__file__).resolve().parents[2]


async def test_migrations_apply_once_and_record_their_versions(database: Database) -> None:
    assert await migrate(database) == [m.version for m in MIGRATIONS]
    assert await migrate(database) == []
    assert await applied_versions(database) == {m.version for m in MIGRATIONS}


async def test_the_first_migration_creates_settings_defaulting_to_off(database: Database) -> None:
    await migrate(database)
    await database.execute("INSERT INTO workspace_settings (workspace_id, updated_at) VALUES (?, ?)", ("w", 1))
    rows = await database.fetch("SELECT sms_failover_enabled FROM workspace_settings WHERE workspace_id = ?", ("w",))
    assert bool(rows[0]["sms_failover_enabled"]) is False
    tables = ("idempotency_ledger", "messages", "settings_outbox", "sync_cursor", "edge_ledger_queue", "send_log")
    for table in (*tables, "parked_callbacks", "failover_switch", "double_sends"):
        assert await database.fetch(f"SELECT COUNT(*) AS n FROM {table}") == [{"n": 0}]


async def test_a_later_migration_runs_after_the_first(database: Database) -> None:
    await migrate(database)
    extra = Migration(999, "test: add a table", lambda: "CREATE TABLE IF NOT EXISTS later_table (x INTEGER)")
    assert await migrate(database, (*MIGRATIONS, extra)) == [999]
    assert await database.fetch("SELECT COUNT(*) AS n FROM later_table") == [{"n": 0}]


async def test_a_failing_migration_leaves_nothing_half_done(database: Database) -> None:
    await migrate(database)
    broken = Migration(998, "test: broken", lambda: "CREATE TABLE half_done (x INTEGER); CREATE TABLE (")
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own syntax error
        await migrate(database, (*MIGRATIONS, broken))
    assert 998 not in await applied_versions(database)
    assert await database.fetch("SELECT COUNT(*) AS n FROM schema_migrations WHERE version = 998") == [{"n": 0}]


async def test_two_processes_migrating_one_postgresql_database_at_once_both_succeed() -> None:
    schema = await new_pg_schema()
    first = await PostgresDatabase.connect(PG_URL, schema=schema)
    second = await PostgresDatabase.connect(PG_URL, schema=schema)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        assert {v for applied in results for v in applied} == {m.version for m in MIGRATIONS}
        assert await applied_versions(first) == {m.version for m in MIGRATIONS}
    finally:
        await first.close()
        await second.close()
        await drop_pg_schema(schema)


def test_the_migrate_command_migrates_a_sqlite_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SMSFAILOVER_JWT_SECRET": "test-secret-" + "x" * 40,
        "SMSFAILOVER_SERVICE_KEY": "test-service-key-" + "y" * 40,
        "SMSFAILOVER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    first = subprocess.run(
        [sys.executable, "-m", "smsfailover.express_shim", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    second = subprocess.run(
        [sys.executable, "-m", "smsfailover.express_shim", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert f"applied migrations: {[m.version for m in MIGRATIONS]}" in first.stdout
    assert "up to date" in second.stdout


def test_outside_development_the_origin_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSFAILOVER_")}
    env["SMSFAILOVER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "smsfailover.express_shim", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 3
    assert "SMSFAILOVER_JWT_SECRET" in result.stderr
    assert not (tmp_path / "x.db").exists()


async def test_the_sync_resumes_from_its_stored_cursor_after_a_restart(database: Database) -> None:
    await migrate(database)
    state = FakeEdgeState()
    state.edge_messages.append(_edge_message("ws1", seq=5))
    async with serve(fake_edge(state)) as url:
        edge = EdgeClient(url, lambda: "t")
        try:
            before = EdgeMessageSync(database, edge, SqlMessageStore(database), SendLog(database))
            assert await before.run_once(now_ms=1) == 1
            state.edge_messages.append(_edge_message("ws1", seq=9))
            after_restart = EdgeMessageSync(database, edge, SqlMessageStore(database), SendLog(database))
            assert await after_restart.run_once(now_ms=2) == 1
        finally:
            await edge.aclose()
    assert state.sync_afters[0] == 0
    assert 5 in state.sync_afters[1:]
    rows = await database.fetch("SELECT COUNT(*) AS n FROM messages WHERE workspace_id = ?", ("ws1",))
    assert rows == [{"n": 2}]


async def test_an_edge_send_synced_mid_flight_is_logged_once_with_its_final_outcome(database: Database) -> None:
    await migrate(database)
    state = FakeEdgeState()
    in_flight = _edge_message("ws1", seq=3, status="unknown")
    state.edge_messages.append({**in_flight, "provider_message_id": None, "latency_ms": None})
    async with serve(fake_edge(state)) as url:
        edge = EdgeClient(url, lambda: "t")
        try:
            sync = EdgeMessageSync(database, edge, SqlMessageStore(database), SendLog(database))
            assert await sync.run_once(now_ms=1) == 1
            assert await database.fetch("SELECT COUNT(*) AS n FROM send_log", ()) == [{"n": 0}]
            state.edge_messages.append({**in_flight, "seq": 4, "status": "queued"})  # the same message, now sent
            assert await sync.run_once(now_ms=2) == 1
        finally:
            await edge.aclose()
    rows = await database.fetch("SELECT status, ok FROM send_log", ())
    assert [(r["status"], bool(r["ok"])) for r in rows] == [("queued", True)]
    messages = await database.fetch("SELECT status FROM messages WHERE workspace_id = ?", ("ws1",))
    assert messages == [{"status": "queued"}]


async def test_migration_3_starts_enabled_workspaces_on_and_keeps_queued_degraded_claims(database: Database) -> None:
    """A database from before "Ledger authority": its enabled workspaces and degraded claims carry over."""
    await migrate(database, MIGRATIONS[:2])
    await database.execute(
        "INSERT INTO workspace_settings (workspace_id, sms_failover_enabled, updated_at) VALUES (?, ?, ?)",
        ("on", True, 5),
    )
    await database.execute(
        "INSERT INTO workspace_settings (workspace_id, sms_failover_enabled, updated_at) VALUES (?, ?, ?)",
        ("off", False, 5),
    )
    await database.execute(
        "INSERT INTO idempotency_ledger (workspace_id, idempotency_key, fingerprint, state, endpoint, message_id,"
        " lease_expires_at, created_at, updated_at, message)"
        " VALUES (?, ?, 'f', 'completed', 'origin', ?, 1, 1, 1, NULL)",
        ("on", "k1", "msg_01JZ00000000000000000000AA"),
    )
    await database.execute(
        "INSERT INTO degraded_claims (workspace_id, idempotency_key, queued_at) VALUES (?, ?, ?)", ("on", "k1", 7)
    )

    assert await migrate(database) == [m.version for m in MIGRATIONS[2:]]

    switch = await database.fetch("SELECT workspace_id, state FROM failover_switch ORDER BY workspace_id")
    assert [(r["workspace_id"], r["state"]) for r in switch] == [("on", "on")]
    queued = await database.fetch("SELECT workspace_id, idempotency_key, message_id, op FROM edge_ledger_queue")
    assert [tuple(r.values()) for r in queued] == [("on", "k1", "msg_01JZ00000000000000000000AA", "push")]
