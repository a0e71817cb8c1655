"""EdgeApp in CPython: the same code the Worker runs, over stdlib SQLite (D1's engine), a scripted provider
and a manual clock. The real Pyodide + D1 path is tests/edge/test_host.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from smsfailover.core.auth import issue_token
from smsfailover.core.clock import ManualClock
from smsfailover.core.message import fingerprint, parse_send_request
from smsfailover.core.messages_api import ApiRequest, ApiResponse
from smsfailover.core.provider import HttpReply, ReplyLost
from smsfailover.core.sql import SqliteExecutor, schema_statements
from smsfailover.edge_worker.app import EdgeApp
from smsfailover.edge_worker.config import EdgeConfig

from .host_process import REPO_ROOT

SECRET = "edge-unit-test-secret-of-sufficient-length"
SERVICE_KEY = "edge-unit-test-service-key-of-sufficient-length"
TO = "+16266635938"
WS = "ws_unit"
DAY = 24 * 3600.0


@dataclass
class ScriptedPoster:
    """core's HttpPoster seam: answers from a script, a 201 by default; records every form."""

    script: list[HttpReply | Exception] = field(default_factory=list)
    forms: list[list[tuple[str, str]]] = field(default_factory=list)

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        self.forms.append(list(fields))
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            return outcome
        sid = f"SM{len(self.forms):032d}"
        return HttpReply(201, json.dumps({"sid": sid, "status": "queued", "num_segments": "1"}).encode())


@dataclass
class Edge:
    app: EdgeApp
    poster: ScriptedPoster
    clock: ManualClock
    db: SqliteExecutor

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        key: str | None = None,
        query: dict[str, str] | None = None,
    ) -> ApiResponse:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if key is not None:
            headers["idempotency-key"] = key
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        return await self.app.handle(ApiRequest(method, path, query or {}, headers, raw))

    async def send(self, key: str, content: str = "hello", ws: str = WS) -> ApiResponse:
        body = {"to": TO, "content": content, "workspace_id": ws}
        return await self.call("POST", "/v1/messages", body, token=ws_token(self.clock, ws), key=key)


def ws_token(clock: ManualClock, ws: str = WS) -> str:
    return issue_token(SECRET, workspace_id=ws, now=clock.time())


def service_token(clock: ManualClock) -> str:
    return issue_token(SERVICE_KEY, service=True, now=clock.time())


def make_edge(*, enabled: tuple[str, ...] = (WS,), **env: str) -> Edge:
    """An edge whose settings mirror holds `enabled` as failover-enabled (the edge sends for no other)."""
    values = {
        "SMSFAILOVER_JWT_SECRET": SECRET,
        "SMSFAILOVER_SERVICE_KEY": SERVICE_KEY,
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "token",
        "SMSFAILOVER_FROM": "+15005550006",
        "SMSFAILOVER_PROVIDER_URL": "http://provider.test",
        **env,
    }
    db = SqliteExecutor()
    db.create_schema(upgrades=False)  # the edge's own migrations follow
    edge_only = sorted((REPO_ROOT / "packages/edge_worker/migrations").glob("*.sql"))[1:]  # 0001 is core's SCHEMA
    edge_sql = "\n".join(path.read_text() for path in edge_only)
    for statement in schema_statements(re.sub(r"--[^\n]*", "", edge_sql)):
        db._conn.execute(statement)
    for ws in enabled:
        db._conn.execute("INSERT INTO settings_mirror VALUES (?, 1, 1, 1)", (ws,))
    clock = ManualClock()
    poster = ScriptedPoster()
    app = EdgeApp(config=EdgeConfig.from_env(values.get), db=db, poster=poster, clock=clock)
    return Edge(app, poster, clock, db)


@pytest.fixture
def edge() -> Iterator[Edge]:
    made = make_edge()
    yield made
    made.db.close()


def listed(value: object) -> list[Any]:
    assert isinstance(value, list)
    return value


def field_of(response: ApiResponse) -> object:
    error = response.body["error"]
    assert isinstance(error, dict)
    return error.get("field")


def code(response: ApiResponse) -> str:
    error = response.body["error"]
    assert isinstance(error, dict)
    return str(error["code"])


