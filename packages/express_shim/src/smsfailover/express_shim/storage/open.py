"""Open the database a URL names: `sqlite:///path` or `postgresql://...`."""

from __future__ import annotations

from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from smsfailover.express_shim.storage.sqlite import SqliteDatabase


async def open_database(url: str, *, schema: str | None = None) -> Database:
    if url.startswith("sqlite:///"):
        return SqliteDatabase.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase.connect(url, schema=schema)
    raise ValueError(f"SMSFAILOVER_DATABASE_URL must start with sqlite:/// or postgresql://, not {url.split(':')[0]!r}")
