"""Per-workspace settings (failover on/off, default off) and the failover switch's phase.

`sms_failover_enabled` is what the workspace asked for. `failover_state` is where the two-phase switch has got to
(DESIGN.md, "Ledger authority" rule 4; ledger/switch.py drives it):

    off ──enable──▶ enabling ──(origin processes claim at the edge, edge seeded, edge told)──▶ on
    on ──disable──▶ disabling ──(edge acknowledged, its last claims settled and synced)──▶ off

Every state but `off` means the edge may accept sends for the workspace, so the origin claims each new key there.
A disable is queued in the outbox in the change's own transaction; an enable is queued by the switch once the edge
ledger has been seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsfailover.core.clock import Clock, SystemClock
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
_SELECT = """
SELECT s.workspace_id, s.sms_failover_enabled, s.updated_at, f.state AS failover_state
FROM workspace_settings s LEFT JOIN failover_switch f ON f.workspace_id = s.workspace_id
WHERE s.workspace_id = ?
"""
_START_ENABLING = """
INSERT INTO failover_switch (workspace_id, state, changed_at, seeded_to, acked_at) VALUES (?, 'enabling', ?, NULL, NULL)
ON CONFLICT (workspace_id) DO UPDATE SET state = 'enabling', changed_at = excluded.changed_at, seeded_to = NULL,
    acked_at = NULL
WHERE failover_switch.state NOT IN ('enabling', 'on')
"""
_START_DISABLING = """
UPDATE failover_switch SET state = 'disabling', changed_at = ?, seeded_to = NULL, acked_at = NULL
WHERE workspace_id = ? AND state IN ('enabling', 'on')
"""
_FORCE_OFF = "UPDATE failover_switch SET state = 'off', changed_at = ? WHERE workspace_id = ?"
_SWITCH_STATE = "SELECT state FROM failover_switch WHERE workspace_id = ?"

OFF, ENABLING, ON, DISABLING = "off", "enabling", "on", "disabling"


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    workspace_id: str
    sms_failover_enabled: bool = False
    updated_at_ms: int | None = None  # None: never changed, the contract's defaults
    failover_state: str = OFF


class SettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, workspace_id: str) -> WorkspaceSettings:
        rows = await self._db.fetch(_SELECT, (workspace_id,))
        if not rows:
            return WorkspaceSettings(workspace_id)
        row = rows[0]
        state = str(row["failover_state"] or OFF)
        return WorkspaceSettings(workspace_id, bool(row["sms_failover_enabled"]), int(str(row["updated_at"])), state)

    async def set_failover(
        self, workspace_id: str, enabled: bool, now_ms: int, *, force: bool = False
    ) -> WorkspaceSettings:
        """Store the wish and start the switch. An enable reaches the edge mirror only once the switch has seeded
        the edge ledger; a disable goes into the outbox now. `force` ends a disable at once (operator's call)."""
        upsert = (_UPSERT, (workspace_id, enabled, now_ms))
        if enabled:
            await self._db.transaction([upsert, (_START_ENABLING, (workspace_id, now_ms))])
        else:
            switch = (_FORCE_OFF, (now_ms, workspace_id)) if force else (_START_DISABLING, (now_ms, workspace_id))
            await self._db.transaction([upsert, switch, (_ENQUEUE, (now_ms, workspace_id))])
        return await self.get(workspace_id)

    async def switch_state(self, workspace_id: str) -> str:
        rows = await self._db.fetch(_SWITCH_STATE, (workspace_id,))
        return str(rows[0]["state"]) if rows else OFF


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
    """Whether the edge may accept sends for a workspace (its switch is not `off`), for the send path, cached
    briefly (a database read saved per send).

    A change made through this process is seen at once (invalidate); one made through another origin process
    within ttl_s, which is why the switch waits longer than ttl_s before it seeds the edge (ledger/switch.py).
    """

    def __init__(self, store: SettingsStore, ttl_s: float = 1.0, clock: Clock | None = None) -> None:
        self._store = store
        self.ttl_s = ttl_s
        self._clock = clock or SystemClock()
        self._cache: dict[str, tuple[bool, float]] = {}

    async def edge_may_accept(self, workspace_id: str) -> bool:
        hit = self._cache.get(workspace_id)
        now = self._clock.monotonic()
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        value = await self._store.switch_state(workspace_id) != OFF
        if len(self._cache) > 10_000:  # bounded: forget everything rather than grow
            self._cache.clear()
        self._cache[workspace_id] = (value, now)
        return value

    def invalidate(self, workspace_id: str) -> None:
        self._cache.pop(workspace_id, None)
