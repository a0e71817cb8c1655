"""The edge worker's own Python under real Pyodide with D1 from Miniflare, over real HTTP (the host)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from smsfailover.core.message import fingerprint, parse_send_request

from .fake_provider import FakeProvider, Fault
from .host_process import EdgeHostProcess
from .tokens import bearer, service_token, workspace_token

pytestmark = [pytest.mark.pyodide, pytest.mark.e2e]

TO = "+16266635938"


def new_ws() -> str:
    return f"ws_{uuid.uuid4().hex[:12]}"


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


_MIRRORED: set[str] = set()


def enable_at_edge(http: httpx2.Client, secret: str, ws: str) -> None:
    """Mirror the workspace as enabled, as the origin's failover switch does: the edge sends for no other."""
    if ws in _MIRRORED:
        return
    body = {"sms_failover_enabled": True, "updated_at": int(time.time() * 1000)}
    response = http.put(f"/v1/settings-mirror/{ws}", json=body, headers=bearer(service_token(secret)))
    assert response.status_code == 200, response.text
    _MIRRORED.add(ws)


def send(
    http: httpx2.Client,
    secret: str,
    ws: str,
    key: str | None,
    content: str,
    *,
    to: str = TO,
    extra: dict[str, Any] | None = None,
) -> httpx2.Response:
    """POST /v1/messages for a workspace with failover enabled (mirrored at the edge first)."""
    enable_at_edge(http, secret, ws)
    headers = bearer(workspace_token(secret, ws))
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"to": to, "content": content, "workspace_id": ws, **(extra or {})}
    return http.post("/v1/messages", json=body, headers=headers)


