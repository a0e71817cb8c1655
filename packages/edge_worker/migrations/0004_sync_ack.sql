-- How far the origin has copied this database's sync feed (edge_worker/sync.py): the highest `after` its
-- GET /v1/sync/messages calls have carried. The origin asks for `after=SEQ` only once it has stored every change up
-- to SEQ, so a message row whose seq is at or below this is at the origin, and the retention may delete it here.
CREATE TABLE IF NOT EXISTS sync_ack (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL,
    acked_at INTEGER NOT NULL
);
