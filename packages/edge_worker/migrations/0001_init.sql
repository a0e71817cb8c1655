-- core's shared schema (smsfailover.core.sql.SCHEMA), as `wrangler d1 migrations apply` takes it.
-- tests/edge/test_migrations.py checks that the two stay the same; change both together.
CREATE TABLE IF NOT EXISTS idempotency_ledger (
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    message_id TEXT NOT NULL,
    lease_expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    message TEXT,
    PRIMARY KEY (workspace_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_ledger_created ON idempotency_ledger (created_at);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    to_number TEXT NOT NULL,
    content TEXT NOT NULL,
    contact_id TEXT,
    media_urls TEXT NOT NULL,
    status TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    ledger TEXT NOT NULL,
    provider_message_id TEXT,
    segments INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    latency_ms REAL,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ws_key ON messages (workspace_id, idempotency_key);
CREATE INDEX IF NOT EXISTS messages_ws_created ON messages (workspace_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_seq ON messages (seq);
CREATE INDEX IF NOT EXISTS messages_provider ON messages (provider_message_id);
