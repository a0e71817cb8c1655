"""The origin's copy of edge sends (SqlMessageStore.upsert, fed by the edge-message sync) never moves backwards.

Several origin processes sync from one cursor, so a page read earlier may be written last: it must not turn a sent
message back to `unknown`, drop its provider sid, or put an older state over a newer one. SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from smsfailover.core.ids import rfc3339
from smsfailover.core.sql import SqlMessageStore
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate

T0 = 1_790_000_000.0
MSG = "msg_01KB0000000000000000000001"


def edge_message(status: str, updated_at: float, **fields: Any) -> dict[str, Any]:
    return {
        "id": MSG,
        "workspace_id": "ws1",
        "idempotency_key": "k1",
        "to": "+16266635938",
        "content": "hi",
        "media_urls": [],
        "status": status,
        "endpoint": "edge",
        "ledger": "edge",
        "provider_message_id": None,
        "segments": 1,
        "encoding": "GSM-7",
        "latency_ms": None,
        "error": None,
        "created_at": rfc3339(T0),
        "updated_at": rfc3339(updated_at),
        **fields,
    }


SENT = edge_message("sent", T0 + 2, provider_message_id="SM1", latency_ms=120.0)
WRITE_AHEAD = edge_message("unknown", T0)  # the edge's row before its provider call


async def store_of(database: Database) -> SqlMessageStore:
    await migrate(database)
    return SqlMessageStore(database)


async def test_a_stale_page_written_last_leaves_the_sent_message_as_it_was(database: Database) -> None:
    store = await store_of(database)
    await store.upsert(WRITE_AHEAD)
    await store.upsert(SENT)
    await store.upsert(WRITE_AHEAD)  # another process's older page
    row = await store.get("ws1", MSG)
    assert row is not None
    assert (row["status"], row["provider_message_id"], row["latency_ms"]) == ("sent", "SM1", 120.0)
    assert row["updated_at"] == rfc3339(T0 + 2)


async def test_unknown_never_replaces_a_known_status_nor_null_a_sid_even_when_newer(database: Database) -> None:
    store = await store_of(database)
    await store.upsert(SENT)
    lost = {"code": "outcome_unknown", "message": "no answer"}
    await store.upsert(edge_message("unknown", T0 + 3, error=lost))
    row = await store.get("ws1", MSG)
    assert row is not None
    assert (row["status"], row["provider_message_id"], row["error"]) == ("sent", "SM1", None)


async def test_a_newer_state_moves_the_message_forward(database: Database) -> None:
    store = await store_of(database)
    await store.upsert(WRITE_AHEAD)
    await store.upsert(SENT)
    delivered = edge_message("delivered", T0 + 5, provider_message_id="SM1", latency_ms=120.0)
    await store.upsert(delivered)
    row = await store.get("ws1", MSG)
    assert row is not None
    assert (row["status"], row["provider_message_id"]) == ("delivered", "SM1")
    assert row["updated_at"] == rfc3339(T0 + 5)


async def test_an_unknown_send_settled_by_the_edge_is_copied(database: Database) -> None:
    store = await store_of(database)
    lost = {"code": "outcome_unknown", "message": "no answer"}
    await store.upsert(edge_message("unknown", T0 + 1, error=lost))
    not_sent = {"code": "not_sent", "message": "never began"}
    await store.upsert(edge_message("failed", T0 + 40, error=not_sent))
    row = await store.get("ws1", MSG)
    assert row is not None
    assert (row["status"], row["error"]) == ("failed", not_sent)


async def test_a_delivery_recorded_here_is_not_undone_by_the_edges_earlier_status(database: Database) -> None:
    """A status callback (origin only) advanced the row; the edge's row still says sent, its clock a little ahead."""
    store = await store_of(database)
    await store.upsert(SENT)
    await store.update("ws1", MSG, {"status": "delivered"}, T0 + 3)
    await store.upsert(edge_message("sent", T0 + 4, provider_message_id="SM1", latency_ms=120.0))
    row = await store.get("ws1", MSG)
    assert row is not None
    assert (row["status"], row["provider_message_id"]) == ("delivered", "SM1")
