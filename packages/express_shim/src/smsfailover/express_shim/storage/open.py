"""Open the database a URL names: `sqlite:///path` or `postgresql://...`."""

from __future__ import annotations

from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from smsfailover.express_shim.storage.sqlite import MAX_PENDING_WRITES, SqliteDatabase


async def open_database(
    url: str, *, schema: str | None = None, max_pending_writes: int = MAX_PENDING_WRITES
) -> Database:
    """`max_pending_writes`: SQLite's bound on queued writes (storage/sqlite.py); PostgreSQL's pool bounds its own."""
    if url.startswith("sqlite:///"):
        return SqliteDatabase.from_url(url, max_pending_writes=max_pending_writes)
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase.connect(url, schema=schema)
    raise ValueError(f"SMSFAILOVER_DATABASE_URL must start with sqlite:/// or postgresql://, not {url.split(':')[0]!r}")
