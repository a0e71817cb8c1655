"""The origin's ledger keeps no message content: neither for its own sends nor for edge sends its sync adopts, while
replays answer the original body and a changed payload is still 422 idempotency_key_reused."""

from __future__ import annotations

import json
from pathlib import Path

from smsfailover.core.ids import new_message_id, rfc3339
from smsfailover.express_shim.storage.base import Database

from tests.origin.fake_edge import FakeEdgeState
from tests.origin.harness import VALID_TO, new_key, new_workspace, running_origin


async def ledger_messages(database: Database, key: str) -> list[str]:
    rows = await database.fetch("SELECT message FROM idempotency_ledger WHERE idempotency_key = ?", (key,))
    return [str(row["message"]) for row in rows]


async def test_an_origin_send_keeps_no_content_in_the_ledger_and_replays_the_original_body(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, background=False) as origin:
        ws, key = new_workspace(), new_key()
        first = await origin.send(ws, key=key, content="my private words")
        assert first.status_code == 201
        assert first.json()["content"] == "my private words"

        [kept] = await ledger_messages(origin.services.db, key)
        assert "my private words" not in kept
        assert json.loads(kept) == {name: value for name, value in first.json().items() if name != "content"}

        replay = await origin.send(ws, key=key, content="my private words")
        assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (200, "true")
        assert replay.json() == first.json()
        reused = await origin.send(ws, key=key, content="other words")
        assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused")


async def test_an_edge_send_adopted_by_the_sync_keeps_no_content_and_replays_at_the_origin(tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin("sqlite", tmp_path, state, background=False) as origin:
        ws, key = new_workspace(), new_key()
        now = origin.services.clock.time()
        sent_by_edge: dict[str, object] = {
            "id": new_message_id(now),
            "workspace_id": ws,
            "idempotency_key": key,
            "to": VALID_TO,
            "content": "sent by the edge",
            "contact_id": None,
            "media_urls": [],
            "status": "queued",
            "endpoint": "edge",
            "ledger": "edge",
            "provider_message_id": "SM" + "1" * 32,
            "segments": 1,
            "encoding": "GSM-7",
            "latency_ms": 5.0,
            "error": None,
            "created_at": rfc3339(now),
            "updated_at": rfc3339(now),
            "requires_refresh": True,
        }
        state.edge_messages.append({**sent_by_edge, "seq": 1})
        await origin.services.sync_edge_messages()

        [kept] = await ledger_messages(origin.services.db, key)
        assert "sent by the edge" not in kept
        listed = await origin.services.messages.get_by_key(ws, key)
        assert listed is not None
        assert listed["content"] == "sent by the edge"  # the history keeps it: product data

        replay = await origin.send(ws, key=key, content="sent by the edge")
        assert replay.status_code == 200
        assert replay.json() == sent_by_edge
        assert (await origin.send(ws, key=key, content="not what the edge sent")).status_code == 422