def error_code(response: httpx2.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"]["code"])


def payload_fingerprint(ws: str, content: str, to: str = TO) -> str:
    body = json.dumps({"to": to, "content": content, "workspace_id": ws}).encode()
    return fingerprint(parse_send_request(body))


def record(
    ws: str,
    key: str,
    *,
    state: str = "claimed",
    at: float | None = None,
    fingerprint: str = "f" * 64,
    message_id: str = "msg_01JZ00000000000000000000AA",
) -> dict[str, object]:
    now = time.time() if at is None else at
    return {
        "message_id": message_id,
        "workspace_id": ws,
        "key": key,
        "fingerprint": fingerprint,
        "state": state,
        "endpoint": "origin",
        "lease_expires_at": now + 30,
        "created_at": now,
        "updated_at": now,
        "message": None,
    }


# -- the host itself ------------------------------------------------------------------------------


def test_health_answers_ok_without_auth(http: httpx2.Client) -> None:
    response = http.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["endpoint"] == "edge"
    assert body["ledger"] == "edge"
    assert isinstance(body["version"], str)


def test_unknown_route_and_wrong_method_answer_in_the_envelope(http: httpx2.Client) -> None:
    missing = http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert error_code(missing) == "not_found"
    wrong = http.delete("/v1/health")
    assert wrong.status_code == 405
    assert error_code(wrong) == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


def test_startup_costs_are_reported(edge_host: EdgeHostProcess) -> None:
    # Recorded for docs/edge-host.md; generous bounds only catch a pathological regression.
    print(f"pyodide start {edge_host.pyodide_ms} ms, core import {edge_host.import_ms} ms")
    assert 0 < edge_host.pyodide_ms < 30_000
    assert 0 < edge_host.import_ms < 30_000


# -- sending --------------------------------------------------------------------------------------


def test_send_then_replay(http: httpx2.Client, jwt_secret: str, provider: FakeProvider) -> None:
    ws, key, content = new_ws(), new_key(), f"hello {uuid.uuid4().hex}"
    first = send(http, jwt_secret, ws, key, content)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"].startswith("msg_")
    assert body["endpoint"] == "edge"
    assert body["requires_refresh"] is True
    assert body["ledger"] == "edge"
    assert body["idempotency_key"] == key
    assert body["provider_message_id"].startswith("SM")
    assert (body["encoding"], body["segments"]) == ("GSM-7", 1)

    again = send(http, jwt_secret, ws, key, content)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == body
    assert provider.count(content) == 1

    by_id = http.get(f"/v1/messages/{body['id']}", headers=bearer(workspace_token(jwt_secret, ws)))
    assert by_id.status_code == 200
    assert by_id.json()["id"] == body["id"]
    by_key = http.get("/v1/messages", params={"idempotency_key": key}, headers=bearer(workspace_token(jwt_secret, ws)))
    assert by_key.status_code == 200
    assert by_key.json()["id"] == body["id"]


def test_each_request_hands_its_work_to_wait_until_without_a_rejection(
    http: httpx2.Client, jwt_secret: str, edge_host: EdgeHostProcess
) -> None:
    """worker.serve gives ctx.waitUntil a proxy of a Python task (a send must outlive a client that goes away,
    tests/edge/test_worker.py); under real Pyodide that proxy must settle as a promise, never reject (destroyed)."""
    assert send(http, jwt_secret, new_ws(), new_key(), f"kept {uuid.uuid4().hex}").status_code == 201
    assert http.get("/nope").status_code == 404  # a request whose task ends in its first step
    assert not edge_host.wait_for_log("waitUntil promise rejected", timeout_s=1.0)


def test_a_workspace_not_enabled_at_the_edge_is_403_failover_disabled_and_nothing_is_sent(
    http: httpx2.Client, jwt_secret: str, provider: FakeProvider
) -> None:
    ws, key, content = new_ws(), new_key(), f"not enabled {uuid.uuid4().hex}"
    headers = {**bearer(workspace_token(jwt_secret, ws)), "Idempotency-Key": key}
    body = {"to": TO, "content": content, "workspace_id": ws}
    refused = http.post("/v1/messages", json=body, headers=headers)
    assert refused.status_code == 403, refused.text
    assert error_code(refused) == "failover_disabled"
    assert not [r for r in provider.received if r.fields.get("Body") == [content]]
    service = bearer(service_token(jwt_secret))
    assert http.get(f"/v1/ledger/{ws}/{key}", headers=service).status_code == 404  # nothing claimed either


def test_same_key_other_payload_is_422(http: httpx2.Client, jwt_secret: str) -> None:
    ws, key = new_ws(), new_key()
    assert send(http, jwt_secret, ws, key, "one").status_code == 201
    reused = send(http, jwt_secret, ws, key, "two")
    assert reused.status_code == 422
    assert error_code(reused) == "idempotency_key_reused"


def test_a_key_claimed_elsewhere_is_409_with_retry_after(
    http: httpx2.Client, jwt_secret: str, provider: FakeProvider
) -> None:
    ws, key, content = new_ws(), new_key(), f"busy {uuid.uuid4().hex}"
    claimed_by_origin = record(ws, key, fingerprint=payload_fingerprint(ws, content))
    claim = http.post("/v1/ledger/claim", json={"record": claimed_by_origin}, headers=bearer(service_token(jwt_secret)))
    assert claim.status_code == 200, claim.text
    assert claim.json()["claimed"] is True
    busy = send(http, jwt_secret, ws, key, content)
    assert busy.status_code == 409
    assert error_code(busy) == "idempotency_in_progress"
    assert float(busy.headers["retry-after"]) >= 0
    assert provider.count(content) == 0


def test_provider_rejection_is_422_and_nothing_is_recorded_as_sent(
    http: httpx2.Client, jwt_secret: str, provider: FakeProvider
) -> None:
    ws, key = new_ws(), new_key()
    rejection = Fault(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400})
    with provider.fault(rejection):
        rejected = send(http, jwt_secret, ws, key, "rejected")
    assert rejected.status_code == 422
    assert error_code(rejected) == "provider_rejected"
    assert str(rejected.json()["error"]["provider_code"]) == "21211"


def test_provider_failure_is_503_and_releases_the_key(
    http: httpx2.Client, jwt_secret: str, provider: FakeProvider
) -> None:
    ws, key, content = new_ws(), new_key(), f"retry {uuid.uuid4().hex}"
    with provider.fault(Fault(503, {"code": 20503, "message": "Service Unavailable"})):
        failed = send(http, jwt_secret, ws, key, content)
    assert failed.status_code == 503
    assert error_code(failed) == "provider_unavailable"
    retried = send(http, jwt_secret, ws, key, content)
    assert retried.status_code == 201, retried.text
    assert provider.count(content) == 1


