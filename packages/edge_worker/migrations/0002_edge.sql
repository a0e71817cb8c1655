-- Edge-only tables (core's shared schema is 0001_init.sql).

-- The workspace settings the origin mirrors here through its outbox: the router's second source while the
-- origin is down. Times are epoch milliseconds; a retried older write never overwrites a newer one.
CREATE TABLE IF NOT EXISTS settings_mirror (
    workspace_id TEXT PRIMARY KEY,
    sms_failover_enabled INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