async def test_send_replay_and_the_sync_feed(edge: Edge) -> None:
    first = await edge.send("k1", "one")
    assert first.status == 201
    assert first.body["endpoint"] == "edge"
    assert first.body["requires_refresh"] is True
    replay = await edge.send("k1", "one")
    assert replay.status == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(edge.poster.forms) == 1

    await edge.send("k2", "two")
    feed = await edge.call(
        "GET", "/v1/sync/messages", token=service_token(edge.clock), query={"after": "0", "limit": "1"}
    )
    assert feed.status == 200
    data = feed.body["data"]
    assert isinstance(data, list)
    assert [m["idempotency_key"] for m in data] == ["k1"]
    rest = await edge.call(
        "GET",
        "/v1/sync/messages",
        token=service_token(edge.clock),
        query={"after": str(feed.body["next_cursor"]), "limit": "10"},
    )
    assert [m["idempotency_key"] for m in listed(rest.body["data"])] == ["k2"]


async def test_rate_limit_answers_429_with_retry_after() -> None:
    edge = make_edge(SMSFAILOVER_RATE_LIMIT="1")
    statuses = [(await edge.send(f"rl{i}", f"m{i}")).status for i in range(5)]
    assert 429 in statuses
    limited = await edge.send("rl-last", "last")
    assert limited.status == 429
    assert code(limited) == "rate_limited"
    assert float(limited.headers["Retry-After"]) > 0


async def test_a_lost_reply_is_unknown_and_never_resent(edge: Edge) -> None:
    edge.poster.script.append(ReplyLost("TimeoutError"))
    first = await edge.send("lost", "maybe")
    assert first.status == 201
    assert first.body["status"] == "unknown"
    again = await edge.send("lost", "maybe")
    assert again.status == 200
    assert again.body["status"] == "unknown"
    assert len(edge.poster.forms) == 1


async def test_an_expired_lease_is_reported_unknown(edge: Edge) -> None:
    service = service_token(edge.clock)
    now = edge.clock.time()
    body = {
        "to": TO,
        "content": "held",
        "workspace_id": WS,
    }
    record = {
        "workspace_id": WS,
        "key": "held",
        "fingerprint": fingerprint(parse_send_request(json.dumps(body).encode())),
        "state": "claimed",
        "endpoint": "origin",
        "lease_expires_at": now + 30,
        "created_at": now,
        "updated_at": now,
        "message": None,
        "message_id": "msg_01JZ00000000000000000000AA",
    }
    assert (await edge.call("POST", "/v1/ledger/claim", {"record": record}, token=service)).status == 200
    assert (await edge.send("held", "held")).status == 409
    edge.clock.advance(31)
    unknown = await edge.send("held", "held")
    assert unknown.status == 200
    assert unknown.body["status"] == "unknown"
    assert unknown.body["id"] == "msg_01JZ00000000000000000000AA"
    assert edge.poster.forms == []


async def test_without_a_secret_only_health_answers_and_says_why_to_a_service_token_only() -> None:
    edge = make_edge(SMSFAILOVER_JWT_SECRET="")
    health = await edge.call("GET", "/v1/health")
    assert health.status == 200
    assert health.body["status"] == "degraded"
    assert "problems" not in health.body  # configuration is nobody else's business
    detailed = await edge.call("GET", "/v1/health", token=service_token(edge.clock))
    assert any("SMSFAILOVER_JWT_SECRET" in p for p in listed(detailed.body["problems"]))
    refused = await edge.call("POST", "/v1/messages", {"to": TO, "content": "x", "workspace_id": WS})
    assert refused.status == 503
    assert code(refused) == "not_configured"
    assert "SMSFAILOVER" not in str(refused.body)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SMSFAILOVER_JWT_SECRET", "short-secret"), ("SMSFAILOVER_SERVICE_KEY", ""), ("SMSFAILOVER_SERVICE_KEY", SECRET)],
)
async def test_outside_development_weak_or_shared_keys_serve_nothing_but_health(name: str, value: str) -> None:
    edge = make_edge(enabled=(WS,), **{name: value})
    refused = await edge.call("POST", "/v1/messages", {"to": TO, "content": "x", "workspace_id": WS})
    assert (refused.status, code(refused)) == (503, "not_configured")
    assert (await edge.call("GET", "/v1/health")).body["status"] == "degraded"
    assert edge.poster.forms == []