def test_a_provider_that_stalls_past_the_timeout_gives_unknown_and_no_resend(
    http: httpx2.Client, jwt_secret: str, provider: FakeProvider
) -> None:
    """The session host's provider timeout is 1 s; this provider answers (and sends) after 2 s."""
    ws, key, content = new_ws(), new_key(), f"slow {uuid.uuid4().hex}"
    with provider.fault(Fault(201, {"sid": "SMslow", "status": "queued"}, delay_s=2.0)):
        first = send(http, jwt_secret, ws, key, content)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "unknown"
    again = send(http, jwt_secret, ws, key, content)
    assert again.status_code == 200
    assert again.json()["status"] == "unknown"
    assert provider.count(content) == 1


# -- auth and validation --------------------------------------------------------------------------


def test_auth_errors(http: httpx2.Client, jwt_secret: str) -> None:
    ws = new_ws()
    body = {"to": TO, "content": "x", "workspace_id": ws}
    anonymous = http.post("/v1/messages", json=body, headers={"Idempotency-Key": new_key()})
    assert anonymous.status_code == 401
    assert error_code(anonymous) == "unauthorized"
    forged = http.post(
        "/v1/messages",
        json=body,
        headers={**bearer(workspace_token("not-the-secret-" + "x" * 32, ws)), "Idempotency-Key": new_key()},
    )
    assert forged.status_code == 401
    expired = http.post(
        "/v1/messages",
        json=body,
        headers={**bearer(workspace_token(jwt_secret, ws, ttl_s=-60)), "Idempotency-Key": new_key()},
    )
    assert expired.status_code == 401
    other = http.post(
        "/v1/messages",
        json=body,
        headers={**bearer(workspace_token(jwt_secret, "someone_else")), "Idempotency-Key": new_key()},
    )
    assert other.status_code == 403
    assert error_code(other) == "forbidden"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        ({"to": "12345", "content": "x"}, 422, "invalid_phone_number"),
        ({"to": TO, "content": "   "}, 422, "invalid_content"),
        ({"to": TO, "content": "x", "media_urls": ["http://example.com/a.jpg"]}, 422, "invalid_media_url"),
        ({"to": TO, "content": "x" * 70_000}, 413, "payload_too_large"),
    ],
)
def test_validation_errors(
    http: httpx2.Client, jwt_secret: str, body: bytes | dict[str, object], status: int, code: str
) -> None:
    ws = new_ws()
    headers = {**bearer(workspace_token(jwt_secret, ws)), "Idempotency-Key": new_key()}
    if isinstance(body, dict):
        response = http.post("/v1/messages", json={**body, "workspace_id": ws}, headers=headers)
    else:
        response = http.post("/v1/messages", content=body, headers={**headers, "content-type": "application/json"})
    assert response.status_code == status, response.text
    assert error_code(response) == code


def test_missing_idempotency_key_is_400(http: httpx2.Client, jwt_secret: str) -> None:
    response = send(http, jwt_secret, new_ws(), None, "x")
    assert response.status_code == 400
    assert error_code(response) == "missing_idempotency_key"


# -- the service routes ---------------------------------------------------------------------------


def test_ledger_claim_complete_release_round_trip(http: httpx2.Client, jwt_secret: str) -> None:
    service = bearer(service_token(jwt_secret))
    ws, key = new_ws(), new_key()
    first = http.post("/v1/ledger/claim", json={"record": record(ws, key)}, headers=service)
    assert first.json()["claimed"] is True
    second = http.post("/v1/ledger/claim", json={"record": record(ws, key)}, headers=service)
    assert second.json()["claimed"] is False
    assert second.json()["record"]["state"] == "claimed"

    fetched = http.get(f"/v1/ledger/{ws}/{key}", headers=service)
    assert fetched.status_code == 200
    assert fetched.json()["key"] == key

    message = {"id": "msg_01JZ0000000000000000000000", "status": "queued", "endpoint": "origin"}
    ours = {"workspace_id": ws, "key": key, "message": message}
    unfenced = http.post("/v1/ledger/complete", json=ours, headers=service)
    assert unfenced.status_code == 422  # a completion must name the claim it completes
    theirs = {**ours, "message_id": "msg_01JZ00000000000000000000BB"}
    assert http.post("/v1/ledger/complete", json=theirs, headers=service).json()["record"]["state"] == "claimed"
    done = http.post(
        "/v1/ledger/complete", json={**ours, "message_id": "msg_01JZ00000000000000000000AA"}, headers=service
    )
    assert done.status_code == 200, done.text
    assert done.json()["record"]["state"] == "completed"
    assert done.json()["record"]["message"]["id"] == message["id"]

    other = new_key()
    http.post("/v1/ledger/claim", json={"record": record(ws, other)}, headers=service)
    release = {"workspace_id": ws, "key": other, "message_id": "msg_01JZ00000000000000000000AA"}
    released = http.post("/v1/ledger/release", json=release, headers=service)
    assert released.json()["record"]["state"] == "released"
    retaken = http.post("/v1/ledger/claim", json={"record": record(ws, other)}, headers=service)
    assert retaken.json()["claimed"] is True

    missing = http.get(f"/v1/ledger/{ws}/never-claimed", headers=service)
    assert missing.status_code == 404
    assert error_code(missing) == "not_found"


