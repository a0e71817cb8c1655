-- Which shard this database is (docs/scaling.md). The worker records it on first use and refuses to serve if its
-- configuration later names another shard count or order: a key's shard never changes silently.
CREATE TABLE IF NOT EXISTS shard_identity (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    shard_index INTEGER NOT NULL,
    shard_count INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
