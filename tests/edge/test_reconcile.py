"""POST /v1/ledger/reconcile in process (DESIGN.md rules 6 and 7, "Unknown outcomes"): the pushed call-began mark,
which records count as a double send, what the edge keeps for the origin to adopt, and a failing shard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.ids import rfc3339
from smsfailover.core.sql import SqlMessageStore
from smsfailover.edge_worker.shards import shard_of

from .test_app import WS, Edge, make_edge, origin_record, service_token
from .test_ledger_batch import call, make_app, shard_db

LEASE = 30.0


@pytest.fixture
def edge() -> Iterator[Edge]:
    made = make_edge()
    yield made
    made.db.close()


def msg_id(n: int) -> str:
    return f"msg_01JZ{n:022d}"


async def reconcile(edge: Edge, records: list[dict[str, Any]]) -> dict[str, object]:
    answer = await edge.call("POST", "/v1/ledger/reconcile", {"records": records}, token=service_token(edge.clock))
    assert answer.status == 200, answer.body
    return answer.body


async def held(edge: Edge, key: str) -> dict[str, Any]:
    answer = await edge.call("GET", f"/v1/ledger/{WS}/{key}", token=service_token(edge.clock))
    assert answer.status == 200, answer.body
    return answer.body


async def test_a_pushed_claim_keeps_its_call_began_mark(edge: Edge) -> None:
    began = edge.clock.time() + 1.5
    own = msg_id(1)
    body = {"record": origin_record("open", edge, message_id=own)}
    claimed = await edge.call("POST", "/v1/ledger/claim", body, token=service_token(edge.clock))
    assert claimed.body["claimed"] is True  # the origin's own claim here: the claim route carries no mark
    records = [
        origin_record("new-marked", edge, message_id=msg_id(2), call_began_at=began),
        origin_record("new-unmarked", edge, message_id=msg_id(3)),
        origin_record("open", edge, message_id=own, call_began_at=began),
    ]
    answer = await reconcile(edge, records)
    assert answer["merged"] == 3  # the open claim took the mark
    marks = {key: (await held(edge, key))["call_began_at"] for key in ("new-marked", "new-unmarked", "open")}
    # marked: the call may have begun (unknown after the lease); unmarked: an origin claim that never began
    assert marks == {"new-marked": began, "new-unmarked": None, "open": began}


async def test_only_two_attempts_that_may_both_have_sent_are_a_double_send(edge: Edge) -> None:
    service = service_token(edge.clock)
    for key in ("edge-sent", "edge-sent-2", "edge-sent-3", "edge-sent-4"):
        assert (await edge.send(key, key)).status == 201
    # an edge claim whose provider call never began (no mark), and its message row, as SendOpening writes them
    never = msg_id(9)
    edge_claim = {**origin_record("edge-never", edge, message_id=never), "endpoint": "edge"}
    assert (await edge.call("POST", "/v1/ledger/claim", {"record": edge_claim}, token=service)).body["claimed"]
    await SqlMessageStore(edge.db).insert(edge_message("edge-never", never, edge.clock.time()))
    sent = {"id": msg_id(5), "status": "queued", "endpoint": "origin"}
    not_sent = {"id": msg_id(6), "status": "failed", "error": {"code": "not_sent"}, "endpoint": "origin"}
    marked = {"id": msg_id(7), "status": "failed", "error": {"code": "marked_failed"}, "endpoint": "origin"}
    records = [
        origin_record("edge-sent", edge, message_id=msg_id(4)),  # never began: not sent
        origin_record("edge-sent-2", edge, message_id=msg_id(5), call_began_at=edge.clock.time()),  # may have sent
        origin_record("edge-sent-3", edge, message_id=msg_id(6), state="completed", message=not_sent),
        # an operator's "failed" on an unknown is a decision, not proof that nothing went out
        origin_record("edge-sent-4", edge, message_id=msg_id(7), state="completed", message=marked),
        origin_record("edge-never", edge, message_id=msg_id(5), state="completed", message=sent),
    ]
    edge.clock.advance(LEASE + 1)  # every claim's lease has passed
    answer = await reconcile(edge, records)
    assert answer["duplicates"] == [{"workspace_id": WS, "key": key} for key in ("edge-sent-2", "edge-sent-4")]
    kept = listed(answer["kept"])
    edge_sends = ["edge-sent", "edge-sent-2", "edge-sent-3", "edge-sent-4"]
    assert [(r["key"], r["endpoint"], r["state"]) for r in kept] == [(k, "edge", "completed") for k in edge_sends]
    assert kept[0] == await held(edge, "edge-sent")  # the edge's record as it stands: what the origin adopts
    assert (answer["merged"], answer["failed"]) == (1, [])
    # the edge's claim that never began gave way to the origin's send, and its own row says it was not sent
    taken = await held(edge, "edge-never")
    assert (taken["message_id"], taken["state"], taken["message"]) == (msg_id(5), "completed", sent)
    row = await SqlMessageStore(edge.db).get(WS, never)
    assert row is not None
    assert row["status"] == "failed"
    error = row["error"]
    assert isinstance(error, dict)
    assert error["code"] == "not_sent"


async def test_a_live_unmarked_edge_claim_may_still_send() -> None:
    edge = make_edge()
    service = service_token(edge.clock)
    live = {**origin_record("edge-live", edge, message_id=msg_id(1)), "endpoint": "edge"}
    assert (await edge.call("POST", "/v1/ledger/claim", {"record": live}, token=service)).body["claimed"]
    sent = {"id": msg_id(2), "status": "queued", "endpoint": "origin"}
    answer = await reconcile(
        edge, [origin_record("edge-live", edge, message_id=msg_id(2), state="completed", message=sent)]
    )
    assert answer["duplicates"] == [{"workspace_id": WS, "key": "edge-live"}]
    assert (await held(edge, "edge-live"))["message_id"] == msg_id(1)
    edge.db.close()


async def test_a_failing_shard_fails_only_its_own_records() -> None:
    clock = ManualClock()
    dbs = [shard_db() for _ in range(3)]
    app = make_app(dbs, clock)
    await call(app, clock, "GET", "/v1/ledger/ping")  # shard identities recorded while all answer
    dbs[1].close()
    now = clock.time()
    records: list[dict[str, Any]] = [
        {
            "workspace_id": WS,
            "key": f"key-{i}",
            "fingerprint": "f" * 64,
            "state": "completed",
            "endpoint": "origin",
            "lease_expires_at": now + LEASE,
            "created_at": now,
            "updated_at": now,
            "message": {"id": msg_id(i), "status": "queued", "endpoint": "origin"},
            "message_id": msg_id(i),
        }
        for i in range(12)
    ]
    on_one = {r["key"] for r in records if shard_of(WS, r["key"], 3) == 1}
    assert 0 < len(on_one) < len(records)
    status, body = await call(app, clock, "POST", "/v1/ledger/reconcile", {"records": records})
    assert status == 200  # a partial result
    assert sorted(f["key"] for f in body["failed"]) == sorted(on_one)
    assert all(f["workspace_id"] == WS for f in body["failed"])
    assert body["merged"] == len(records) - len(on_one)
    for record in records:
        if record["key"] not in on_one:
            status, stored = await call(app, clock, "GET", f"/v1/ledger/{WS}/{record['key']}")
            assert (status, stored["state"]) == (200, "completed")
    only_one = [r for r in records if r["key"] in on_one]
    status, body = await call(app, clock, "POST", "/v1/ledger/reconcile", {"records": only_one})
    assert status == 503  # nothing could be applied: the origin keeps every record for a later round
    assert body["error"]["code"] == "ledger_unavailable"
    for db in (dbs[0], dbs[2]):
        db.close()


def edge_message(key: str, message_id: str, now: float) -> dict[str, object]:
    return {
        "id": message_id,
        "workspace_id": WS,
        "idempotency_key": key,
        "to": "+16266635938",
        "content": "hello",
        "status": "unknown",
        "endpoint": "edge",
        "ledger": "edge",
        "created_at": rfc3339(now),
    }


def listed(value: object) -> list[dict[str, Any]]:
    assert isinstance(value, list)
    return value
