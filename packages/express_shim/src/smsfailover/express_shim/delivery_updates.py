"""Delivery status updates from the provider, applied to messages by provider sid, only ever forward.

A callback can arrive before the message it is about has its sid recorded (the provider calls back while our
send is still writing its answer, or before an edge send is synced). Such a callback is parked and applied as
soon as the sid is recorded, instead of being lost.
"""

from __future__ import annotations

import json
import logging

from smsfailover.core.log import log_event
from smsfailover.core.sql import SqlMessageStore
from smsfailover.express_shim.delivery_status import statuses_that_may_advance_to
from smsfailover.express_shim.storage.base import Database

PARKED_TABLE = """
CREATE TABLE IF NOT EXISTS parked_callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_callbacks_sid ON parked_callbacks (provider_message_id);
CREATE INDEX IF NOT EXISTS parked_callbacks_time ON parked_callbacks (received_at)
"""


def _error_json(error_code: str | None) -> str | None:
    if not error_code:
        return None
    code = "".join(ch for ch in error_code if ch.isalnum())[:16]
    return json.dumps(
        {"code": "provider_error", "message": "The provider reported a delivery error.", "provider_code": code}
    )


class DeliveryUpdates:
    def __init__(self, db: Database, messages: SqlMessageStore) -> None:
        self._db = db
        self._messages = messages

    async def apply(self, sid: str, status: str, error_code: str | None, now_ms: int) -> bool:
        """Advance the message with this sid; park the update if no message has the sid yet."""
        message = await self._messages.get_by_provider_id(sid)
        if message is None:
            await self._db.execute(
                "INSERT INTO parked_callbacks (provider_message_id, status, error_code, received_at) "
                "VALUES (?, ?, ?, ?)",
                (sid, status, error_code, now_ms),
            )
            log_event("delivery_update_parked", level=logging.INFO, status=status)
            # the sid may have been recorded between our read and the insert: then apply it now
            return await self.apply_parked(sid, now_ms) > 0
        return await self._advance(str(message["id"]), str(message["workspace_id"]), status, error_code, now_ms)

    async def apply_parked(self, sid: str, now_ms: int) -> int:
        """Apply (oldest first) and drop the updates parked for sid; how many moved the status."""
        rows = await self._db.fetch(
            "SELECT id, status, error_code FROM parked_callbacks WHERE provider_message_id = ? ORDER BY id", (sid,)
        )
        if not rows:
            return 0
        message = await self._messages.get_by_provider_id(sid)
        if message is None:
            return 0
        moved = 0
        for row in rows:
            error_code = row["error_code"]
            if await self._advance(
                str(message["id"]),
                str(message["workspace_id"]),
                str(row["status"]),
                str(error_code) if error_code else None,
                now_ms,
            ):
                moved += 1
        await self._db.execute(
            "DELETE FROM parked_callbacks WHERE provider_message_id = ? AND id <= ?",
            (sid, max(int(str(r["id"])) for r in rows)),
        )
        return moved

    async def purge(self, older_than_ms: int) -> int:
        return await self._db.execute("DELETE FROM parked_callbacks WHERE received_at < ?", (older_than_ms,))

    async def _advance(
        self, message_id: str, workspace_id: str, status: str, error_code: str | None, now_ms: int
    ) -> bool:
        allowed = statuses_that_may_advance_to(status)
        if not allowed:
            return False
        placeholders = ", ".join("?" for _ in allowed)
        assignments = "status = ?, updated_at = ?, seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages)"
        params: list[object] = [status, now_ms]
        error = _error_json(error_code) if status in ("failed", "undelivered") else None
        if error is not None:
            assignments += ", error = ?"
            params.append(error)
        changed = await self._db.execute(
            f"UPDATE messages SET {assignments} WHERE id = ? AND status IN ({placeholders})",  # noqa: S608
            [*params, message_id, *allowed],
        )
        if changed:
            log_event("delivery_status_advanced", workspace_id=workspace_id, status=status)
        return changed > 0
