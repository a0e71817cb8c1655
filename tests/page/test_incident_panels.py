"""What an operator needs in an incident (issue 15), over plain HTTP: the failover events with their reasons, an
endpoint shown down by the next poll, the edge ledger's card, and the unknown outcomes with an operator's action."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
from smsfailover.core.ids import new_message_id, rfc3339
from smsfailover.core.message import payload_fingerprint
from smsfailover.express_shim.failover_events import EVENTS_SHOWN, FailoverEvents

from tests.origin.harness import apoll, new_workspace
from tests.page.conftest import PAGE, PageOrigin, page_origin_with, signed_in

TO = "+16266635938"


def edge_send(ws: str, seq: int, *, at_s: float, reason: object = None, status: str = "queued") -> dict[str, Any]:
    """One message as the edge's sync feed gives it, with the reason the router put on its POST (if any)."""
    message: dict[str, Any] = {
        "id": new_message_id(at_s),
        "workspace_id": ws,
        "to": "+16266635938",
        "content": "incident",
        "contact_id": None,
        "media_urls": [],
        "status": status,
        "endpoint": "edge",
        "idempotency_key": f"edge-{uuid.uuid4().hex}",
        "provider_message_id": f"SM{uuid.uuid4().hex}",
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": rfc3339(at_s),
        "updated_at": rfc3339(at_s),
        "requires_refresh": True,
        "ledger": "edge",
        "latency_ms": 40.0,
        "error": None,
        "seq": seq,
    }
    if reason is not None:
        message["failover_reason"] = reason
    return message


async def _live(http: httpx2.AsyncClient, ws: str) -> dict[str, Any]:
    resp = await http.get(f"{PAGE}/live", params={"workspace": ws})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_failover_events_carry_the_routers_reason_newest_first(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    now = time.time()
    sends = [
        edge_send(ws, 1, at_s=now - 30, reason="timeout"),
        edge_send(ws, 2, at_s=now - 20, reason="breaker_open", status="failed"),
        edge_send(ws, 3, at_s=now - 10, reason="<script>" * 40),  # not a reason: stored and shown as "other"
        edge_send(ws, 4, at_s=now - 5),  # a direct edge call: no reason given
    ]
    page_origin.edge.edge_messages.extend(sends)
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)

        async def synced() -> dict[str, Any] | None:
            body = await _live(http, ws)
            return body if len(body["status"]["failover_events"]) == 4 else None

        body = await apoll(synced, what="the sync of four edge sends")
        html = (await http.get(PAGE, params={"workspace": ws})).text
    events = body["status"]["failover_events"]
    assert [e["message_id"] for e in events] == [s["id"] for s in reversed(sends)]
    assert [e["reason"] for e in events] == [None, "other", "breaker_open", "timeout"]
    assert [e["status"] for e in events] == ["queued", "queued", "failed", "queued"]
    assert events[-1]["at"] == sends[0]["created_at"]
    for rendered in (html, body["events_html"]):
        assert "Origin timed out" in rendered
        assert "Breaker open" in rendered
        assert "Not given" in rendered
        assert sends[0]["id"] in rendered
        assert "<script>" not in rendered  # neither stored nor echoed
    # The synced message keeps the public shape: the reason is the event's, not a field of the message.
    stored = await page_origin.services.messages.get(ws, sends[0]["id"])
    assert stored is not None
    assert "failover_reason" not in stored
    record = await page_origin.services.local_ledger.get(ws, sends[0]["idempotency_key"])
    assert record is not None
    assert record.message is not None
    assert "failover_reason" not in record.message


async def test_a_workspace_without_failovers_says_so(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)
        html = (await http.get(PAGE, params={"workspace": ws})).text
        body = await _live(http, ws)
    assert body["status"]["failover_events"] == []
    assert 'id="no-failover-events"' in html
    assert 'id="no-failover-events"' in body["events_html"]


async def test_the_last_events_are_one_bounded_indexed_read(page_origin: PageOrigin) -> None:
    ws, other = new_workspace(), new_workspace()
    events = FailoverEvents(page_origin.services.db)
    base_ms = int(time.time() * 1000)
    for i in range(EVENTS_SHOWN + 5):
        await events.record(
            workspace_id=ws, message_id=f"msg_{i:04d}", reason="hedge", status="sent", at_ms=base_ms + i
        )
        await events.record(
            workspace_id=other, message_id=f"msg_o{i:04d}", reason="timeout", status="sent", at_ms=base_ms
        )
    recent = await events.recent(ws)
    assert [e["message_id"] for e in recent] == [f"msg_{i:04d}" for i in range(EVENTS_SHOWN + 4, 4, -1)]
    plan = await page_origin.services.db.fetch(
        "EXPLAIN QUERY PLAN SELECT e.message_id FROM failover_events e LEFT JOIN messages m ON m.id = e.message_id "
        "WHERE e.workspace_id = ? ORDER BY e.created_at DESC, e.message_id DESC LIMIT 20",
        (ws,),
    )
    steps = " | ".join(str(row["detail"]) for row in plan)
    assert "failover_events_recent" in steps
    assert "TEMP B-TREE" not in steps  # read in index order and stopped at the limit, never sorted


