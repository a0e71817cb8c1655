"""The workspace settings the origin mirrors to the edge (drained from its outbox into PUT settings-mirror).

Last writer wins by the origin's `updated_at`, so an outbox retry of an older value never undoes a newer one.
A workspace never mirrored reads as the contract's defaults (failover off). With several D1 shards every shard
holds a copy (a claim checks its own shard's, in the claim's statement): a write is answered, and so acknowledged
to the origin, only once every shard took it; reads come from shard 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

UPSERT = """
INSERT INTO settings_mirror (workspace_id, sms_failover_enabled, updated_at, received_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (workspace_id) DO UPDATE SET
    sms_failover_enabled = excluded.sms_failover_enabled,
    updated_at = excluded.updated_at,
    received_at = excluded.received_at
WHERE excluded.updated_at >= settings_mirror.updated_at
"""
SELECT = "SELECT sms_failover_enabled, updated_at FROM settings_mirror WHERE workspace_id = ?"


class Executor(Protocol):
    async def fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...
    async def execute(self, sql: str, params: Any = ()) -> int: ...


@dataclass(frozen=True, slots=True)
class MirroredSettings:
    workspace_id: str
    sms_failover_enabled: bool
    updated_at: float | None  # epoch seconds; None when the origin never mirrored this workspace


class SettingsMirror:
    def __init__(self, databases: Sequence[Executor]) -> None:
        self._databases = tuple(databases)

    async def put(self, workspace_id: str, enabled: bool, updated_at: float, now: float) -> MirroredSettings:
        params = [workspace_id, int(enabled), round(updated_at * 1000), round(now * 1000)]
        await asyncio.gather(*(db.execute(UPSERT, params) for db in self._databases))
        return await self.get(workspace_id)

    async def get(self, workspace_id: str) -> MirroredSettings:
        rows = await self._databases[0].fetch(SELECT, [workspace_id])
        if not rows:
            return MirroredSettings(workspace_id, False, None)
        row = rows[0]
        return MirroredSettings(workspace_id, bool(row["sms_failover_enabled"]), int(row["updated_at"]) / 1000)
