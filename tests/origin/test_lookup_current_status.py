"""Issue 13, against the origin app and the provider simulator (whose status callbacks are real and signed):
after a `delivered` callback, the lookup by key says delivered as the lookup by id does; a replay does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.origin.harness import Origin, apoll, new_key, new_workspace, running_origin


async def _delivered(origin: Origin, ws: str, message_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await origin.http.get(f"/v1/messages/{message_id}", headers=origin.auth(ws))).json()
    return body if body.get("status") == "delivered" else None


async def test_lookup_by_key_gives_the_status_a_callback_set_and_a_replay_the_original_body(
    db_kind: str, tmp_path: Path
) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        first = await origin.send(ws, key=key, content="current status")
        assert first.status_code == 201
        sent = first.json()
        assert sent["status"] != "delivered"
        by_id = await apoll(lambda: _delivered(origin, ws, sent["id"]), what="the simulator's delivered callback")

        by_key = await origin.http.get("/v1/messages", params={"idempotency_key": key}, headers=origin.auth(ws))
        replay = await origin.send(ws, key=key, content="current status")

        assert by_key.status_code == 200
        assert by_key.json()["status"] == "delivered"
        assert by_key.json() == by_id
        assert replay.status_code == 200
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == sent
