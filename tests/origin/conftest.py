"""Fixtures of the origin's tests: a real database of each kind (SQLite file, PostgreSQL schema per test)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from smsfailover.express_shim.storage.sqlite import SqliteDatabase

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db: Database = SqliteDatabase(str(tmp_path / "origin.db"))
        yield db
        await db.close()
        return
    schema = await new_pg_schema()
    pg = await PostgresDatabase.connect(PG_URL, schema=schema)
    yield pg
    await pg.close()
    await drop_pg_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind
