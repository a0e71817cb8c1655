"""Copies the messages the edge sent into the origin's database (the seed's "refresh UI"), through a cursor.

The cursor (the edge's commit sequence) is stored after each page, so a restart resumes where it stopped and
nothing the edge sent while the origin was down is missed. Each D1 shard of the edge has its own sequence and so
its own cursor (`edge_messages` for shard 0, `edge_messages:N` for shard N); every page says how many shards
there are, and a round reads them all. Each synced send also enters the origin's own ledger as
the edge's record of the key (DESIGN.md, "Ledger authority" rule 1: a retry at the origin is answered from it), and
the send log, which the status route's failover count and edge figures come from, and the workspace's failover
events (failover_events.py: each send with the reason its router gave, which is not part of the message).
"""

from __future__ import annotations

import logging
from typing import Any

from smsfailover.core.clock import Clock, SystemClock
from smsfailover.core.ids import parse_rfc3339
from smsfailover.core.ledger import LedgerRecord, LedgerState, LedgerStore
from smsfailover.core.log import log_event
from smsfailover.core.message import payload_fingerprint
from smsfailover.core.sql import SqlMessageStore
from smsfailover.express_shim.delivery_updates import DeliveryUpdates
from smsfailover.express_shim.edge_client import EdgeClient, EdgeUnavailable
from smsfailover.express_shim.failover_events import FailoverEvents
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.window_stats import SendLog

CURSOR_NAME = "edge_messages"
PAGE_SIZE = 200
MAX_PAGES_PER_ROUND = 20  # bounded work per round; the next round carries on
_OK_STATUSES = frozenset({"queued", "sent", "delivered"})
_NOT_THE_MESSAGE = frozenset({"seq", "failover_reason"})  # the feed's own fields: kept out of rows and records


class SyncCursor:
    def __init__(self, db: Database, name: str = CURSOR_NAME) -> None:
        self._db = db
        self._name = name

    async def get(self) -> int:
        rows = await self._db.fetch("SELECT seq FROM sync_cursor WHERE name = ?", (self._name,))
        return int(str(rows[0]["seq"])) if rows else 0

    async def set(self, seq: int, now_ms: int) -> None:
        await self._db.execute(
            "INSERT INTO sync_cursor (name, seq, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
            (self._name, seq, now_ms),
        )


