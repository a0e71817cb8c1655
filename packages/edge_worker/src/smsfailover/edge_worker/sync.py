"""The feed of edge-sent messages the origin pulls (`GET /v1/sync/messages?shard=I&after=SEQ&limit=N`).

core's message table gives every change a new `seq` (in commit order: D1 runs one write at a time), so the
origin pages with the last `seq` it stored and never misses a message, whenever it comes back. Each D1 shard has
its own sequence: the origin keeps one cursor per shard, and every page says how many shards there are. The data
carries `content` (the origin stores what it lists); the route is for service tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsfailover.edge_worker.shards import ShardedMessageStore


@dataclass(frozen=True, slots=True)
class SyncPage:
    data: list[dict[str, object]]
    next_cursor: int


class SyncFeed:
    def __init__(self, messages: ShardedMessageStore) -> None:
        self._messages = messages

    async def page(self, *, shard: int, after: int, limit: int) -> SyncPage:
        data = await self._messages.store(shard).changed_since(after, limit, endpoint="edge")
        last = data[-1].get("seq") if data else None
        return SyncPage(data, int(last) if isinstance(last, int) else after)
