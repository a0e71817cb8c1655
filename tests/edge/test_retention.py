"""The edge's retention (retention.py, the Cron Trigger) and what its ledger keeps of a send (no content).

In process, over stdlib SQLite (D1's engine) and a manual clock: edge message rows go once they are older than the
retention AND the origin's sync has acknowledged them (its `after=`); ledger records keep the response body without
the message content, while replays, lookups and 422 idempotency_key_reused still answer as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.sql import SqliteExecutor, SqlMessageStore, schema_statements
from smsfailover.edge_worker import retention
from smsfailover.edge_worker.app import EdgeApp
from smsfailover.edge_worker.config import EdgeConfig

from .host_process import REPO_ROOT
from .test_app import DAY, TO, WS, Edge, ScriptedPoster, make_edge, service_token, ws_token

RETENTION_S = 2 * DAY  # the edge's default


@pytest.fixture
def edge() -> Iterator[Edge]:
    made = make_edge()
    yield made
    made.db.close()


async def keys_at_edge(edge: Edge) -> list[str]:
    rows = await edge.db.fetch("SELECT idempotency_key FROM messages ORDER BY seq")
    return [str(row["idempotency_key"]) for row in rows]


async def sync(edge: Edge, after: int, limit: int = 100) -> tuple[list[str], int]:
    """One page of the origin's sync: the keys on it and its next cursor."""
    page = await edge.call(
        "GET", "/v1/sync/messages", token=service_token(edge.clock), query={"after": str(after), "limit": str(limit)}
    )
    assert page.status == 200
    data = page.body["data"]
    assert isinstance(data, list)
    cursor = page.body["next_cursor"]
    assert isinstance(cursor, int)
    return [str(m["idempotency_key"]) for m in data], cursor


async def acked(edge: Edge) -> int | None:
    rows = await edge.db.fetch("SELECT seq FROM sync_ack WHERE id = 0")
    return int(rows[0]["seq"]) if rows else None


def edge_database() -> SqliteExecutor:
    """One D1 database after every migration, holding WS as failover-enabled (as make_edge's)."""
    db = SqliteExecutor()
    db.create_schema(upgrades=False)  # the edge's own migrations follow
    edge_only = sorted((REPO_ROOT / "packages/edge_worker/migrations").glob("*.sql"))[1:]  # 0001 is core's SCHEMA
    for statement in schema_statements(re.sub(r"--[^\n]*", "", "\n".join(p.read_text() for p in edge_only))):
        db._conn.execute(statement)
    db._conn.execute("INSERT INTO settings_mirror VALUES (?, 1, 1, 1)", (WS,))
    return db


def edge_config() -> EdgeConfig:
    return EdgeConfig.from_env(
        {
            "SMSFAILOVER_JWT_SECRET": "edge-unit-test-secret-of-sufficient-length",
            "SMSFAILOVER_SERVICE_KEY": "edge-unit-test-service-key-of-sufficient-length",
            "TWILIO_ACCOUNT_SID": "AC1",
            "TWILIO_AUTH_TOKEN": "token",
            "SMSFAILOVER_FROM": "+15005550006",
            "SMSFAILOVER_PROVIDER_URL": "http://provider.test",
        }.get
    )


# -- edge message rows ------------------------------------------------------------------------------------------


async def test_old_rows_go_once_synced_and_unsynced_ones_stay_however_old(edge: Edge) -> None:
    for key in ("a", "b", "c"):
        assert (await edge.send(key, f"text {key}")).status == 201
    first_page, cursor = await sync(edge, 0, limit=2)
    assert first_page == ["a", "b"]
    # the origin asks for the next page only after storing the first one: a and b are acknowledged, c is not
    second_page, last = await sync(edge, cursor)
    assert second_page == ["c"]
    assert await acked(edge) == cursor

    edge.clock.advance(RETENTION_S + 60)
    assert (await edge.send("fresh", "new")).status == 201
    purged = await edge.app.scheduled()
    assert purged.messages == 2
    assert await keys_at_edge(edge) == ["c", "fresh"]  # c is old but the origin has not acknowledged it

    edge.clock.advance(10 * RETENTION_S)  # no age makes an unacknowledged row go
    await edge.app.scheduled()
    assert await keys_at_edge(edge) == ["c", "fresh"]

    _, end = await sync(edge, last)  # acknowledges c; fresh came back on this page and is not yet
    await edge.app.scheduled()
    assert await keys_at_edge(edge) == ["fresh"]
    await sync(edge, end)
    assert (await edge.app.scheduled()).messages == 1
    assert await keys_at_edge(edge) == []


