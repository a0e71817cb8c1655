"""Status, metrics, Twilio callbacks, the edge sync, limits and the auth matrix of the origin-only routes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from smsfailover.core.ids import new_message_id, rfc3339
from smsfailover.express_shim.edge_sync import SyncCursor
from smsfailover.express_shim.twilio_signature import twilio_signature

from tests.origin.fake_edge import FakeEdgeState
from tests.origin.harness import Origin, apoll, new_workspace, running_origin

CALLBACK = "/v1/provider/twilio/status"


def _edge_message(ws: str, seq: int, *, status: str = "queued") -> dict[str, Any]:
    now = time.time()
    return {
        "id": new_message_id(now),
        "workspace_id": ws,
        "to": "+16266635938",
        "contact_id": None,
        "media_urls": [],
        "status": status,
        "endpoint": "edge",
        "idempotency_key": f"edge-{uuid.uuid4().hex}",
        "provider_message_id": f"SM{uuid.uuid4().hex}",
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": rfc3339(now),
        "updated_at": rfc3339(now),
        "requires_refresh": True,
        "ledger": "edge",
        "latency_ms": 42.0,
        "error": None,
        "seq": seq,
    }


async def test_status_counts_sends_of_both_endpoints_over_the_window(db_kind: str, tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin(db_kind, tmp_path, edge_state=state) as origin:
        ws = new_workspace()
        for _ in range(3):
            assert (await origin.send(ws)).status_code == 201
        state.edge_messages.append(_edge_message(ws, seq=1))
        await apoll(lambda: _status_when(origin, ws, lambda s: s["failovers_15m"] == 1), what="the synced send")

        status = (await origin.http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=origin.auth(ws))).json()

        assert status["enabled"] is False
        assert status["ledger"] == "local"
        assert status["degraded"] is False
        assert status["breaker"] is None
        assert status["unknown_15m"] == 0
        origin_stats, edge_stats = status["endpoints"]["origin"], status["endpoints"]["edge"]
        assert origin_stats["requests"] == 3
        assert origin_stats["success_rate"] == 1.0
        assert origin_stats["p50_ms"] <= origin_stats["p95_ms"] <= origin_stats["p99_ms"]
        assert origin_stats["window_s"] == 900
        assert edge_stats["requests"] == 1
        assert edge_stats["p50_ms"] == 42.0
        assert origin_stats["healthy"] is True  # the probe ran against our own database
        assert edge_stats["healthy"] is True  # and against the (fake) edge's /v1/health
        assert edge_stats["checked_at"].endswith("Z")


async def test_an_unknown_outcome_is_reported_in_status(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        await origin.sim_faults(status=500)  # a 5xx after the provider may have created the message
        resp = await origin.send(ws)

        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "unknown"
        status = (await origin.http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=origin.auth(ws))).json()
        assert status["unknown_15m"] == 1
        assert status["endpoints"]["origin"]["success_rate"] == 0.0


async def _status_when(origin: Origin, ws: str, check: Any) -> dict[str, Any] | None:
    resp = await origin.http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=origin.auth(ws))
    body: dict[str, Any] = resp.json()
    return body if check(body) else None


async def test_edge_sends_are_synced_into_the_list_and_the_cursor_survives_a_restart(
    db_kind: str, tmp_path: Path
) -> None:
    state = FakeEdgeState()
    ws = new_workspace()
    first = _edge_message(ws, seq=1)
    state.edge_messages.append(first)
    async with running_origin(db_kind, tmp_path, edge_state=state) as origin:
        listed = await apoll(lambda: _listed(origin, ws, 1), what="the first edge message")
        assert listed[0]["id"] == first["id"]
        assert listed[0]["endpoint"] == "edge"
        assert listed[0]["requires_refresh"] is True
        cursor = SyncCursor(origin.services.db)
        await apoll(lambda: _cursor_at(cursor, 1), what="the stored cursor")  # stored after the page is copied
        # the sync goes on from its cursor: a second message, and the first is not copied twice
        second = _edge_message(ws, seq=2)
        state.edge_messages.append(second)
        listed = await apoll(lambda: _listed(origin, ws, 2), what="the second edge message")
        assert [m["id"] for m in listed] == [second["id"], first["id"]]


async def _cursor_at(cursor: SyncCursor, seq: int) -> bool | None:
    return True if await cursor.get() == seq else None


async def _listed(origin: Origin, ws: str, n: int) -> list[dict[str, Any]] | None:
    resp = await origin.http.get(f"/v1/workspaces/{ws}/messages", headers=origin.auth(ws))
    data: list[dict[str, Any]] = resp.json()["data"]
    return data if len(data) == n else None


async def test_simulator_callbacks_advance_the_status_to_delivered(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws = new_workspace()
        sent = (await origin.send(ws)).json()

        delivered = await apoll(lambda: _message_status(origin, ws, sent["id"], "delivered"), what="delivered")

        assert delivered["provider_message_id"] == sent["provider_message_id"]


async def _message_status(origin: Origin, ws: str, message_id: str, status: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await origin.http.get(f"/v1/messages/{message_id}", headers=origin.auth(ws))).json()
    return body if body.get("status") == status else None


def _signed(origin: Origin, params: dict[str, str]) -> tuple[dict[str, str], bytes]:
    url = origin.url + CALLBACK
    signature = twilio_signature(origin.secrets.twilio_auth_token, url, sorted(params.items()))
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return headers, str(httpx2.QueryParams(params)).encode()


async def test_callbacks_need_a_valid_signature_and_only_move_forward(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        sent = (await origin.send(ws)).json()
        sid = sent["provider_message_id"]
        await apoll(lambda: _message_status(origin, ws, sent["id"], "delivered"), what="delivered")

        headers, body = _signed(origin, {"MessageSid": sid, "MessageStatus": "sent"})
        backwards = await origin.http.post(CALLBACK, content=body, headers=headers)
        forged_headers = {**headers, "X-Twilio-Signature": "bm9wZQ=="}
        forged = await origin.http.post(
            CALLBACK, content=b"MessageSid=" + sid.encode() + b"&MessageStatus=failed", headers=forged_headers
        )
        unknown_headers, unknown_body = _signed(origin, {"MessageSid": "SMnope", "MessageStatus": "delivered"})
        unknown = await origin.http.post(CALLBACK, content=unknown_body, headers=unknown_headers)

        assert backwards.status_code == 204
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "invalid_signature"
        assert unknown.status_code == 204
        got = (await origin.http.get(f"/v1/messages/{sent['id']}", headers=origin.auth(ws))).json()
        assert got["status"] == "delivered"


async def test_a_callback_that_comes_before_its_message_is_applied_once_the_message_arrives(
    db_kind: str, tmp_path: Path
) -> None:
    state = FakeEdgeState()
    async with running_origin(db_kind, tmp_path, edge_state=state) as origin:
        ws = new_workspace()
        early = _edge_message(ws, seq=1)
        headers, body = _signed(origin, {"MessageSid": early["provider_message_id"], "MessageStatus": "delivered"})
        assert (await origin.http.post(CALLBACK, content=body, headers=headers)).status_code == 204

        state.edge_messages.append(early)  # the edge's send is synced only now

        got = await apoll(lambda: _message_status(origin, ws, early["id"], "delivered"), what="the parked update")
        assert got["endpoint"] == "edge"

        async def parked_dropped() -> bool | None:  # the sync advances the status, then drops what it applied
            rows = await origin.services.db.fetch("SELECT COUNT(*) AS n FROM parked_callbacks")
            return True if rows == [{"n": 0}] else None

        await apoll(parked_dropped, what="the applied update to leave parked_callbacks")


async def test_a_failed_callback_is_terminal(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        await origin.sim_faults(latency_ms=0)
        sent = (await origin.send(ws)).json()
        await apoll(lambda: _message_status(origin, ws, sent["id"], "delivered"), what="delivered")
        db = origin.services.db
        await db.execute("UPDATE messages SET status = 'sent' WHERE id = ?", (sent["id"],))
        for twilio_status in ("undelivered", "delivered"):
            params = {"MessageSid": sent["provider_message_id"], "MessageStatus": twilio_status, "ErrorCode": "30003"}
            headers, body = _signed(origin, params)
            assert (await origin.http.post(CALLBACK, content=body, headers=headers)).status_code == 204
        got = (await origin.http.get(f"/v1/messages/{sent['id']}", headers=origin.auth(ws))).json()
        assert got["status"] == "undelivered"
        assert got["error"]["provider_code"] == "30003"


async def test_metrics_are_prometheus_text_for_the_service_token_only(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        await origin.send(ws)
        service = {"Authorization": f"Bearer {origin.service_token()}"}

        ok = await origin.http.get("/metrics", headers=service)
        anonymous = await origin.http.get("/metrics")
        workspace = await origin.http.get("/metrics", headers=origin.auth(ws))

        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("text/plain")
        assert 'smsfailover_origin_sends_total{outcome="queued"} 1.0' in ok.text
        assert ws not in ok.text
        assert "workspace" not in ok.text.lower()
        assert anonymous.status_code == 401
        assert workspace.status_code == 403


async def test_old_ledger_records_and_send_log_rows_are_purged(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        await origin.send(ws)
        db = origin.services.db
        two_days_ago_ms = int((time.time() - 2 * 86400) * 1000)
        await db.execute("UPDATE idempotency_ledger SET created_at = ?", (two_days_ago_ms,))
        await db.execute("UPDATE send_log SET created_at = ?", (two_days_ago_ms,))
        await origin.send(ws)  # a fresh one stays

        await origin.services.purge()

        assert await db.fetch("SELECT COUNT(*) AS n FROM idempotency_ledger") == [{"n": 1}]
        assert await db.fetch("SELECT COUNT(*) AS n FROM send_log") == [{"n": 1}]


async def test_the_edge_probe_reports_an_edge_that_is_down(tmp_path: Path) -> None:
    state = FakeEdgeState(failing=True)
    async with running_origin("sqlite", tmp_path, edge_state=state) as origin:
        ws = new_workspace()
        status = await apoll(
            lambda: _status_when(origin, ws, lambda s: s["endpoints"]["edge"]["checked_at"] is not None),
            what="a probe",
        )
        assert status["endpoints"]["edge"]["healthy"] is False
        assert status["endpoints"]["origin"]["healthy"] is True


async def test_metrics_may_be_public(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, metrics_public=True) as origin:
        assert (await origin.http.get("/metrics")).status_code == 200


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    async with running_origin("sqlite", tmp_path) as running:
        yield running


async def test_a_body_over_64_kib_is_413_by_header_or_by_stream(origin: Origin) -> None:
    ws = new_workspace()
    big = json.dumps({"to": "+16266635938", "workspace_id": ws, "content": "x" * (65 * 1024)}).encode()
    headers = {**origin.auth(ws), "Idempotency-Key": "k1", "Content-Type": "application/json"}

    declared = await origin.http.post("/v1/messages", content=big, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    streamed = await origin.http.post("/v1/messages", content=chunks(), headers=headers)  # chunked, no length

    for resp in (declared, streamed):
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "payload_too_large"
    settings = await origin.http.patch(
        f"/v1/workspaces/{ws}/settings",
        content=chunks(),
        headers={**origin.auth(ws), "Content-Type": "application/json"},
    )
    assert settings.status_code == 413


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/workspaces/{ws}/settings"),
        ("PATCH", "/v1/workspaces/{ws}/settings"),
        ("GET", "/v1/workspaces/{ws}/sms-failover/status"),
        ("GET", "/v1/workspaces/{ws}/messages"),
    ],
)
async def test_the_auth_matrix_of_workspace_routes(origin: Origin, method: str, path: str) -> None:
    ws = new_workspace()
    url = path.format(ws=ws)
    body = {"sms_failover_enabled": True} if method == "PATCH" else None
    tokens = {
        None: 401,
        "not.a.jwt": 401,
        origin.token(ws, ttl_s=-120): 401,
        origin.token(new_workspace()): 403,
        origin.service_token(): 403,
        origin.token(ws): 200,
    }
    for token, expected in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await origin.http.request(method, url, json=body, headers=headers)
        assert resp.status_code == expected, (token, resp.text)
        if expected != 200:
            assert set(resp.json()) == {"error"}


@pytest.mark.parametrize(
    "body", [b"{nope", b"[]", b"{}", b'{"sms_failover_enabled": "yes"}', b'{"sms_failover_enabled": true, "x": 1}']
)
async def test_bad_settings_bodies_are_refused_in_the_envelope(origin: Origin, body: bytes) -> None:
    ws = new_workspace()
    resp = await origin.http.patch(
        f"/v1/workspaces/{ws}/settings", content=body, headers={**origin.auth(ws), "Content-Type": "application/json"}
    )
    assert resp.status_code == (400 if body == b"{nope" else 422)
    assert resp.json()["error"]["code"] == ("invalid_json" if body == b"{nope" else "invalid_settings")


async def test_unknown_routes_and_methods_answer_in_the_envelope(origin: Origin) -> None:
    missing = await origin.http.get("/v1/nothing-here")
    wrong = await origin.http.delete("/v1/workspaces/a/settings")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_head_on_health_is_answered_like_get(origin: Origin) -> None:
    resp = await origin.http.head("/v1/health")
    assert resp.status_code == 200
    assert resp.content == b""


async def test_list_validates_limit_and_cursor(origin: Origin) -> None:
    ws = new_workspace()
    bad = (
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "²"}, "invalid_limit"),  # str.isdigit() takes a superscript two; int() does not
        ({"limit": "9" * 5000}, "invalid_limit"),  # past int()'s 4,300-digit limit
        ({"cursor": "zzz"}, "invalid_cursor"),
        ({"cursor": "².msg_x"}, "invalid_cursor"),
        ({"cursor": "99999999999999999999999.msg_x"}, "invalid_cursor"),  # past a 64-bit integer
    )
    for params, code in bad:
        resp = await origin.http.get(f"/v1/workspaces/{ws}/messages", params=params, headers=origin.auth(ws))
        assert resp.status_code == 422
        assert resp.json()["error"]["code"] == code
