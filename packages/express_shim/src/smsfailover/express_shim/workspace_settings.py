"""Per-workspace settings (failover on/off, default off), each change queued in the outbox atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass

from smsfailover.express_shim.storage.base import Database

_UPSERT = """
INSERT INTO workspace_settings (workspace_id, sms_failover_enabled, updated_at) VALUES (?, ?, ?)
ON CONFLICT (workspace_id) DO UPDATE SET
    sms_failover_enabled = excluded.sms_failover_enabled,
    updated_at = CASE WHEN excluded.updated_at > workspace_settings.updated_at
                      THEN excluded.updated_at ELSE workspace_settings.updated_at + 1 END
"""
# The outbox row copies what was just written, in the same transaction: the mirror can never miss a change.
_ENQUEUE = """
INSERT INTO settings_outbox
    (workspace_id, sms_failover_enabled, updated_at, attempts, next_attempt_at, created_at)
SELECT workspace_id, sms_failover_enabled, updated_at, 0, 0, ? FROM workspace_settings WHERE workspace_id = ?
"""
_SELECT = "SELECT workspace_id, sms_failover_enabled, updated_at FROM workspace_settings WHERE workspace_id = ?"


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    workspace_id: str
    sms_failover_enabled: bool = False
    updated_at_ms: int | None = None  # None: never changed, the contract's defaults


class SettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, workspace_id: str) -> WorkspaceSettings:
        rows = await self._db.fetch(_SELECT, (workspace_id,))
        if not rows:
            return WorkspaceSettings(workspace_id)
        row = rows[0]
        return WorkspaceSettings(workspace_id, bool(row["sms_failover_enabled"]), int(str(row["updated_at"])))

    async def set_failover(self, workspace_id: str, enabled: bool, now_ms: int) -> WorkspaceSettings:
        await self._db.transaction([(_UPSERT, (workspace_id, enabled, now_ms)), (_ENQUEUE, (now_ms, workspace_id))])
        return await self.get(workspace_id)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    workspace_id: str
    sms_failover_enabled: bool
    updated_at_ms: int
    attempts: int


class SettingsOutbox:
    """The changes not yet acknowledged by the edge mirror, oldest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def due(self, now_ms: int, limit: int = 100) -> list[OutboxEntry]:
        rows = await self._db.fetch(
            "SELECT id, workspace_id, sms_failover_enabled, updated_at, attempts FROM settings_outbox "
            "WHERE next_attempt_at <= ? ORDER BY id LIMIT ?",
            (now_ms, limit),
        )
        return [
            OutboxEntry(
                id=int(str(r["id"])),
                workspace_id=str(r["workspace_id"]),
                sms_failover_enabled=bool(r["sms_failover_enabled"]),
                updated_at_ms=int(str(r["updated_at"])),
                attempts=int(str(r["attempts"])),
            )
            for r in rows
        ]

    async def acknowledge(self, entry: OutboxEntry) -> None:
        # older changes of the same workspace are superseded by this acknowledged one
        await self._db.execute(
            "DELETE FROM settings_outbox WHERE workspace_id = ? AND id <= ?", (entry.workspace_id, entry.id)
        )

    async def retry_later(self, entry: OutboxEntry, next_attempt_ms: int) -> None:
        await self._db.execute(
            "UPDATE settings_outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
            (next_attempt_ms, entry.id),
        )

    async def pending_count(self) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) AS n FROM settings_outbox")
        return int(str(rows[0]["n"]))


class FailoverFlags:
    """The failover flag per workspace for the send path, cached briefly (a database read saved per send).

    A change made through this process is seen at once (invalidate); one made through another origin process
    within ttl_s.
    """

    def __init__(self, store: SettingsStore, ttl_s: float = 1.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[bool, float]] = {}

    async def enabled(self, workspace_id: str) -> bool:
        hit = self._cache.get(workspace_id)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self._ttl_s:
            return hit[0]
        value = (await self._store.get(workspace_id)).sms_failover_enabled
        if len(self._cache) > 10_000:  # bounded: forget everything rather than grow
            self._cache.clear()
        self._cache[workspace_id] = (value, now)
        return value

    def invalidate(self, workspace_id: str) -> None:
        self._cache.pop(workspace_id, None)
