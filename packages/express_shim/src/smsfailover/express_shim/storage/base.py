"""What the origin needs from a database, beyond core's SqlExecutor: atomic batches and a clean close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

Params = Sequence[object]
Statement = tuple[str, Params]


class Database(Protocol):
    """core's SqlExecutor (fetch/execute, `?` placeholders, SQLite dialect) plus what the origin adds."""

    dialect: Literal["sqlite", "postgresql"]

    async def fetch(self, sql: str, params: Params = ()) -> list[dict[str, object]]: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """Run the statements atomically (all or none); rows changed by each."""
        ...

    async def script(self, sql: str) -> None:
        """Run DDL (several statements) in one transaction: migrations."""
        ...

    async def close(self) -> None: ...


def is_read_only(sql: str) -> bool:
    """A plain SELECT can go to a reader; anything else (incl. INSERT ... RETURNING via fetch) is a write."""
    return sql.lstrip().upper().startswith("SELECT")
