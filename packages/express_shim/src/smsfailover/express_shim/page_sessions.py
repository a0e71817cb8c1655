"""The settings page's server-side sessions: a random id in the browser's cookie, its SHA-256 here.

A session remembers who signed in (one workspace, or an operator, who may open any workspace's page) and until
when: the token's own expiry, at most SESSION_MAX_S. The token itself is not kept anywhere, and signing out
deletes the row, so a copied cookie stops working at once. Expired rows are purged with the origin's other
retention work.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from smsfailover.express_shim.storage.base import Database

SESSION_MAX_S = 12 * 3600  # a working day: sign in again after that whatever the token's expiry

SESSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS page_sessions (
    session_hash TEXT PRIMARY KEY,
    workspace_id TEXT,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS page_sessions_expiry ON page_sessions (expires_at)
"""

SessionRole = Literal["workspace", "operator"]


@dataclass(frozen=True, slots=True)
class PageSession:
    role: SessionRole
    workspace_id: str | None  # None for an operator

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_open(self, workspace_id: str) -> bool:
        return self.is_operator or self.workspace_id == workspace_id


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class PageSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, session: PageSession, now_ms: int, token_expires_ms: int) -> str:
        """A new session's id, for the cookie: only its hash is stored."""
        session_id = secrets.token_urlsafe(32)
        expires = min(token_expires_ms, now_ms + SESSION_MAX_S * 1000)
        await self._db.execute(
            "INSERT INTO page_sessions (session_hash, workspace_id, role, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(session_id), session.workspace_id, session.role, now_ms, expires),
        )
        return session_id

    async def find(self, session_id: str, now_ms: int) -> PageSession | None:
        if not session_id or len(session_id) > 128:
            return None
        rows = await self._db.fetch(
            "SELECT workspace_id, role FROM page_sessions WHERE session_hash = ? AND expires_at > ?",
            (_hash(session_id), now_ms),
        )
        if not rows:
            return None
        role = str(rows[0]["role"])
        workspace = rows[0]["workspace_id"]
        if role == "operator":
            return PageSession("operator", None)
        return PageSession("workspace", str(workspace)) if role == "workspace" and workspace else None

    async def end(self, session_id: str) -> None:
        if session_id:
            await self._db.execute("DELETE FROM page_sessions WHERE session_hash = ?", (_hash(session_id),))

    async def purge(self, now_ms: int) -> int:
        return await self._db.execute("DELETE FROM page_sessions WHERE expires_at <= ?", (now_ms,))