async def test_acknowledged_rows_younger_than_the_retention_stay(edge: Edge) -> None:
    assert (await edge.send("young", "text")).status == 201
    _, cursor = await sync(edge, 0)
    await sync(edge, cursor)
    edge.clock.advance(RETENTION_S - 60)
    assert (await edge.app.scheduled()).messages == 0
    assert await keys_at_edge(edge) == ["young"]


async def test_a_row_changed_after_its_sync_stays_until_synced_again(edge: Edge) -> None:
    sent = await edge.send("k", "text")
    _, cursor = await sync(edge, 0)
    await sync(edge, cursor)  # acknowledged at its first seq
    await SqlMessageStore(edge.db).update(WS, str(sent.body["id"]), {"status": "delivered"}, edge.clock.time())
    edge.clock.advance(RETENTION_S + 60)
    await edge.app.scheduled()
    assert await keys_at_edge(edge) == ["k"]  # its change (a new seq) is not at the origin yet
    keys, after_change = await sync(edge, cursor)
    assert keys == ["k"]
    await sync(edge, after_change)
    await edge.app.scheduled()
    assert await keys_at_edge(edge) == []


async def test_the_acknowledgement_never_goes_back(edge: Edge) -> None:
    for key in ("a", "b", "c"):
        await edge.send(key, key)
    assert await acked(edge) is None
    await sync(edge, 0)  # after=0 acknowledges nothing
    assert await acked(edge) is None
    await sync(edge, 3)
    await sync(edge, 1)  # a lagging origin process, or a retried call
    assert await acked(edge) == 3