def test_a_key_with_a_slash_round_trips_percent_encoded(http: httpx2.Client, jwt_secret: str) -> None:
    service = bearer(service_token(jwt_secret))
    ws, key = new_ws(), f"a/b-{uuid.uuid4().hex}"
    http.post("/v1/ledger/claim", json={"record": record(ws, key)}, headers=service)
    fetched = http.get(f"/v1/ledger/{ws}/{quote(key, safe='')}", headers=service)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["key"] == key


def test_bad_ledger_records_are_422_naming_the_field(http: httpx2.Client, jwt_secret: str) -> None:
    bad = record(new_ws(), new_key())
    bad["lease_expires_at"] = "soon"
    response = http.post("/v1/ledger/claim", json={"record": bad}, headers=bearer(service_token(jwt_secret)))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "record.lease_expires_at"


def test_reconcile_merges_unknown_keys_and_reports_double_sends(http: httpx2.Client, jwt_secret: str) -> None:
    service = bearer(service_token(jwt_secret))
    ws = new_ws()
    sent_at_edge = new_key()
    assert send(http, jwt_secret, ws, sent_at_edge, f"edge {uuid.uuid4().hex}").status_code == 201
    only_local = new_key()
    local_message = {"id": "msg_01JZ0000000000000000000001", "status": "sent", "endpoint": "origin"}
    marked, unmarked, began = new_key(), new_key(), round(time.time() - 1, 3)
    records = [
        {**record(ws, only_local, state="completed"), "message": local_message},
        {**record(ws, sent_at_edge, state="completed"), "message": local_message},
        {**record(ws, marked), "call_began_at": began},
        record(ws, unmarked),
    ]
    response = http.post("/v1/ledger/reconcile", json={"records": records}, headers=service)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["merged"], answer["duplicates"]) == (3, [{"workspace_id": ws, "key": sent_at_edge}])
    # the call-began mark goes through D1 as pushed, and no mark stays none (a JS null read back as None)
    assert http.get(f"/v1/ledger/{ws}/{marked}", headers=service).json()["call_began_at"] == began
    assert http.get(f"/v1/ledger/{ws}/{unmarked}", headers=service).json()["call_began_at"] is None
    assert answer["failed"] == []
    # the edge's own send stays, answered for the origin to adopt
    assert answer["kept"] == [http.get(f"/v1/ledger/{ws}/{sent_at_edge}", headers=service).json()]
    merged = http.get(f"/v1/ledger/{ws}/{only_local}", headers=service).json()
    assert merged["state"] == "completed"
    assert merged["endpoint"] == "origin"


def test_service_routes_refuse_workspace_tokens(http: httpx2.Client, jwt_secret: str) -> None:
    ws = new_ws()
    as_workspace = http.post(
        "/v1/ledger/claim",
        json={"record": record(ws, new_key())},
        headers=bearer(workspace_token(jwt_secret, ws)),
    )
    assert as_workspace.status_code == 403
    assert error_code(as_workspace) == "forbidden"
    anonymous = http.get("/v1/sync/messages")
    assert anonymous.status_code == 401