async def test_a_service_token_signed_with_the_workspace_key_is_refused() -> None:
    edge = make_edge()
    forged = issue_token(SECRET, service=True, now=edge.clock.time())
    refused = await edge.call("GET", "/v1/sync/messages", token=forged, query={"after": "0", "limit": "1"})
    assert (refused.status, code(refused)) == (401, "unauthorized")


async def test_unexpected_errors_become_a_500_envelope_without_details(edge: Edge) -> None:
    await edge.call("GET", "/v1/ledger/ws/key", token=service_token(edge.clock))  # the shards are verified once
    edge.db.close()  # every statement now fails inside the store
    response = await edge.call("GET", "/v1/ledger/ws/key", token=service_token(edge.clock))
    assert response.status == 500
    assert response.body == {
        "error": {"code": "internal_error", "message": "The edge could not handle this request; try again."}
    }


async def test_routing_answers_404_and_405(edge: Edge) -> None:
    assert code(await edge.call("GET", "/nope")) == "not_found"
    wrong = await edge.call("DELETE", "/v1/ledger/claim")
    assert wrong.status == 405
    assert wrong.headers["Allow"] == "POST"
    assert (await edge.call("PATCH", "/v1/messages")).status == 405
    assert (await edge.call("HEAD", "/v1/health")).status == 200


async def test_service_body_errors_name_the_field(edge: Edge) -> None:
    service = service_token(edge.clock)
    not_json = await edge.call("POST", "/v1/ledger/claim", b"{", token=service)
    assert (not_json.status, code(not_json)) == (400, "invalid_json")
    no_record = await edge.call("POST", "/v1/ledger/claim", {}, token=service)
    assert no_record.status == 422
    assert field_of(no_record) == "record"
    too_many = await edge.call("POST", "/v1/ledger/reconcile", {"records": [{}] * 501}, token=service)
    assert too_many.status == 422
    bad_limit = await edge.call("GET", "/v1/sync/messages", token=service, query={"limit": "0"})
    assert bad_limit.status == 422
    bad_time = await edge.call(
        "PUT", f"/v1/settings-mirror/{WS}", {"sms_failover_enabled": True, "updated_at": "yesterday"}, token=service
    )
    assert field_of(bad_time) == "updated_at"
    bad_ws = await edge.call("GET", "/v1/ledger/bad%20ws/key", token=service)
    assert bad_ws.status == 422


async def test_the_cron_purge_keeps_a_day(edge: Edge) -> None:
    await edge.send("old", "old")
    edge.clock.advance(DAY + 60)
    await edge.send("new", "new")
    assert (await edge.app.scheduled()).ledger_records == 0  # retention defaults to two days
    edge.clock.advance(DAY)
    assert (await edge.app.scheduled()).ledger_records == 1
    service = service_token(edge.clock)
    assert (await edge.call("GET", f"/v1/ledger/{WS}/old", token=service)).status == 404
    assert (await edge.call("GET", f"/v1/ledger/{WS}/new", token=service)).status == 200


async def test_the_mirror_takes_rfc3339_or_epoch_milliseconds(edge: Edge) -> None:
    service = service_token(edge.clock)
    as_ms = {"sms_failover_enabled": True, "updated_at": 1_795_000_000_000}
    stored = await edge.call("PUT", f"/v1/settings-mirror/{WS}", as_ms, token=service)
    assert stored.status == 200
    assert str(stored.body["updated_at"]).startswith("2026-")
    older = {"sms_failover_enabled": False, "updated_at": "2026-01-01T00:00:00Z"}
    kept = await edge.call("PUT", f"/v1/settings-mirror/{WS}", older, token=service)
    assert kept.body["sms_failover_enabled"] is True
    read = await edge.call("GET", f"/v1/workspaces/{WS}/settings", token=ws_token(edge.clock))
    assert read.body["sms_failover_enabled"] is True


# -- ledger authority (DESIGN.md rules 1, 3, 4, 6) ---------------------------------------------------------------


def origin_record(key: str, edge: Edge, *, message_id: str, state: str = "claimed", **extra: object) -> dict[str, Any]:
    now = edge.clock.time()
    body = json.dumps({"to": TO, "content": "hello", "workspace_id": WS}).encode()
    return {
        "workspace_id": WS,
        "key": key,
        "fingerprint": fingerprint(parse_send_request(body)),
        "state": state,
        "endpoint": "origin",
        "lease_expires_at": now + 30,
        "created_at": now,
        "updated_at": now,
        "message": None,
        "message_id": message_id,
        **extra,
    }