async def test_an_endpoint_that_stops_answering_is_shown_down_without_the_background_round(tmp_path: Path) -> None:
    """The background probe runs once an hour here: only the live poll's own fresh probe (probes at most a second
    old) can show the change; tests/origin/test_probes.py pins the age and the sharing on a manual clock."""
    async with page_origin_with(tmp_path, probe_interval_s=3600.0) as origin:
        ws = new_workspace()
        async with origin.client() as http:
            await signed_in(origin, http, ws)

            async def edge_is(healthy: bool) -> dict[str, Any] | None:
                edge: dict[str, Any] = (await _live(http, ws))["status"]["endpoints"]["edge"]
                return edge if edge["checked_at"] and edge["healthy"] is healthy else None

            up = await apoll(lambda: edge_is(True), what="the edge shown up")
            origin.edge.failing = True  # its health check answers 503 from now on
            down = await apoll(lambda: edge_is(False), what="the edge shown down by a poll")
            origin.edge.failing = False
            await apoll(lambda: edge_is(True), what="the edge shown up again")
    assert down["checked_at"] > up["checked_at"]


async def test_the_edge_ledger_card_shows_its_state_shards_and_the_double_sends(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    await page_origin.services.double_sends.add([(ws, "k-twice"), (ws, "k-thrice")], page_origin.services.now_ms())
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)

        async def pinged() -> dict[str, Any] | None:
            body = await _live(http, ws)
            return body if body["status"]["edge_ledger"]["shards_checked_at"] else None

        body = await apoll(pinged, what="the edge ledger's first ping")
        html = (await http.get(PAGE, params={"workspace": ws})).text
    assert body["status"]["double_sends_found"] == 2
    assert 'id="edge-ledger"' in html
    assert 'data-field="edge_ledger">reachable<' in html
    assert 'data-field="edge_ledger_shards">1 of 1 answering<' in html
    assert 'data-field="double_sends_found">2<' in html


async def _unknown_send(origin: PageOrigin, ws: str, *, age_s: float = 600.0) -> str:
    """A send its provider never confirmed (completed as unknown), old enough that the resolution round leaves it
    alone (unknown_outcomes.py looks a send up for 5 minutes after its lease): what the panel lists. Its id."""
    services = origin.services
    ledger = await services.ledgers.ledger_for(ws)
    key, content, at = f"unknown-{uuid.uuid4().hex}", "maybe sent", time.time() - age_s
    claim = ledger.new_claim(ws, key, payload_fingerprint(TO, content, []), "origin")
    claim = dataclasses.replace(claim, created_at=at, updated_at=at, lease_expires_at=at + 30)
    assert await services.local_ledger.try_claim(claim)
    message: dict[str, Any] = {
        **edge_send(ws, 0, at_s=at),
        "id": claim.message_id,
        "idempotency_key": key,
        "content": content,
        "status": "unknown",
        "endpoint": "origin",
        "provider_message_id": None,
        "error": {"code": "outcome_unknown", "message": "The provider did not confirm the send."},
    }
    del message["seq"]
    await services.messages.insert(message)
    await services.local_ledger.complete(ws, key, message, at + 1, message_id=claim.message_id)
    return claim.message_id


async def test_unknown_outcomes_are_listed_and_a_workspace_session_cannot_mark_one_failed(
    page_origin: PageOrigin,
) -> None:
    ws = new_workspace()
    message_id = await _unknown_send(page_origin, ws)
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        html = (await http.get(PAGE, params={"workspace": ws})).text
        body = await _live(http, ws)
        forged = await http.post(
            f"{PAGE}/unknowns/mark-failed",
            params={"workspace": ws},
            data={"message_id": message_id, "csrf_token": csrf},
        )
    for rendered in (html, body["unknowns_html"]):
        assert f'data-message-id="{message_id}"' in rendered
        assert "Waiting for the next check" in rendered
        assert "Mark failed" not in rendered
    assert forged.status_code == 403
    assert "operator token" in forged.text
    stored = await page_origin.services.messages.get(ws, message_id)
    assert stored is not None
    assert stored["status"] == "unknown"


async def test_an_operator_marks_an_unknown_failed_from_the_page(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    message_id = await _unknown_send(page_origin, ws)
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws, token=page_origin.operator_token())
        html = (await http.get(PAGE, params={"workspace": ws})).text
        assert 'action="/settings/advanced/sms-failover/unknowns/mark-failed?workspace=' in html
        assert f'aria-label="Mark {message_id} failed"' in html
        assert "Mark failed" in (await _live(http, ws))["unknowns_html"]
        url = f"{PAGE}/unknowns/mark-failed"
        no_csrf = await http.post(url, params={"workspace": ws}, data={"message_id": message_id})
        not_one = await http.post(url, params={"workspace": ws}, data={"message_id": "msg_nope", "csrf_token": csrf})
        marked = await http.post(url, params={"workspace": ws}, data={"message_id": message_id, "csrf_token": csrf})
        after = (await http.get(PAGE, params={"workspace": ws})).text
    assert no_csrf.status_code == 403
    assert not_one.status_code == 404
    assert marked.status_code == 303
    assert marked.headers["location"] == f"{PAGE}?workspace={ws}"
    assert 'id="no-unknowns"' in after
    stored = await page_origin.services.messages.get(ws, message_id)
    assert stored is not None
    assert stored["status"] == "failed"
    assert isinstance(stored["error"], dict)
    assert stored["error"]["code"] == "marked_failed"
