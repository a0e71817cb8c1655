"""What the origin needs from a database, beyond core's SqlExecutor: atomic batches and a clean close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from smsfailover.core.errors import ApiError

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


class StorageBusy(ApiError):
    """The database's write queue is at its bound: this write was refused before anything was queued, so none of it
    happened. It is its own answer, `503 storage_busy` with Retry-After (the contract's envelope): nothing was
    sent; the client fails over, or retries with the same Idempotency-Key."""

    def __init__(self, pending: int, limit: int, *, retry_after_s: int = 1) -> None:
        super().__init__(
            503,
            "storage_busy",
            "This endpoint's database has too many writes waiting and took nothing; nothing was sent. "
            "Retry with the same Idempotency-Key after Retry-After seconds.",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.pending = pending
        self.limit = limit


def is_read_only(sql: str) -> bool:
    """A plain SELECT can go to a reader; anything else (incl. INSERT ... RETURNING via fetch) is a write."""
    return sql.lstrip().upper().startswith("SELECT")
