"""Versioned schema migrations, applied at start-up and by `python -m smsfailover.express_shim migrate`.

Each migration runs once, in one transaction, and is recorded in `schema_migrations`. Statements are
written in SQLite's dialect; the PostgreSQL database translates the types (storage.postgres.to_postgres_ddl).
Every statement is idempotent (IF NOT EXISTS), so two processes starting at once cannot break each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.express_shim.storage.base import Database

ORIGIN_TABLES = """
CREATE TABLE IF NOT EXISTS workspace_settings (
    workspace_id TEXT PRIMARY KEY,
    sms_failover_enabled BOOLEAN NOT NULL DEFAULT false,
    updated_at INTEGER NOT NULL
);
-- Each settings change, written in the change's own transaction, kept until the edge mirror acknowledges it.
CREATE TABLE IF NOT EXISTS settings_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    sms_failover_enabled BOOLEAN NOT NULL,
    updated_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Where the sync of edge-sent messages has got to (the edge's commit sequence).
CREATE TABLE IF NOT EXISTS sync_cursor (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Keys claimed in the local ledger while the edge ledger was unreachable, waiting to be reconciled into it.
CREATE TABLE IF NOT EXISTS degraded_claims (
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, idempotency_key)
);
-- One row per send attempt that reached a provider decision, on either endpoint: the status window's source.
CREATE TABLE IF NOT EXISTS send_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    created_at INTEGER NOT NULL,
    message_id TEXT
);
CREATE INDEX IF NOT EXISTS send_log_ws_time ON send_log (workspace_id, created_at);
CREATE INDEX IF NOT EXISTS send_log_time ON send_log (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS send_log_message ON send_log (message_id);
"""


def _core_schema() -> str:
    from smsfailover.core.sql import SCHEMA  # the ledger and message tables, written once in core

    return str(SCHEMA)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: Callable[[], str]


def _parked_callbacks() -> str:
    from smsfailover.express_shim.delivery_updates import PARKED_TABLE

    return PARKED_TABLE


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial: core ledger and messages, settings, outbox, sync cursor",
        lambda: _core_schema() + ";\n" + ORIGIN_TABLES,
    ),
    Migration(2, "parked delivery callbacks", _parked_callbacks),
)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)
"""


async def applied_versions(db: Database) -> set[int]:
    await db.script(_BOOKKEEPING)
    rows = await db.fetch("SELECT version FROM schema_migrations")
    return {int(str(row["version"])) for row in rows}


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply what is pending, oldest first; the versions applied now."""
    done = await applied_versions(db)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        # literals, not parameters: script() runs DDL; version and time are ints, the name is ours
        name = migration.name.replace("'", "")
        now_ms = int(time.time() * 1000)
        record = (
            "INSERT INTO schema_migrations (version, name, applied_at) "  # noqa: S608
            f"VALUES ({int(migration.version)}, '{name}', {now_ms}) ON CONFLICT (version) DO NOTHING"
        )
        await db.script(migration.sql() + ";\n" + record)
        applied.append(migration.version)
    return applied
