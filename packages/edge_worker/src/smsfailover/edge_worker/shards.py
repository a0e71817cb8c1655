"""The edge ledger spread over N D1 databases (docs/scaling.md).

A stable hash of (workspace, key) picks the shard that holds a key's ledger record and the edge's message row for
it, so every statement of one send lands in one database and a batch is one transaction. The settings mirror is
written to every shard (a claim's enabled check reads its own shard's copy, in the same statement) and read from
shard 0. N=1 is the plain case: everything in `DB`.

Each database records which shard it is (`shard_identity`, migration 0003) the first time a worker uses it; a
worker whose configuration names another count or order refuses to serve (503 not_configured) instead of looking
keys up in the wrong database. Every write batch also carries the check (`Shards.batch`), so an isolate that
verified under an old configuration cannot write into a re-numbered shard either. Growing N is the migration
docs/scaling.md describes, never a config edit alone.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from smsfailover.core.ledger import LedgerRecord, LedgerStore
from smsfailover.core.sql import BatchExecutor, SqlMessageStore, Statement

_RECORD_IDENTITY = (
    "INSERT INTO shard_identity (id, shard_index, shard_count, recorded_at) VALUES (0, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
_READ_IDENTITY = "SELECT shard_index, shard_count FROM shard_identity WHERE id = 0"
# Inserts nothing when the identity matches, records it when absent, and fails (primary key) when another identity
# is recorded: the batch it leads then rolls back whole.
_GUARD_IDENTITY = (
    "INSERT INTO shard_identity (id, shard_index, shard_count, recorded_at) SELECT 0, ?, ?, ? "
    "WHERE NOT EXISTS (SELECT 1 FROM shard_identity WHERE id = 0 AND shard_index = ? AND shard_count = ?)"
)


def shard_of(workspace_id: str, key: str, count: int) -> int:
    """The shard of a key: the first 8 bytes of SHA-256 over `workspace \\n key`, modulo the shard count."""
    if count == 1:
        return 0
    digest = hashlib.sha256(f"{workspace_id}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


class Shards:
    """The shard databases, in shard order, with their binding names (for status and errors)."""

    def __init__(self, databases: Sequence[BatchExecutor], names: Sequence[str] | None = None) -> None:
        if not databases:
            raise ValueError("at least one D1 database")
        self.databases = tuple(databases)
        self.names = tuple(names or (["DB"] + [f"DB_{i}" for i in range(1, len(databases))]))
        self._identity_problem: str | None = None
        self._verified: set[int] = set()  # shards whose identity this isolate has checked

    @property
    def count(self) -> int:
        return len(self.databases)

    def index(self, workspace_id: str, key: str) -> int:
        return shard_of(workspace_id, key, self.count)

    async def batch(self, index: int, statements: Sequence[Statement], now_ms: int) -> list[list[dict[str, Any]]]:
        """One transaction on shard `index`, led by the identity check; each statement's rows. A failed check
        makes this isolate verify its shards again before it serves the next request."""
        guard: Statement = (_GUARD_IDENTITY, [index, self.count, now_ms, index, self.count])
        try:
            rows = await self.databases[index].batch([guard, *statements])
        except Exception as exc:
            if "shard_identity" in str(exc):  # the guard's primary key: another identity is recorded there
                self._verified.discard(index)
            raise
        return rows[1:]

    async def verify(self, now_ms: int) -> str | None:
        """Record or check each database's shard identity, once per isolate; the problem, or None. A shard that
        does not answer stays unchecked (asked again next time); its writes still carry the check."""
        if self._identity_problem is not None or len(self._verified) == self.count:
            return self._identity_problem

        async def one(index: int) -> tuple[int, tuple[int, int] | None] | None:
            statements = [(_RECORD_IDENTITY, [index, self.count, now_ms]), (_READ_IDENTITY, [])]
            try:
                _inserted, rows = await self.databases[index].batch(statements)
            except Exception:
                return None
            return index, (int(rows[0]["shard_index"]), int(rows[0]["shard_count"])) if rows else None

        pending = [i for i in range(self.count) if i not in self._verified]
        for answer in await asyncio.gather(*(one(i) for i in pending)):
            if answer is None:
                continue
            index, held = answer
            if held != (index, self.count):
                self._identity_problem = (
                    f"D1 binding {self.names[index]} holds shard {held[0] if held else '?'} of "
                    f"{held[1] if held else '?'}, but SMSFAILOVER_D1_SHARDS names it shard {index} of {self.count}; "
                    "changing the shards is a migration (docs/scaling.md)"
                )
                break
            self._verified.add(index)
        return self._identity_problem

    async def health(self) -> list[dict[str, object]]:
        """Each shard's state, as health and ping report it."""

        async def one(index: int, db: BatchExecutor) -> dict[str, object]:
            try:
                await db.fetch("SELECT 1 AS ok", [])
            except Exception as exc:
                return {"shard": index, "binding": self.names[index], "ok": False, "error": type(exc).__name__}
            return {"shard": index, "binding": self.names[index], "ok": True}

        return list(await asyncio.gather(*(one(i, db) for i, db in enumerate(self.databases))))


class ShardedLedgerStore:
    """A LedgerStore per shard behind one: every call goes to its key's shard; purge goes to all."""

    def __init__(self, shards: Shards, stores: Sequence[LedgerStore]) -> None:
        self._shards = shards
        self._stores = tuple(stores)

    def _store(self, workspace_id: str, key: str) -> LedgerStore:
        return self._stores[self._shards.index(workspace_id, key)]

    async def try_claim(self, record: LedgerRecord) -> bool:
        return await self._store(record.workspace_id, record.key).try_claim(record)

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        return await self._store(workspace_id, key).get(workspace_id, key)

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        await self._store(workspace_id, key).complete(workspace_id, key, message, now, message_id=message_id)

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        await self._store(workspace_id, key).release(workspace_id, key, now, message_id=message_id)

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        return await self._store(workspace_id, key).mark_call_began(workspace_id, key, now, message_id=message_id)

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        return await self._store(record.workspace_id, record.key).adopt(record, replacing=replacing)

    async def purge(self, older_than: float) -> int:
        return sum(await asyncio.gather(*(store.purge(older_than) for store in self._stores)))


class ShardedMessageStore:
    """The edge's message rows, each in its key's shard (beside the key's ledger record).

    Lookups by key go to one shard. A lookup or update by message id goes to every shard (at most one holds the id):
    edge sends write their rows through SendOpening, so no insert here could tell which shard holds an id."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._stores = tuple(SqlMessageStore(db) for db in shards.databases)

    def store(self, index: int) -> SqlMessageStore:
        return self._stores[index]

    async def insert(self, message: Mapping[str, Any]) -> None:
        index = self._shards.index(str(message["workspace_id"]), str(message["idempotency_key"]))
        await self._stores[index].insert(message)

    async def update(self, workspace_id: str, message_id: str, fields: Mapping[str, Any], now: float) -> None:
        await asyncio.gather(*(s.update(workspace_id, message_id, fields, now) for s in self._stores))

    async def get(self, workspace_id: str, message_id: str) -> dict[str, object] | None:
        found = await asyncio.gather(*(s.get(workspace_id, message_id) for s in self._stores))
        return next((message for message in found if message is not None), None)

    async def get_by_key(self, workspace_id: str, key: str) -> dict[str, object] | None:
        return await self._stores[self._shards.index(workspace_id, key)].get_by_key(workspace_id, key)
