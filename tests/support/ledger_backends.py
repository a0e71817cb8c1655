"""LedgerStore backends for the conformance suite (tests/unit/core/test_ledger_store_conformance.py).

Each backend is an async context manager factory: given pytest's tmp_path it yields an empty, ready LedgerStore and
cleans up after. To add one, write the factory and register it in one line, with any marks it needs:

    register_ledger_backend("postgresql", postgres_ledger_store, pytest.mark.postgres)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from smsfailover.core.ledger import InMemoryLedgerStore, LedgerStore
from smsfailover.core.sql import SqliteExecutor, SqlLedgerStore

LedgerBackend = Callable[[Path], AbstractAsyncContextManager[LedgerStore]]

LEDGER_BACKENDS: dict[str, LedgerBackend] = {}
LEDGER_BACKEND_MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {}


def register_ledger_backend(name: str, factory: LedgerBackend, *marks: pytest.MarkDecorator) -> None:
    if name in LEDGER_BACKENDS:
        raise ValueError(f"a ledger backend named {name!r} is already registered")
    LEDGER_BACKENDS[name] = factory
    LEDGER_BACKEND_MARKS[name] = marks


def ledger_backend_params() -> list[object]:
    """The registry as pytest params: `@pytest.mark.parametrize("backend", ledger_backend_params())`."""
    return [pytest.param(name, marks=LEDGER_BACKEND_MARKS[name], id=name) for name in LEDGER_BACKENDS]


@asynccontextmanager
async def memory_ledger_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    yield InMemoryLedgerStore()


@asynccontextmanager
async def sqlite_ledger_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    db = SqliteExecutor(str(tmp_path / "ledger.sqlite3"))
    try:
        db.create_schema()
        yield SqlLedgerStore(db)
    finally:
        db.close()


@asynccontextmanager
async def origin_sqlite_ledger_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    """The origin's SQLite (writer thread, grouped commits) after its migrations."""
    from smsfailover.express_shim.storage.migrations import migrate
    from smsfailover.express_shim.storage.sqlite import SqliteDatabase

    db = SqliteDatabase(str(tmp_path / "origin.db"))
    try:
        await migrate(db)
        yield SqlLedgerStore(db)
    finally:
        await db.close()


@asynccontextmanager
async def postgres_ledger_store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    """The origin's PostgreSQL (asyncpg) after its migrations, on a schema of its own."""
    from smsfailover.express_shim.storage.migrations import migrate

    from tests.origin.pg import postgres_database

    async with postgres_database() as db:
        await migrate(db)
        yield SqlLedgerStore(db)


register_ledger_backend("memory", memory_ledger_store)
register_ledger_backend("sqlite", sqlite_ledger_store)
register_ledger_backend("origin-sqlite", origin_sqlite_ledger_store)
register_ledger_backend("postgresql", postgres_ledger_store, pytest.mark.postgres)
