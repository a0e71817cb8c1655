"""Both databases behind the one interface: the same behaviour on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from smsfailover.express_shim.storage.admission import admission_scope
from smsfailover.express_shim.storage.base import Database, StorageBusy
from smsfailover.express_shim.storage.postgres import to_dollar_placeholders, to_postgres_ddl
from smsfailover.express_shim.storage.sqlite import SqliteDatabase

T = TypeVar("T")

TABLE = """
CREATE TABLE IF NOT EXISTS items (
    k TEXT PRIMARY KEY,
    n INTEGER NOT NULL,
    flag BOOLEAN NOT NULL DEFAULT false,
    ratio REAL
)
"""


async def test_insert_on_conflict_returning_is_first_writer_wins(database: Database) -> None:
    await database.script(TABLE)
    sql = "INSERT INTO items (k, n) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING k"
    assert await database.fetch(sql, ("a", 1)) == [{"k": "a"}]
    assert await database.fetch(sql, ("a", 2)) == []
    assert await database.fetch("SELECT n FROM items WHERE k = ?", ("a",)) == [{"n": 1}]


async def test_loose_python_types_are_coerced_to_the_column_types(database: Database) -> None:
    await database.script(TABLE)
    # a float epoch for an INTEGER column, an int for a BOOLEAN, an int for a REAL: what core's SQL passes
    changed = await database.execute(
        "INSERT INTO items (k, n, flag, ratio) VALUES (?, ?, ?, ?)", ("b", 1_790_000_000_123.0, 1, 3)
    )
    assert changed == 1
    rows = await database.fetch("SELECT n, flag, ratio FROM items WHERE k = ?", ("b",))
    assert rows[0]["n"] == 1_790_000_000_123
    assert bool(rows[0]["flag"]) is True
    assert rows[0]["ratio"] == 3.0


async def test_execute_returns_rows_changed(database: Database) -> None:
    await database.script(TABLE)
    for i in range(3):
        await database.execute("INSERT INTO items (k, n) VALUES (?, ?)", (f"k{i}", i))
    assert await database.execute("UPDATE items SET n = n + 1 WHERE n >= ?", (1,)) == 2
    assert await database.execute("DELETE FROM items WHERE k = ?", ("nope",)) == 0


async def test_a_transaction_is_all_or_nothing(database: Database) -> None:
    await database.script(TABLE)
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await database.transaction(
            [
                ("INSERT INTO items (k, n) VALUES (?, ?)", ("t1", 1)),
                ("INSERT INTO items (k, n) VALUES (?, ?)", ("t1", 2)),  # duplicate key
            ]
        )
    assert await database.fetch("SELECT k FROM items") == []
    assert await database.transaction([("INSERT INTO items (k, n) VALUES (?, ?)", ("t2", 1))]) == [1]


async def test_concurrent_writes_all_land_and_a_failing_one_fails_alone(database: Database) -> None:
    await database.script(TABLE)
    await database.execute("INSERT INTO items (k, n) VALUES (?, ?)", ("dup", 0))

    async def insert(k: str) -> int:
        return await database.execute("INSERT INTO items (k, n) VALUES (?, ?)", (k, 1))

    results = await asyncio.gather(*(insert(f"c{i}") for i in range(100)), insert("dup"), return_exceptions=True)

    assert results[:100] == [1] * 100
    assert isinstance(results[100], Exception)
    rows = await database.fetch("SELECT COUNT(*) AS c FROM items")
    assert int(str(rows[0]["c"])) == 101


async def test_sqlite_groups_concurrent_writes_into_few_commits(tmp_path: object) -> None:
    db = SqliteDatabase(f"{tmp_path}/grouped.db")
    try:
        await db.script(TABLE)
        before = db.commits
        await asyncio.gather(*(db.execute("INSERT INTO items (k, n) VALUES (?, ?)", (f"g{i}", i)) for i in range(200)))
        assert db.commits - before < 200
        assert (await db.fetch("SELECT COUNT(*) AS c FROM items"))[0]["c"] == 200
    finally:
        await db.close()


async def test_sqlite_concurrent_reads_each_get_their_rows_and_a_failing_one_fails_alone(tmp_path: object) -> None:
    db = SqliteDatabase(f"{tmp_path}/reads.db")
    try:
        await db.script(TABLE)
        await asyncio.gather(*(db.execute("INSERT INTO items (k, n) VALUES (?, ?)", (f"r{i}", i)) for i in range(50)))

        async def read(i: int) -> list[dict[str, object]]:
            return await db.fetch("SELECT n FROM items WHERE k = ?", (f"r{i}",))

        results = await asyncio.gather(  # one loop iteration's reads cross to a reader as one batch
            *(read(i) for i in range(50)), db.fetch("SELECT nope FROM items"), return_exceptions=True
        )
        assert results[:50] == [[{"n": i}] for i in range(50)]
        assert isinstance(results[50], sqlite3.OperationalError)
    finally:
        await db.close()


async def test_sqlite_uses_wal(tmp_path: object) -> None:
    db = SqliteDatabase(f"{tmp_path}/wal.db")
    try:
        rows = await db.fetch("SELECT * FROM pragma_journal_mode")
        assert rows == [{"journal_mode": "wal"}]
    finally:
        await db.close()


async def test_sqlite_commits_with_synchronous_full(tmp_path: object) -> None:
    """Under WAL, FULL syncs the WAL at every commit: a claim the caller was told about survives a power cut."""
    db = SqliteDatabase(f"{tmp_path}/durable.db")
    try:
        # not a SELECT, so it runs on the writer's connection: the one that commits
        assert await db.fetch("PRAGMA synchronous") == [{"synchronous": 2}]
    finally:
        await db.close()


INSERT = "INSERT INTO items (k, n) VALUES (?, ?)"


@contextlib.contextmanager
def write_lock_held(path: str) -> Iterator[None]:
    """Another connection holds the write lock: the writer thread waits (busy_timeout) and commits nothing."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def elsewhere(step: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task in a context of its own: another request's write, outside this one's admission scope."""
    return asyncio.get_running_loop().create_task(step, context=contextvars.Context())


