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
-- Before migration 3: keys claimed locally while the edge ledger was unreachable (now edge_ledger_queue).
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

# Migration 3 (DESIGN.md, "Ledger authority"). New tables only (no ALTER), so two processes migrating at once on
# SQLite cannot trip over each other; workspaces enabled before it start in the switch's `on` state.
LEDGER_AUTHORITY = """
CREATE TABLE IF NOT EXISTS failover_switch (
    workspace_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    seeded_to TEXT,
    acked_at INTEGER
);
INSERT INTO failover_switch (workspace_id, state, changed_at, seeded_to, acked_at)
SELECT workspace_id, 'on', updated_at, NULL, NULL FROM workspace_settings WHERE sms_failover_enabled = true
ON CONFLICT (workspace_id) DO NOTHING;
-- Ledger work the edge has not heard yet: `push` the local record of this attempt, or `release` its claim there.
CREATE TABLE IF NOT EXISTS edge_ledger_queue (
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, idempotency_key, message_id, op)
);
CREATE INDEX IF NOT EXISTS edge_ledger_queue_time ON edge_ledger_queue (queued_at);
INSERT INTO edge_ledger_queue (workspace_id, idempotency_key, message_id, op, reason, queued_at)
SELECT d.workspace_id, d.idempotency_key, l.message_id, 'push', 'degraded', d.queued_at
FROM degraded_claims d JOIN idempotency_ledger l
  ON l.workspace_id = d.workspace_id AND l.idempotency_key = d.idempotency_key
WHERE true
ON CONFLICT DO NOTHING;
-- emptied, not dropped: a second process running this migration at once must still find the table
DELETE FROM degraded_claims;
-- Keys found sent by two attempts (reconcile): each one a double send, reported per workspace.
CREATE TABLE IF NOT EXISTS double_sends (
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    found_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, idempotency_key)
)
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


# Migration 5: the message history's own retention (history_retention.py) deletes by creation time.
HISTORY_INDEX = "CREATE INDEX IF NOT EXISTS messages_created ON messages (created_at)"


def _send_stats() -> str:
    from smsfailover.express_shim.window_stats import SEND_STATS_TABLE

    return SEND_STATS_TABLE


def _failover_events() -> str:
    from smsfailover.express_shim.failover_events import FAILOVER_EVENTS_TABLE

    return FAILOVER_EVENTS_TABLE


def _page_sessions() -> str:
    from smsfailover.express_shim.page_sessions import SESSIONS_TABLE

    return SESSIONS_TABLE


def _unknown_outcomes() -> str:
    from smsfailover.core.sql import CALL_BEGAN_UPGRADE
    from smsfailover.express_shim.unknown_outcomes import CHECKS_TABLE

    return CALL_BEGAN_UPGRADE + ";\n" + CHECKS_TABLE


def _ledger_liveness() -> str:
    from smsfailover.express_shim.ledger.liveness import LIVENESS_TABLE

    return LIVENESS_TABLE


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial: core ledger and messages, settings, outbox, sync cursor",
        lambda: _core_schema() + ";\n" + ORIGIN_TABLES,
    ),
    Migration(2, "parked delivery callbacks", _parked_callbacks),
    Migration(3, "ledger authority: failover switch, edge ledger queue, double sends", lambda: LEDGER_AUTHORITY),
    Migration(4, "settings page sessions", _page_sessions),
    # On a large PostgreSQL table an operator may build it first (CREATE INDEX CONCURRENTLY, the same name): a no-op.
    Migration(5, "messages by creation time", lambda: HISTORY_INDEX),
    Migration(6, "send log rollup for the status window (window_stats.py)", _send_stats),
    Migration(7, "the call-began mark and the checks of unknown outcomes (unknown_outcomes.py)", _unknown_outcomes),
    Migration(
        8, "failover events: edge sends and the reasons their routers gave (failover_events.py)", _failover_events
    ),
    Migration(9, "the last edge ledger round trip of any origin process (ledger/liveness.py)", _ledger_liveness),
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
