"""PostgreSQL for the origin, through an asyncpg pool, speaking core's SQLite-dialect SQL.

core writes its SQL once, with `?` placeholders and SQLite's loose typing. Here placeholders become `$n`,
and each argument is coerced to the type PostgreSQL inferred for its parameter (asyncpg is strict: a float
for a BIGINT or an int for a BOOLEAN would be refused), so the same statements run on both databases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
from smsfailover.express_shim.storage.base import Params, Statement
from smsfailover.express_shim.storage.sqlite import split_statements

_DDL_LOCK = 0x5F5E_0D01  # an arbitrary advisory-lock id for the origin's DDL
_INT_TYPES = frozenset({"int2", "int4", "int8"})
_FLOAT_TYPES = frozenset({"float4", "float8", "numeric"})
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})


def to_dollar_placeholders(sql: str) -> str:
    """`?` -> `$1, $2, ...`, leaving `?` inside quoted literals alone."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            out.append(ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


_DDL_REWRITES = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),  # epoch milliseconds overflow PostgreSQL's 32-bit INTEGER
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    # a second process that waited on the DDL lock re-runs the script: SQLite's single writer never does
    (re.compile(r"\bADD COLUMN (?!IF NOT EXISTS)", re.I), "ADD COLUMN IF NOT EXISTS "),
]


def to_postgres_ddl(sql: str) -> str:
    """SQLite DDL (core's SCHEMA, the migrations) in PostgreSQL's types."""
    for pattern, replacement in _DDL_REWRITES:
        sql = pattern.sub(replacement, sql)
    return sql


def _coerce(value: object, pg_type: str) -> object:
    if value is None:
        return None
    if pg_type in _INT_TYPES and isinstance(value, float | bool):
        return int(value)
    if pg_type in _FLOAT_TYPES and isinstance(value, int):
        return float(value)
    if pg_type == "bool" and isinstance(value, int):
        return bool(value)
    if pg_type in _TEXT_TYPES and not isinstance(value, str):
        return str(value)
    return value


def _rows_changed(status: str) -> int:
    """asyncpg's command tag ("INSERT 0 1", "UPDATE 3") -> the row count."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._param_types: dict[str, list[str]] = {}

    @classmethod
    async def connect(cls, url: str, *, schema: str | None = None, max_size: int = 10) -> PostgresDatabase:
        settings = {"search_path": schema} if schema else None
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, server_settings=settings)
        return cls(pool)

    async def fetch(self, sql: str, params: Params = ()) -> list[dict[str, object]]:
        async with self._pool.acquire() as conn:
            query, args = await self._prepare(conn, sql, params)
            return [dict(row) for row in await conn.fetch(query, *args)]

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._pool.acquire() as conn:
            return await self._execute(conn, sql, params)

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        async with self._pool.acquire() as conn, conn.transaction():
            return [await self._execute(conn, sql, params) for sql, params in statements]

    async def script(self, sql: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # one DDL script at a time across processes: concurrent CREATE ... IF NOT EXISTS can still collide
            await conn.execute(f"SELECT pg_advisory_xact_lock({_DDL_LOCK})")
            for statement in split_statements(to_postgres_ddl(sql)):
                await conn.execute(statement)

    async def close(self) -> None:
        await self._pool.close()

    async def _execute(self, conn: Any, sql: str, params: Params) -> int:
        query, args = await self._prepare(conn, sql, params)
        if not args:
            return _rows_changed(await conn.execute(query))
        return _rows_changed(await conn.execute(query, *args))

    async def _prepare(self, conn: Any, sql: str, params: Params) -> tuple[str, list[object]]:
        query = to_dollar_placeholders(sql)
        if not params:
            return query, []
        types = self._param_types.get(query)
        if types is None:
            statement = await conn.prepare(query)
            types = [t.name for t in statement.get_parameters()]
            self._param_types[query] = types
        return query, [_coerce(value, pg) for value, pg in zip(params, types, strict=True)]
