"""The feed of edge-sent messages the origin pulls (`GET /v1/sync/messages?after=SEQ&limit=N`).

Placeholder until core's message schema is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SyncPage:
    data: list[dict[str, object]]
    next_cursor: int


class SyncFeed:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def page(self, *, after: int, limit: int) -> SyncPage:
        return SyncPage([], after)
