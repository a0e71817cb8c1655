"""Fixtures of the origin's tests: a real database of each kind (SQLite file, PostgreSQL schema per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from smsfailover.express_shim.storage.sqlite import SqliteDatabase

from tests.origin.pg import PG_URL, drop_pg_schema, new_pg_schema


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