def test_settings_mirror_last_writer_wins(http: httpx2.Client, jwt_secret: str) -> None:
    ws = new_ws()
    service = bearer(service_token(jwt_secret))
    as_ws = bearer(workspace_token(jwt_secret, ws))
    default = http.get(f"/v1/workspaces/{ws}/settings", headers=as_ws)
    assert default.json() == {"workspace_id": ws, "sms_failover_enabled": False, "updated_at": None}

    newer = {"sms_failover_enabled": True, "updated_at": "2026-11-23T20:00:00Z"}
    older = {"sms_failover_enabled": False, "updated_at": "2026-11-23T19:00:00Z"}
    assert http.put(f"/v1/settings-mirror/{ws}", json=newer, headers=service).status_code == 200
    late_retry = http.put(f"/v1/settings-mirror/{ws}", json=older, headers=service)
    assert late_retry.json()["sms_failover_enabled"] is True

    read = http.get(f"/v1/workspaces/{ws}/settings", headers=as_ws).json()
    assert read["sms_failover_enabled"] is True
    assert read["updated_at"].startswith("2026-11-23T20:00:00")
    assert http.get(f"/v1/workspaces/{ws}/settings", headers=service).status_code == 200
    other = http.get(f"/v1/workspaces/{ws}/settings", headers=bearer(workspace_token(jwt_secret, "other")))
    assert other.status_code == 403

    invalid = http.put(f"/v1/settings-mirror/{ws}", json={"sms_failover_enabled": "yes"}, headers=service)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["field"] == "sms_failover_enabled"


def test_sync_feed_pages_edge_sends_in_order(http: httpx2.Client, jwt_secret: str) -> None:
    service = bearer(service_token(jwt_secret))
    start = http.get("/v1/sync/messages", params={"after": "0", "limit": "500"}, headers=service).json()
    cursor = start["next_cursor"]
    for _ in range(50):  # bounded: catch up with what earlier tests sent
        page = http.get("/v1/sync/messages", params={"after": cursor, "limit": "500"}, headers=service).json()
        if not page["data"]:
            break
        cursor = page["next_cursor"]
    ws = new_ws()
    ids = [send(http, jwt_secret, ws, new_key(), f"sync {i}").json()["id"] for i in range(3)]

    first = http.get("/v1/sync/messages", params={"after": cursor, "limit": "2"}, headers=service)
    assert first.status_code == 200
    page1 = first.json()
    assert [m["id"] for m in page1["data"]] == ids[:2]
    assert all(m["endpoint"] == "edge" and m["workspace_id"] == ws for m in page1["data"])
    assert "content" not in page1["data"][0] or page1["data"][0]["content"] == "sync 0"
    page2 = http.get("/v1/sync/messages", params={"after": page1["next_cursor"], "limit": "2"}, headers=service).json()
    assert [m["id"] for m in page2["data"]] == ids[2:]
    empty = http.get("/v1/sync/messages", params={"after": page2["next_cursor"], "limit": "2"}, headers=service).json()
    assert empty == {"data": [], "next_cursor": page2["next_cursor"], "shard": 0, "shards": 1}

    bad = http.get("/v1/sync/messages", params={"after": "-1"}, headers=service)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "after"


def test_cron_purges_records_past_retention(http: httpx2.Client, jwt_secret: str) -> None:
    service = bearer(service_token(jwt_secret))
    ws = new_ws()
    old, fresh = new_key(), new_key()
    week_ago = time.time() - 7 * 24 * 3600
    http.post("/v1/ledger/claim", json={"record": record(ws, old, at=week_ago)}, headers=service)
    http.post("/v1/ledger/claim", json={"record": record(ws, fresh)}, headers=service)

    ran = http.get("/__scheduled", params={"cron": "17 * * * *"})
    assert ran.status_code == 200

    assert http.get(f"/v1/ledger/{ws}/{old}", headers=service).status_code == 404
    assert http.get(f"/v1/ledger/{ws}/{fresh}", headers=service).status_code == 200


# -- cost -----------------------------------------------------------------------------------------


def test_per_request_time_on_the_host(http: httpx2.Client, jwt_secret: str) -> None:
    """Measured for docs/edge-host.md (Miniflare's D1 proxy dominates); bounds catch only a regression."""
    ws = new_ws()
    samples: dict[str, list[float]] = {"health": [], "send": [], "replay": []}
    for i in range(20):
        started = time.perf_counter()
        http.get("/v1/health")
        samples["health"].append(time.perf_counter() - started)
        key = new_key()
        started = time.perf_counter()
        assert send(http, jwt_secret, ws, key, f"timed {i}").status_code == 201
        samples["send"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert send(http, jwt_secret, ws, key, f"timed {i}").status_code == 200
        samples["replay"].append(time.perf_counter() - started)
    medians = {name: sorted(values)[len(values) // 2] * 1000 for name, values in samples.items()}
    print("edge host median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    assert medians["send"] < 2000