class EdgeMessageSync:
    def __init__(
        self,
        db: Database,
        edge: EdgeClient,
        messages: SqlMessageStore,
        send_log: SendLog,
        delivery: DeliveryUpdates | None = None,
        *,
        ledger: LedgerStore | None = None,
        lease_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self.shards = 1  # what the edge's last page said
        self._ledger = ledger
        self._lease_s = lease_s
        self._clock = clock or SystemClock()
        self.caught_up_from_ms = 0  # start time of the last round that reached the end of the feed
        self._delivery = delivery
        self._edge = edge
        self._messages = messages
        self._send_log = send_log
        self._events = FailoverEvents(db)

    async def run_once(self, now_ms: int) -> int:
        """Pull what the edge sent since the cursors, every shard; how many messages were copied."""
        started_ms = int(self._clock.time() * 1000)
        caught_up, copied, shard = True, 0, 0
        while shard < self.shards:
            try:
                shard_copied, shard_caught_up = await self._pull(shard, now_ms)
            except EdgeUnavailable as exc:  # one shard's failure never holds the others back
                log_event("edge_sync_shard_failed", level=logging.WARNING, shard=shard, reason=exc.reason)
                shard_copied, shard_caught_up = 0, False
            copied += shard_copied
            caught_up = caught_up and shard_caught_up
            shard += 1
        if caught_up:
            self.caught_up_from_ms = max(self.caught_up_from_ms, started_ms)
        if copied:
            log_event("edge_sync_copied", messages=copied)
        return copied

    async def _pull(self, shard: int, now_ms: int) -> tuple[int, bool]:
        """One shard's pages since its cursor: (copied, whether its feed's end was reached)."""
        cursor_store = SyncCursor(self._db, CURSOR_NAME if shard == 0 else f"{CURSOR_NAME}:{shard}")
        cursor = await cursor_store.get()
        copied = 0
        for _ in range(MAX_PAGES_PER_ROUND):
            answer = await self._edge.sync_messages(after=cursor, limit=PAGE_SIZE, shard=shard)
            count = answer.get("shards")
            self.shards = count if isinstance(count, int) and count >= 1 else 1
            data = answer.get("data")
            if not isinstance(data, list) or not data:
                return copied, True
            for item in data:
                if isinstance(item, dict) and await self._copy(item, now_ms):
                    copied += 1
            next_cursor = answer.get("next_cursor")
            if not isinstance(next_cursor, int) or next_cursor <= cursor:
                log_event("edge_sync_bad_cursor", level=logging.WARNING, cursor=str(next_cursor), shard=shard)
                return copied, False
            cursor = next_cursor
            await cursor_store.set(cursor, now_ms)
            if len(data) < PAGE_SIZE:
                return copied, True
        return copied, False

    async def _copy(self, item: dict[str, Any], now_ms: int) -> bool:
        message = {k: v for k, v in item.items() if k not in _NOT_THE_MESSAGE}
        if message.get("endpoint") != "edge":
            return False  # the feed is of edge sends; anything else is not ours to copy
        try:
            await self._messages.upsert(message)
            created_ms = int(parse_rfc3339(str(message["created_at"])) * 1000)
        except (KeyError, ValueError, TypeError) as exc:
            log_event("edge_sync_skipped_malformed", level=logging.WARNING, error=type(exc).__name__)
            return False
        status = str(message.get("status"))
        in_flight = status == "unknown" and not message.get("error")
        await self._adopt(message, created_ms, in_flight)
        if in_flight:
            return True  # still in flight at the edge: its outcome comes with a later page (the update bumps seq)
        latency = message.get("latency_ms")
        await self._send_log.record(
            workspace_id=str(message["workspace_id"]),
            endpoint="edge",
            ok=status in _OK_STATUSES,
            status=status,
            latency_ms=float(latency) if isinstance(latency, int | float) else 0.0,
            at_ms=created_ms,
            message_id=str(message["id"]),
        )
        await self._events.record(
            workspace_id=str(message["workspace_id"]),
            message_id=str(message["id"]),
            reason=item.get("failover_reason"),
            status=status,
            at_ms=created_ms,
        )
        sid = message.get("provider_message_id")
        if self._delivery is not None and isinstance(sid, str) and sid:
            await self._delivery.apply_parked(sid, now_ms)  # callbacks that came before the sync
        return True

    async def _adopt(self, message: dict[str, Any], created_ms: int, in_flight: bool) -> None:
        """The edge's record of this key, into the origin's ledger (never over an origin claim whose call may have
        begun, nor over a record of another attempt that is final here)."""
        if self._ledger is None:
            return
        created = created_ms / 1000
        media = message.get("media_urls") or []
        state = LedgerState.CLAIMED if in_flight else LedgerState.COMPLETED
        if _released_at_edge(message):
            state = LedgerState.RELEASED
        record = LedgerRecord(
            workspace_id=str(message["workspace_id"]),
            key=str(message["idempotency_key"]),
            fingerprint=payload_fingerprint(str(message["to"]), str(message.get("content") or ""), list(media)),
            state=state,
            endpoint="edge",
            lease_expires_at=created + self._lease_s,
            created_at=created,
            updated_at=self._clock.time(),
            message=message if state is LedgerState.COMPLETED else None,
            message_id=str(message["id"]),
        )
        if not await self._ledger.adopt(record, replacing=await _replaceable(self._ledger, record)):
            log_event("edge_send_beside_origin_record", level=logging.WARNING, workspace_id=record.workspace_id)


async def _replaceable(ledger: LedgerStore, record: LedgerRecord) -> str:
    """The message id of another attempt's claim here that the edge's record replaces: an origin claim whose call
    never began (no mark; the store checks again as it writes). Truth after a crash: the origin committed its
    claim and died before its edge claim, and the client's failover sent the key at the edge."""
    if record.state is LedgerState.RELEASED:
        return ""
    here = await ledger.get(record.workspace_id, record.key)
    if here is None or here.message_id == record.message_id or here.state is not LedgerState.CLAIMED:
        return ""
    return here.message_id if here.endpoint == "origin" and here.call_began_at is None else ""


def _released_at_edge(message: dict[str, Any]) -> bool:
    """The edge freed the key (nothing was sent): the provider refused it or could not be reached."""
    error = message.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return message.get("status") == "failed" and code in {"provider_rejected", "provider_unavailable"}