async def keys(db: SqliteDatabase) -> set[object]:
    return {row["k"] for row in await db.fetch("SELECT k FROM items")}


async def test_sqlite_refuses_a_write_past_its_bound_at_once_and_commits_every_queued_one(tmp_path: object) -> None:
    path = f"{tmp_path}/bound.db"
    db = SqliteDatabase(path, max_pending_writes=3)
    try:
        await db.script(TABLE)
        before = db.commits
        with write_lock_held(path):
            queued = [asyncio.ensure_future(db.execute(INSERT, (f"q{i}", i))) for i in range(3)]
            await until(lambda: db.pending_writes == 3, "three queued writes")

            with pytest.raises(StorageBusy) as refused:
                await db.execute(INSERT, ("over", 9))

            error = refused.value
            assert (error.status, error.code, error.headers) == (503, "storage_busy", {"Retry-After": "1"})
            assert error.envelope()["error"] == {"code": "storage_busy", "message": error.message}
            assert (error.pending, error.limit) == (3, 3)
            assert db.pending_writes == 3  # the refused write was never queued
            assert not any(write.done() for write in queued)
        assert await asyncio.gather(*queued) == [1, 1, 1]
        assert await keys(db) == {"q0", "q1", "q2"}
        assert db.commits - before == 1  # issued in one loop iteration: one group, one commit (one WAL sync)
        assert db.pending_writes == 0
        assert await db.execute(INSERT, ("later", 1)) == 1  # room again
    finally:
        await db.close()


async def test_sqlite_a_request_whose_first_write_was_taken_is_never_refused_a_later_one(tmp_path: object) -> None:
    """A send's settle or release finishes work already accepted: it passes a full queue; new work does not."""
    path = f"{tmp_path}/admitted.db"
    db = SqliteDatabase(path, max_pending_writes=2)
    try:
        await db.script(TABLE)
        with admission_scope() as request:
            assert await db.execute(INSERT, ("claim", 1)) == 1
            assert request.admitted
            with write_lock_held(path):
                others = [elsewhere(db.execute(INSERT, (f"other{i}", i))) for i in range(2)]
                await until(lambda: db.pending_writes == 2, "the queue at its bound")
                with pytest.raises(StorageBusy):
                    await elsewhere(db.execute(INSERT, ("new", 3)))

                settle = asyncio.ensure_future(db.execute("UPDATE items SET n = 2 WHERE k = ?", ("claim",)))
                await until(lambda: db.pending_writes == 3, "the settle queued past the bound")
            assert await settle == 1
            assert await asyncio.gather(*others) == [1, 1]
        assert await keys(db) == {"claim", "other0", "other1"}
    finally:
        await db.close()


def test_placeholders_are_numbered_outside_literals() -> None:
    assert to_dollar_placeholders("SELECT '?' , ? WHERE a = ? AND b = '??'") == (
        "SELECT '?' , $1 WHERE a = $2 AND b = '??'"
    )


def test_sqlite_ddl_types_become_postgres_types() -> None:
    ddl = to_postgres_ddl("id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER, r REAL, b BLOB")
    assert ddl == "id BIGSERIAL PRIMARY KEY, at BIGINT, r DOUBLE PRECISION, b BYTEA"


async def test_sqlite_close_finishes_the_writes_already_issued(tmp_path: object) -> None:
    db = SqliteDatabase(f"{tmp_path}/close.db")
    await db.script(TABLE)
    pending = [
        asyncio.ensure_future(db.execute("INSERT INTO items (k, n) VALUES (?, ?)", (f"z{i}", i))) for i in range(20)
    ]
    await asyncio.sleep(0)  # the writes are issued, not yet handed to the writer thread
    await asyncio.wait_for(db.close(), timeout=10)
    assert await asyncio.wait_for(asyncio.gather(*pending), timeout=10) == [1] * 20
    reopened = SqliteDatabase(f"{tmp_path}/close.db")
    try:
        assert (await reopened.fetch("SELECT COUNT(*) AS c FROM items"))[0]["c"] == 20
    finally:
        await reopened.close()
