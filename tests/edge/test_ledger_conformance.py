"""One LedgerStore behaviour, three backends: core's in-memory store, core's SQL store on stdlib SQLite, and the
same SQL store inside the Worker under Pyodide on Miniflare's D1 (reached through the edge's service routes, the
way the origin reaches it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from smsfailover.core.ledger import InMemoryLedgerStore, LedgerRecord, LedgerState, LedgerStore
from smsfailover.core.sql import SqliteExecutor, SqlLedgerStore
from smsfailover.edge_worker.ledger_json import record_from_json

from .host_process import EdgeHostProcess
from .tokens import bearer, service_token


class D1ThroughTheEdge:
    """LedgerStore over the edge's service routes: the Worker's SqlLedgerStore on D1 does the work."""

    def __init__(self, http: httpx2.AsyncClient, secret: str) -> None:
        self._http = http
        self._headers = bearer(service_token(secret))

    async def try_claim(self, record: LedgerRecord) -> bool:
        answer = await self._post("/v1/ledger/claim", {"record": record.to_json()})
        return bool(answer["claimed"])

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        response = await self._http.get(
            f"/v1/ledger/{quote(workspace_id, safe='')}/{quote(key, safe='')}", headers=self._headers
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return record_from_json(response.json())

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        body = {"workspace_id": workspace_id, "key": key, "message": message, "now": now, "message_id": message_id}
        await self._post("/v1/ledger/complete", body)

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        body = {"workspace_id": workspace_id, "key": key, "now": now, "message_id": message_id}
        await self._post("/v1/ledger/release", body)

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        raise NotImplementedError("only a ledger's own sender marks (the edge's sends, in its D1: test_app.py)")

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        raise NotImplementedError("the edge never adopts another ledger's record (it is the authority)")

    async def purge(self, older_than: float) -> int:
        raise NotImplementedError("the edge purges on its Cron Trigger; see test_host.py")

    async def _post(self, path: str, body: dict[str, object]) -> dict[str, Any]:
        response = await self._http.post(path, json=body, headers=self._headers)
        response.raise_for_status()
        answer = response.json()
        assert isinstance(answer, dict)
        return answer


@pytest.fixture(params=["memory", "sqlite", "d1"])
async def store(request: pytest.FixtureRequest, jwt_secret: str) -> AsyncIterator[LedgerStore]:
    if request.param == "memory":
        yield InMemoryLedgerStore()
    elif request.param == "sqlite":
        db = SqliteExecutor()
        db.create_schema()
        yield SqlLedgerStore(db)
        db.close()
    else:
        host: EdgeHostProcess = request.getfixturevalue("edge_host")
        async with httpx2.AsyncClient(base_url=host.url, timeout=15) as http:
            yield D1ThroughTheEdge(http, jwt_secret)


def claim(key: str | None = None, *, now: float | None = None, endpoint: str = "origin") -> LedgerRecord:
    at = time.time() if now is None else now
    return LedgerRecord(
        workspace_id=f"ws_{uuid.uuid4().hex[:10]}",
        key=key or f"k-{uuid.uuid4()}",
        fingerprint="a" * 64,
        state=LedgerState.CLAIMED,
        endpoint=endpoint,
        lease_expires_at=at + 30,
        created_at=at,
        updated_at=at,
        message=None,
        message_id=f"msg_{uuid.uuid4().hex[:26].upper()}",
    )


async def test_first_claim_wins_and_the_record_reads_back(store: LedgerStore) -> None:
    record = claim()
    assert await store.try_claim(record) is True
    assert await store.try_claim(replace(record, endpoint="edge")) is False
    stored = await store.get(record.workspace_id, record.key)
    assert stored is not None
    assert (stored.state, stored.endpoint, stored.message_id) == (LedgerState.CLAIMED, "origin", record.message_id)
    assert stored.lease_expires_at == pytest.approx(record.lease_expires_at, abs=0.001)


async def test_complete_stores_the_message_and_blocks_new_claims(store: LedgerStore) -> None:
    record = claim()
    await store.try_claim(record)
    message: dict[str, object] = {"id": record.message_id, "status": "queued", "segments": 1}
    await store.complete(record.workspace_id, record.key, message, record.created_at + 1, message_id=record.message_id)
    stored = await store.get(record.workspace_id, record.key)
    assert stored is not None
    assert stored.state is LedgerState.COMPLETED
    assert stored.message == message
    assert await store.try_claim(replace(record, message_id="msg_other")) is False
    await store.release(
        record.workspace_id, record.key, record.created_at + 2, message_id=record.message_id
    )  # no effect once completed
    after = await store.get(record.workspace_id, record.key)
    assert after is not None
    assert after.state is LedgerState.COMPLETED


async def test_a_released_key_can_be_claimed_again(store: LedgerStore) -> None:
    record = claim()
    await store.try_claim(record)
    await store.release(record.workspace_id, record.key, record.created_at + 1, message_id=record.message_id)
    released = await store.get(record.workspace_id, record.key)
    assert released is not None
    assert released.state is LedgerState.RELEASED
    second = replace(record, endpoint="edge", message_id="msg_SECOND")
    assert await store.try_claim(second) is True
    taken = await store.get(record.workspace_id, record.key)
    assert taken is not None
    assert (taken.state, taken.endpoint) == (LedgerState.CLAIMED, "edge")


async def test_an_unknown_key_reads_as_none(store: LedgerStore) -> None:
    assert await store.get("ws_nobody", f"k-{uuid.uuid4()}") is None