async def test_each_purge_is_bounded_and_a_backlog_drains_over_runs(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH_ROWS", 2)
    monkeypatch.setattr(retention, "BATCHES_PER_RUN", 2)
    for i in range(5):
        await edge.send(f"k{i}", f"text {i}")
    _, cursor = await sync(edge, 0)
    await sync(edge, cursor)
    edge.clock.advance(RETENTION_S + 60)
    first = await edge.app.scheduled()
    assert (first.ledger_records, first.messages) == (4, 4)
    second = await edge.app.scheduled()
    assert (second.ledger_records, second.messages) == (1, 1)
    assert await keys_at_edge(edge) == []


async def test_an_acknowledgement_counts_in_its_own_shard_only() -> None:
    databases = [edge_database(), edge_database()]
    clock = ManualClock()
    poster = ScriptedPoster()
    edge = Edge(EdgeApp(config=edge_config(), db=databases, poster=poster, clock=clock), poster, clock, databases[0])
    try:
        for i in range(8):
            assert (await edge.send(f"k{i}", f"text {i}")).status == 201
        counts = [len(await db.fetch("SELECT id FROM messages")) for db in databases]
        assert all(counts), "both shards hold rows"
        token = service_token(clock)
        page = await edge.call("GET", "/v1/sync/messages", token=token, query={"shard": "1", "after": "0"})
        cursor = page.body["next_cursor"]
        await edge.call("GET", "/v1/sync/messages", token=token, query={"shard": "1", "after": str(cursor)})
        clock.advance(RETENTION_S + 60)
        assert (await edge.app.scheduled()).messages == counts[1]
        assert [len(await db.fetch("SELECT id FROM messages")) for db in databases] == [counts[0], 0]
    finally:
        for db in databases:
            db.close()


async def test_a_shard_that_fails_its_purge_fails_the_run_after_the_others_are_purged() -> None:
    databases = [edge_database(), edge_database()]
    clock = ManualClock()
    poster = ScriptedPoster()
    edge = Edge(EdgeApp(config=edge_config(), db=databases, poster=poster, clock=clock), poster, clock, databases[0])
    for i in range(8):
        assert (await edge.send(f"k{i}", f"text {i}")).status == 201
    in_first = len(await databases[0].fetch("SELECT id FROM messages"))
    token = service_token(clock)
    for shard in ("0", "1"):
        page = await edge.call("GET", "/v1/sync/messages", token=token, query={"shard": shard, "after": "0"})
        after = str(page.body["next_cursor"])
        await edge.call("GET", "/v1/sync/messages", token=token, query={"shard": shard, "after": after})
    clock.advance(RETENTION_S + 60)
    databases[1].close()  # every statement on the second shard now fails
    try:
        with pytest.raises(retention.PurgeFailed) as failed:
            await edge.app.scheduled()
        assert failed.value.failed == ["ledger of DB_1", "messages of DB_1"]
        assert (failed.value.result.ledger_records, failed.value.result.messages) == (in_first, in_first)
        assert await databases[0].fetch("SELECT id FROM messages") == []
    finally:
        databases[0].close()


# -- what the edge ledger keeps ---------------------------------------------------------------------------------


async def ledger_message(edge: Edge, key: str) -> dict[str, object]:
    record = await edge.call("GET", f"/v1/ledger/{WS}/{key}", token=service_token(edge.clock))
    assert record.status == 200
    message = record.body["message"]
    assert isinstance(message, dict)
    return message


async def test_an_edge_send_leaves_no_content_in_its_ledger_record_and_still_replays(edge: Edge) -> None:
    first = await edge.send("k", "my private words")
    assert first.status == 201
    assert first.body["content"] == "my private words"
    kept = await ledger_message(edge, "k")
    assert "content" not in kept
    assert kept == {name: value for name, value in first.body.items() if name != "content"}
    stored = await edge.db.fetch("SELECT message FROM idempotency_ledger")
    assert "my private words" not in json.dumps(stored)

    replay = await edge.send("k", "my private words")
    assert (replay.status, replay.headers["Idempotent-Replayed"]) == (200, "true")
    assert replay.body == first.body  # the original body: the request brought the content back
    reused = await edge.send("k", "other words")
    assert reused.status == 422
    error = reused.body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "idempotency_key_reused"
    lookup = await edge.call("GET", "/v1/messages", token=ws_token(edge.clock), query={"idempotency_key": "k"})
    assert lookup.status == 200
    assert lookup.body["id"] == first.body["id"]
    assert len(edge.poster.forms) == 1


async def test_completions_from_the_origin_keep_no_content_either(edge: Edge) -> None:
    """The service routes store what an origin sends; an origin that still sends the content loses it here."""
    service = service_token(edge.clock)
    now = edge.clock.time()

    def claim(key: str, message_id: str) -> dict[str, object]:
        return {
            "workspace_id": WS,
            "key": key,
            "fingerprint": "f" * 64,
            "state": "claimed",
            "endpoint": "origin",
            "lease_expires_at": now + 30,
            "created_at": now,
            "updated_at": now,
            "message": None,
            "message_id": message_id,
        }

    body = {"id": "", "status": "queued", "to": TO, "content": "from the origin", "endpoint": "origin"}
    one, two, three = (f"msg_01JZ00000000000000000000A{i}" for i in (1, 2, 3))
    assert (await edge.call("POST", "/v1/ledger/claim", {"record": claim("single", one)}, token=service)).status == 200
    completed = {"workspace_id": WS, "key": "single", "message": {**body, "id": one}, "now": now, "message_id": one}
    assert (await edge.call("POST", "/v1/ledger/complete", completed, token=service)).status == 200
    ops = [
        {"op": "claim", "record": claim("batched", two)},
        {"op": "complete", "workspace_id": WS, "key": "batched", "message_id": two, "message": {**body, "id": two}},
    ]
    assert (await edge.call("POST", "/v1/ledger/batch", {"ops": ops}, token=service)).status == 200
    merged = {**claim("reconciled", three), "state": "completed", "message": {**body, "id": three}}
    answer = await edge.call("POST", "/v1/ledger/reconcile", {"records": [merged]}, token=service)
    assert answer.body["merged"] == 1
    for key in ("single", "batched", "reconciled"):
        kept = await ledger_message(edge, key)
        assert (kept["status"], kept["to"]) == ("queued", TO)
        assert "content" not in kept