async def test_the_edge_does_not_send_for_a_workspace_it_does_not_hold_as_enabled() -> None:
    edge = make_edge(enabled=())
    refused = await edge.send("k1")
    assert refused.status == 403
    assert code(refused) == "failover_disabled"
    assert edge.poster.forms == []
    record = await edge.call("GET", f"/v1/ledger/{WS}/k1", token=service_token(edge.clock))
    assert record.status == 404  # nothing was claimed either


async def test_a_key_the_edge_holds_is_answered_from_its_record_after_a_disable(edge: Edge) -> None:
    assert (await edge.send("k1")).status == 201
    disabled = {"sms_failover_enabled": False, "updated_at": 2}
    put = await edge.call("PUT", f"/v1/settings-mirror/{WS}", disabled, token=service_token(edge.clock))
    assert put.status == 200
    assert (await edge.send("k1")).status == 200  # a replay, not a refusal
    assert code(await edge.send("k2")) == "failover_disabled"
    assert len(edge.poster.forms) == 1


async def test_complete_and_release_are_fenced_by_message_id(edge: Edge) -> None:
    service = service_token(edge.clock)
    mine = "msg_01JZ00000000000000000000AA"
    claim = await edge.call(
        "POST", "/v1/ledger/claim", {"record": origin_record("f1", edge, message_id=mine)}, token=service
    )
    assert claim.body["claimed"] is True
    late = {"workspace_id": WS, "key": "f1", "message_id": "msg_01JZ00000000000000000000BB"}
    answer = await edge.call("POST", "/v1/ledger/release", late, token=service)
    assert answer.status == 200
    record = answer.body["record"]
    assert isinstance(record, dict)
    assert (record["state"], record["message_id"]) == ("claimed", mine)
    missing = await edge.call("POST", "/v1/ledger/release", {"workspace_id": WS, "key": "f1"}, token=service)
    assert (missing.status, field_of(missing)) == (422, "message_id")


async def test_reconcile_repairs_the_origins_own_open_claim_and_counts_any_other_attempt(edge: Edge) -> None:
    service = service_token(edge.clock)
    own, other = "msg_01JZ00000000000000000000AA", "msg_01JZ00000000000000000000CC"
    for key in ("open", "theirs"):
        body = {"record": origin_record(key, edge, message_id=other if key == "theirs" else own)}
        assert (await edge.call("POST", "/v1/ledger/claim", body, token=service)).body["claimed"] is True
    sent = {"id": own, "status": "queued", "endpoint": "origin"}
    records = [
        origin_record("open", edge, message_id=own, state="completed", message=sent),  # the origin's own claim
        origin_record("theirs", edge, message_id=own, state="completed", message=sent),  # another origin attempt
    ]
    answer = await edge.call("POST", "/v1/ledger/reconcile", {"records": records}, token=service)
    theirs = (await edge.call("GET", f"/v1/ledger/{WS}/theirs", token=service)).body
    assert theirs["message_id"] == other  # the other attempt's record stays, answered for the origin to adopt
    duplicates = [{"workspace_id": WS, "key": "theirs"}]
    assert answer.body == {"merged": 1, "duplicates": duplicates, "kept": [theirs], "failed": []}
    repaired = await edge.call("GET", f"/v1/ledger/{WS}/open", token=service)
    assert (repaired.body["state"], repaired.body["message"]) == ("completed", sent)


async def test_an_authenticated_ping_answers_for_service_tokens_only(edge: Edge) -> None:
    assert (await edge.call("GET", "/v1/ledger/ping", token=service_token(edge.clock))).status == 200
    assert (await edge.call("GET", "/v1/ledger/ping", token=ws_token(edge.clock))).status == 403
    assert (await edge.call("GET", "/v1/ledger/ping")).status == 401


@pytest.mark.parametrize("after", ["²", "9" * 5000, "-1"])
async def test_sync_numbers_from_a_client_are_ascii_digits_within_bounds(edge: Edge, after: str) -> None:
    response = await edge.call("GET", "/v1/sync/messages", token=service_token(edge.clock), query={"after": after})
    assert response.status == 422
    assert code(response) == "invalid_request"
