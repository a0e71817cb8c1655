"""The edge's batch route and its D1 shards, in process (core's SqliteExecutor stands in for each D1 database)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from smsfailover.core.auth import issue_token
from smsfailover.core.clock import ManualClock
from smsfailover.core.ledger import IdempotencyLedger
from smsfailover.core.messages_api import ApiRequest
from smsfailover.core.sql import SqliteExecutor, Statement, schema_statements
from smsfailover.edge_worker.app import EdgeApp
from smsfailover.edge_worker.config import EdgeConfig
from smsfailover.edge_worker.shards import shard_of

from .host_process import REPO_ROOT
from .test_app import SECRET, SERVICE_KEY, ScriptedPoster, service_token

WS = "ws_batch"
EDGE_ONLY = sorted((REPO_ROOT / "packages/edge_worker/migrations").glob("*.sql"))[1:]


def shard_db() -> SqliteExecutor:
    db = SqliteExecutor()
    db.create_schema(upgrades=False)  # the edge's own migrations follow
    for path in EDGE_ONLY:
        for statement in schema_statements(re.sub(r"--[^\n]*", "", path.read_text())):
            db._conn.execute(statement)
    return db


def make_app(dbs: list[SqliteExecutor], clock: ManualClock) -> EdgeApp:
    values = {
        "SMSFAILOVER_JWT_SECRET": SECRET,
        "SMSFAILOVER_SERVICE_KEY": SERVICE_KEY,
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "token",
        "SMSFAILOVER_FROM": "+15005550006",
    }
    return EdgeApp(config=EdgeConfig.from_env(values.get), db=dbs, poster=ScriptedPoster(), clock=clock)


@pytest.fixture
def shards() -> Iterator[list[SqliteExecutor]]:
    dbs = [shard_db() for _ in range(3)]
    yield dbs
    for db in dbs:
        db.close()


async def call(
    app: EdgeApp, clock: ManualClock, method: str, path: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    request = ApiRequest(
        method,
        path.split("?")[0],
        dict(part.split("=") for part in path.partition("?")[2].split("&") if part),
        {"authorization": f"Bearer {service_token(clock)}"},
        json.dumps(body).encode() if body is not None else b"",
    )
    response = await app.handle(request)
    return response.status, response.body


def rows(db: SqliteExecutor) -> list[str]:
    return [r[0] for r in db._conn.execute("SELECT idempotency_key FROM idempotency_ledger").fetchall()]


async def test_a_batch_answers_each_operation_and_keeps_each_key_in_its_shard(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    app = make_app(shards, clock)
    ledger = IdempotencyLedger(None, clock)  # type: ignore[arg-type]  # only new_claim is used
    claims = [ledger.new_claim(WS, f"key-{i}", "f" * 64, "origin") for i in range(30)]
    ops = [{"op": "claim", "record": c.to_json()} for c in claims]
    status, body = await call(app, clock, "POST", "/v1/ledger/batch", {"ops": ops})
    assert status == 200
    assert [r["claimed"] for r in body["results"]] == [True] * 30
    for index, db in enumerate(shards):  # every key sits in its shard, and only there
        assert sorted(rows(db)) == sorted(c.key for c in claims if shard_of(WS, c.key, 3) == index)
    assert all(rows(db) for db in shards)  # 30 keys spread over all three

    taken_again = ledger.new_claim(WS, "key-0", "f" * 64, "origin")
    stale = {"op": "complete", "workspace_id": WS, "key": "key-1", "message_id": "msg_other", "message": {"id": "x"}}
    done = {"op": "complete", "workspace_id": WS, "key": "key-2", "message_id": claims[2].message_id, "message": {}}
    bad = {"op": "release", "workspace_id": WS, "key": "key-3"}  # no message_id: answered alone
    release = {"op": "release", "workspace_id": WS, "key": "key-4", "message_id": claims[4].message_id}
    ops2 = [{"op": "claim", "record": taken_again.to_json()}, stale, done, bad, release]
    status, body = await call(app, clock, "POST", "/v1/ledger/batch", {"ops": ops2})
    assert status == 200
    first, fenced, completed, refused, released = body["results"]
    assert first["claimed"] is False
    assert first["record"]["message_id"] == claims[0].message_id  # the record holding the key: the answer
    assert fenced == completed == released == {}
    assert refused["status"] == 422
    assert refused["error"]["code"] == "invalid_request"
    states = {}
    for key in ("key-1", "key-2", "key-3", "key-4"):
        _, record = await call(app, clock, "GET", f"/v1/ledger/{WS}/{key}")
        states[key] = record["state"]
    # another attempt's message id changes nothing; the refused release ran nowhere
    assert states == {"key-1": "claimed", "key-2": "completed", "key-3": "claimed", "key-4": "released"}


async def test_a_failing_shard_fails_only_its_own_operations(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    app = make_app(shards, clock)
    await call(app, clock, "GET", "/v1/ledger/ping")  # shard identities recorded while all answer
    shards[1].close()
    ledger = IdempotencyLedger(None, clock)  # type: ignore[arg-type]
    claims = [ledger.new_claim(WS, f"key-{i}", "f" * 64, "origin") for i in range(12)]
    status, body = await call(
        app, clock, "POST", "/v1/ledger/batch", {"ops": [{"op": "claim", "record": c.to_json()} for c in claims]}
    )
    assert status == 200
    for claim, result in zip(claims, body["results"], strict=True):
        if shard_of(WS, claim.key, 3) == 1:
            assert result["status"] == 503
            assert result["error"]["code"] == "ledger_unavailable"
        else:
            assert result["claimed"] is True
    status, ping = await call(app, clock, "GET", "/v1/ledger/ping")
    assert status == 200  # the edge answers: reachable, with the failing shard named (never "unreachable")
    assert ping["ledger"] == "degraded"
    assert [s["ok"] for s in ping["shards"]] == [True, False, True]


async def test_a_changed_shard_list_is_refused_not_served(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    status, _ = await call(make_app(shards[:2], clock), clock, "GET", "/v1/ledger/ping")
    assert status == 200  # two shards recorded as shards 0 and 1 of 2
    status, body = await call(make_app(shards, clock), clock, "GET", "/v1/ledger/ping")
    assert status == 503
    assert body["error"]["code"] == "not_configured"
    assert "shard 0 of 2" in body["error"]["message"]
    assert "docs/scaling.md" in body["error"]["message"]


async def test_the_mirror_is_written_to_every_shard(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    app = make_app(shards, clock)
    status, _ = await call(
        app, clock, "PUT", f"/v1/settings-mirror/{WS}", {"sms_failover_enabled": True, "updated_at": 5}
    )
    assert status == 200
    for db in shards:
        assert [tuple(r) for r in db._conn.execute("SELECT sms_failover_enabled FROM settings_mirror")] == [(1,)]


async def test_an_edge_send_lands_in_its_keys_shard_and_each_shard_has_its_feed(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    app = make_app(shards, clock)
    await call(app, clock, "PUT", f"/v1/settings-mirror/{WS}", {"sms_failover_enabled": True, "updated_at": 5})
    token = issue_token(SECRET, workspace_id=WS, now=clock.time())
    keys = [f"send-{i}" for i in range(9)]
    for key in keys:
        request = ApiRequest(
            "POST",
            "/v1/messages",
            {},
            {"authorization": f"Bearer {token}", "idempotency-key": key, "content-type": "application/json"},
            json.dumps({"workspace_id": WS, "to": "+16266635938", "content": key}).encode(),
        )
        assert (await app.handle(request)).status == 201
    seen: list[str] = []
    for index in range(3):
        status, page = await call(app, clock, "GET", f"/v1/sync/messages?shard={index}&after=0&limit=100")
        assert status == 200
        assert page["shards"] == 3
        assert all(shard_of(WS, m["idempotency_key"], 3) == index for m in page["data"])
        assert all(m["status"] == "queued" for m in page["data"])  # row update and completion in one batch
        seen += [m["idempotency_key"] for m in page["data"]]
    assert sorted(seen) == sorted(keys)
    status, _ = await call(app, clock, "GET", "/v1/sync/messages?shard=3")
    assert status == 422


class CountingDb:
    """A shard that counts its round trips (a statement alone or a batch is one)."""

    def __init__(self, db: SqliteExecutor) -> None:
        self.db = db
        self.round_trips = 0

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        self.round_trips += 1
        return await self.db.fetch(sql, params)

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        self.round_trips += 1
        return await self.db.execute(sql, params)

    async def batch(self, statements: Sequence[Statement]) -> list[list[dict[str, Any]]]:
        self.round_trips += 1
        return await self.db.batch(statements)


async def test_an_edge_send_makes_three_d1_round_trips_and_a_replay_one(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    db = CountingDb(shards[0])
    app = make_app([db], clock)  # type: ignore[list-item]
    await call(app, clock, "PUT", f"/v1/settings-mirror/{WS}", {"sms_failover_enabled": True, "updated_at": 5})
    token = issue_token(SECRET, workspace_id=WS, now=clock.time())
    request = ApiRequest(
        "POST",
        "/v1/messages",
        {},
        {"authorization": f"Bearer {token}", "idempotency-key": "one", "content-type": "application/json"},
        json.dumps({"workspace_id": WS, "to": "+16266635938", "content": "hi"}).encode(),
    )
    before = db.round_trips
    assert (await app.handle(request)).status == 201
    # the claim with the message row; the call-began mark (issue 15), its own write just before the provider call;
    # the row update with the completion
    assert db.round_trips - before == 3
    before = db.round_trips
    replay = await app.handle(request)
    assert replay.status == 200  # the contract's replay: 200 with the original message
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert db.round_trips - before == 1


async def test_an_isolate_of_the_old_shard_list_cannot_write_after_a_reshard(shards: list[SqliteExecutor]) -> None:
    clock = ManualClock()
    old = make_app(shards[:2], clock)
    status, _ = await call(old, clock, "GET", "/v1/ledger/ping")
    assert status == 200  # verified: shards 0 and 1 of 2
    for db in shards[:2]:  # docs/scaling.md's migration: identities cleared, the new list deployed
        db._conn.execute("DELETE FROM shard_identity")
    status, _ = await call(make_app(shards, clock), clock, "GET", "/v1/ledger/ping")
    assert status == 200  # now shards 0, 1, 2 of 3
    ledger = IdempotencyLedger(None, clock)  # type: ignore[arg-type]
    claim = ledger.new_claim(WS, "late-isolate", "f" * 64, "origin")
    status, body = await call(
        old, clock, "POST", "/v1/ledger/batch", {"ops": [{"op": "claim", "record": claim.to_json()}]}
    )
    assert status == 200
    assert body["results"][0]["error"]["code"] == "ledger_unavailable"  # the batch's identity check refused it
    assert all(not rows(db) for db in shards)  # nothing written anywhere
    status, body = await call(old, clock, "GET", "/v1/ledger/ping")
    assert status == 503
    assert body["error"]["code"] == "not_configured"
