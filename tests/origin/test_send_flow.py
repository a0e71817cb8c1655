"""POST /v1/messages through the real origin, the real provider simulator and a real database of each kind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.origin.harness import Origin, apoll, new_key, new_workspace, running_origin


async def test_a_send_reaches_the_provider_once_and_is_listed(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws = new_workspace()
        resp = await origin.send(ws, content="first message")

        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["endpoint"] == "origin"
        assert body["ledger"] == "local"  # failover is off by default: the origin's own ledger
        assert body["requires_refresh"] is False
        assert body["provider_message_id"].startswith("SM")
        assert len(await origin.sim_received("first message")) == 1

        got = await origin.http.get(f"/v1/messages/{body['id']}", headers=origin.auth(ws))
        assert got.status_code == 200
        assert got.json()["id"] == body["id"]
        listed = (await origin.http.get(f"/v1/workspaces/{ws}/messages", headers=origin.auth(ws))).json()
        assert [m["id"] for m in listed["data"]] == [body["id"]]
        assert listed["next_cursor"] is None


async def test_replay_conflict_and_reuse(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        first = await origin.send(ws, key=key, content="replay me")
        again = await origin.send(ws, key=key, content="replay me")
        reused = await origin.send(ws, key=key, content="something else")

        assert first.status_code == 201
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert len(await origin.sim_received("replay me")) == 1


async def test_a_key_in_flight_is_409_with_retry_after(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        await origin.sim_faults(latency_ms=800)
        slow = asyncio.create_task(origin.send(ws, key=key, content="slow one"))
        await apoll(lambda: _received(origin, "slow one"), what="the provider call")

        busy = await origin.send(ws, key=key, content="slow one")

        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "idempotency_in_progress"
        assert int(busy.headers["retry-after"]) >= 1
        assert (await slow).status_code == 201


async def _received(origin: Origin, marker: str) -> bool | None:
    return True if await origin.sim_received(marker) else None


async def test_the_provider_down_is_503_and_the_key_can_be_retried(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        await origin.sim_faults(status=503)
        down = await origin.send(ws, key=key, content="retry later")
        await origin.sim_faults()
        retry = await origin.send(ws, key=key, content="retry later")

        assert down.status_code == 503
        assert down.json()["error"]["code"] == "provider_unavailable"
        assert retry.status_code == 201
        assert len(await origin.sim_received("retry later")) == 1


async def test_a_provider_rejection_is_422_with_its_code(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        await origin.sim_faults(reject_code=21610)
        resp = await origin.send(new_workspace(), content="blocked")
        assert resp.status_code == 422
        assert resp.json()["error"]["code"] == "provider_rejected"
        assert str(resp.json()["error"]["provider_code"]) == "21610"


async def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, rate_limit=2.0) as origin:
        ws = new_workspace()
        codes = [(await origin.send(ws)).status_code for _ in range(3)]
        limited = await origin.send(ws)

        assert codes[:2] == [201, 201]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        other = await origin.send(new_workspace())  # per workspace: another one is not limited
        assert other.status_code == 201
