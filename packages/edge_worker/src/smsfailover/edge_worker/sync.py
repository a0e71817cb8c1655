"""The feed of edge-sent messages the origin pulls (`GET /v1/sync/messages?shard=I&after=SEQ&limit=N`).

core's message table gives every change a new `seq` (in commit order: D1 runs one write at a time), so the
origin pages with the last `seq` it stored and never misses a message, whenever it comes back. Each D1 shard has
its own sequence: the origin keeps one cursor per shard, and every page says how many shards there are. The data
carries `content` (the origin stores what it lists); the route is for service tokens only.

Each page's `after` is also the origin's acknowledgement: it asks for `after=SEQ` only once it has stored every
change up to SEQ (express_shim/edge_sync.py stores its cursor after each page). The feed records the highest one in
the shard's `sync_ack` (migration 0004), in the same D1 batch as the page's read and behind the shard identity check
(an acknowledgement must never land in another shard's database); the retention (retention.py) deletes only rows
at or below it.

An item carries `failover_reason` (migration 0006) when the router said why it sent the message here: the origin
keeps it as the workspace's failover event; it is not part of the message object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smsfailover.core.clock import Clock
from smsfailover.core.sql import Statement, changed_since_call, message_from_row
from smsfailover.edge_worker.shards import Shards

# Never lowers the mark: a lagging origin process (its cursor read before another one stored a later page) or a
# retried call asks with an older `after`, which says nothing new.
_ACK = (
    "INSERT INTO sync_ack (id, seq, acked_at) VALUES (0, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, acked_at = excluded.acked_at WHERE excluded.seq > sync_ack.seq"
)


def ack_call(seq: int, now_ms: int) -> Statement:
    return _ACK, [seq, now_ms]


@dataclass(frozen=True, slots=True)
class SyncPage:
    data: list[dict[str, object]]
    next_cursor: int


class SyncFeed:
    def __init__(self, shards: Shards, clock: Clock) -> None:
        self._shards = shards
        self._clock = clock

    async def page(self, *, shard: int, after: int, limit: int) -> SyncPage:
        read = changed_since_call(after, limit, endpoint="edge")
        if after > 0:  # acknowledges everything up to `after`
            now_ms = round(self._clock.time() * 1000)
            rows = (await self._shards.batch(shard, [ack_call(after, now_ms), read], now_ms))[1]
        else:
            rows = await self._shards.databases[shard].fetch(*read)
        data = [_feed_item(row) for row in rows]
        last = data[-1].get("seq") if data else None
        return SyncPage(data, int(last) if isinstance(last, int) else after)


def _feed_item(row: Mapping[str, Any]) -> dict[str, object]:
    item = message_from_row(row)
    reason = row.get("failover_reason")
    if reason is not None:
        item["failover_reason"] = reason
    return item
