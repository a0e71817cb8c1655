"""PostgreSQL for tests: the server at 127.0.0.1:5432 (db `test`), one fresh schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from smsfailover.express_shim.storage.postgres import PostgresDatabase

PG_URL = os.environ.get("SMSFAILOVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def new_pg_schema() -> str:
    """A fresh schema, so parallel and repeated runs never see each other's rows."""
    if not await _pg_available():
        pytest.skip("PostgreSQL is not reachable at " + PG_URL)
    schema = "t_" + uuid.uuid4().hex[:20]
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema


async def drop_pg_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[PostgresDatabase]:
    """A PostgresDatabase on a schema of its own, dropped afterwards."""
    schema = await new_pg_schema()
    db = await PostgresDatabase.connect(PG_URL, schema=schema)
    try:
        yield db
    finally:
        await db.close()
        await drop_pg_schema(schema)
