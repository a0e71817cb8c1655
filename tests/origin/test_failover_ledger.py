"""The origin's side of "Ledger authority" (DESIGN.md) against a real origin and a small fake edge over HTTP.

Every key is recorded in the origin's own ledger first and a retry is answered from it; while the edge may accept
sends the origin claims each new key there too and the edge's answer is final; slowness, a 5xx or a 401 from the
edge ledger is `503 ledger_unavailable` with nothing sent; only a refused connection (the link cut) is degraded
mode, reconciled later, with every double send counted. The same scenarios against the real edge and two origin
processes are in tests/e2e/test_one_key_one_outcome.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.origin.fake_edge import FakeEdgeState
from tests.origin.harness import Origin, apoll, new_key, new_workspace, running_origin


async def _enabled(origin: Origin) -> str:
    ws = new_workspace()
    await origin.enable_failover(ws)
    return ws


async def _status(origin: Origin, ws: str) -> dict[str, object]:
    response = await origin.http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=origin.auth(ws))
    body: dict[str, object] = response.json()
    return body


async def _metrics(origin: Origin) -> str:
    return (await origin.http.get("/metrics", headers={"Authorization": f"Bearer {origin.service_token()}"})).text


async def _mirrored(origin: Origin, ws: str, value: bool) -> bool | None:
    entry = origin.edge.mirror.get(ws)
    return True if entry is not None and entry["sms_failover_enabled"] is value else None


# -- the switch ---------------------------------------------------------------------------------------------------


async def test_an_enable_seeds_the_edge_ledger_before_the_edge_is_told(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        before = await origin.send(ws, key=key, content="sent while off")
        assert before.json()["ledger"] == "local"
        assert (await origin.set_failover(ws, True)).json()["failover_state"] == "enabling"

        await apoll(lambda: _mirrored(origin, ws, True), what="the mirror to say enabled")

        assert (ws, key) in origin.edge.enabled_at_mirror[ws]  # seeded before the edge could accept the key
        assert origin.edge.ledger[(ws, key)]["message"]["id"] == before.json()["id"]
        await apoll(lambda: _switch_is(origin, ws, "on"), what="the switch to reach on")


async def test_a_disable_waits_for_the_edge_then_a_lease_then_a_sync(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, lease_s=0.5) as origin:
        ws = await _enabled(origin)
        answer = await origin.set_failover(ws, False)
        assert answer.json()["failover_state"] == "disabling"
        assert (await origin.send(ws)).json()["ledger"] == "edge"  # still claimed at the edge until it settles

        await apoll(lambda: _mirrored(origin, ws, False), what="the mirror to say disabled")
        await apoll(lambda: _switch_is(origin, ws, "off"), what="the switch to reach off")
        assert (await origin.send(ws)).json()["ledger"] == "local"


async def test_a_forced_disable_is_off_at_once_while_the_edge_cannot_answer(tmp_path: Path) -> None:
    """Forcing takes an operator token (DESIGN.md rule 5): the workspace's own token is refused, nothing changed."""
    async with running_origin("sqlite", tmp_path) as origin:
        ws = await _enabled(origin)
        origin.edge.failing = True
        url, forced = f"/v1/workspaces/{ws}/settings", {"sms_failover_enabled": False, "force": True}
        refused = await origin.http.patch(url, json=forced, headers=origin.auth(ws))
        assert refused.status_code == 403
        assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == ("forbidden", "force")
        assert await origin.switch_state(ws) == "on"
        operator = {"Authorization": f"Bearer {origin.operator_token()}"}
        resp = await origin.http.patch(url, json=forced, headers=operator)
        assert resp.status_code == 200
        assert resp.json()["failover_state"] == "off"
        bad = await origin.http.patch(url, json={"sms_failover_enabled": True, "force": True}, headers=operator)
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "force"


async def _switch_is(origin: Origin, ws: str, state: str) -> bool | None:
    return True if await origin.switch_state(ws) == state else None


async def test_a_disable_survives_an_edge_outage_and_arrives_later(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, outbox_interval_s=0.05) as origin:
        ws = await _enabled(origin)
        origin.edge.failing = True
        assert (await origin.set_failover(ws, False)).status_code == 200
        await apoll(lambda: _outbox_tried(origin), what="a failed push")
        assert await origin.services.outbox.pending_count() == 1
        assert await origin.switch_state(ws) == "disabling"  # the edge has not acknowledged

        origin.edge.failing = False
        await apoll(lambda: _mirrored(origin, ws, False), timeout_s=15, what="the retried push")


async def _outbox_tried(origin: Origin) -> bool | None:
    return (
        True
        if [p for p in origin.edge.mirror_puts if p[1]["sms_failover_enabled"] is False]
        or (origin.edge.failing and len(origin.edge.auth_headers) > 0)
        else None
    )


# -- claims --------------------------------------------------------------------------------------------------------


async def test_with_failover_on_the_claim_is_made_in_the_edge_ledger(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        resp = await origin.send(ws, key=key)

        assert resp.status_code == 201, resp.text
        assert resp.json()["ledger"] == "edge"
        record = origin.edge.ledger[(ws, key)]
        assert record["endpoint"] == "origin"

        async def completed_at_edge() -> dict[str, object] | None:  # the completion follows the answer
            return record if record["state"] == "completed" else None

        await apoll(completed_at_edge, what="the completion at the edge")
        assert record["message"]["id"] == resp.json()["id"]
        local = await origin.services.local_ledger.get(ws, key)
        assert local is not None
        assert local.message_id == resp.json()["id"]


async def test_a_key_the_edge_holds_is_answered_from_its_record_and_never_sent(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        edge_body = {"id": "msg_01JZ0000000000000000000EDG", "status": "queued", "endpoint": "edge"}
        origin.edge.ledger[(ws, key)] = {
            **_edge_record(ws, key, state="completed"),
            "message": {**edge_body, "requires_refresh": True},
        }

        again = await origin.send(ws, key=key, content="the edge sent this")

        assert again.status_code == 200, again.text
        assert again.json()["endpoint"] == "edge"
        assert again.json()["requires_refresh"] is True
        assert await origin.sim_received("the edge sent this") == []
        local = await origin.services.local_ledger.get(ws, key)
        assert local is not None
        assert local.message_id == edge_body["id"]


def _edge_record(ws: str, key: str, *, state: str) -> dict[str, object]:
    import time

    from smsfailover.core.message import payload_fingerprint

    from tests.origin.harness import VALID_TO

    now = time.time()
    return {
        "workspace_id": ws,
        "key": key,
        "fingerprint": payload_fingerprint(VALID_TO, "the edge sent this", []),
        "state": state,
        "endpoint": "edge",
        "lease_expires_at": now + 30,
        "created_at": now,
        "updated_at": now,
        "message": None,
        "message_id": "msg_01JZ0000000000000000000EDG",
    }


async def test_retries_are_answered_from_the_origins_own_record_across_toggles(db_kind: str, tmp_path: Path) -> None:
    """The issue's toggle scenarios at the origin: each retry replays; one provider call per key."""
    async with running_origin(db_kind, tmp_path) as origin:
        ws = new_workspace()
        off_key, on_key = new_key(), new_key()
        first = await origin.send(ws, key=off_key, content="sent while off")
        await origin.enable_failover(ws)
        replay = await origin.send(ws, key=off_key, content="sent while off")
        assert (replay.status_code, replay.json()["id"]) == (200, first.json()["id"])

        sent_on = await origin.send(ws, key=on_key, content="sent while on")
        assert sent_on.json()["ledger"] == "edge"
        assert (await origin.set_failover(ws, False)).status_code == 200
        again = await origin.send(ws, key=on_key, content="sent while on")
        assert (again.status_code, again.json()["id"]) == (200, sent_on.json()["id"])

        assert len(await origin.sim_received("sent while off")) == 1
        assert len(await origin.sim_received("sent while on")) == 1


async def test_a_paused_edge_neither_blocks_a_retry_nor_sends_it_twice(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        first = await origin.send(ws, key=key, content="before the pause")
        origin.edge.hang_s = 2.0  # the edge accepts connections and answers nothing (SIGSTOP)

        retry = await origin.send(ws, key=key, content="before the pause")

        assert (retry.status_code, retry.json()["id"]) == (200, first.json()["id"])
        assert len(await origin.sim_received("before the pause")) == 1


async def test_a_slow_edge_ledger_is_503_with_nothing_sent_never_degraded_mode(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        origin.edge.hang_s = 1.0  # longer than the origin's edge timeout (0.5 s here)

        slow = await origin.send(ws, key=key, content="no answer from the ledger")

        assert slow.status_code == 503, slow.text
        assert slow.json()["error"]["code"] == "ledger_unavailable"
        assert slow.headers["retry-after"] == "1"
        assert await origin.sim_received("no answer from the ledger") == []
        assert (await origin.http.get("/v1/health")).json()["ledger"] == "edge"  # not degraded
        origin.edge.hang_s = 0.0
        await apoll(lambda: _released_at_edge(origin, ws, key), what="the claim released at the edge")
        await apoll(lambda: _queue_empty(origin), what="the queue to drain")
        sent = await origin.send(ws, key=key, content="no answer from the ledger")
        assert (sent.status_code, sent.json()["ledger"]) == (201, "edge")
        assert len(await origin.sim_received("no answer from the ledger")) == 1


async def _released_at_edge(origin: Origin, ws: str, key: str) -> bool | None:
    record = origin.edge.ledger.get((ws, key))
    return True if record is None or record["state"] == "released" else None


async def test_a_5xx_or_401_from_the_edge_ledger_is_503_and_a_401_is_reported(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = await _enabled(origin)
        origin.edge.failing = True
        assert (await origin.send(ws, content="5xx")).json()["error"]["code"] == "ledger_unavailable"
        origin.edge.failing = False
        origin.edge.status = 401
        assert (await origin.send(ws, content="401")).json()["error"]["code"] == "ledger_unavailable"
        status = await _status(origin, ws)
        assert status["degraded"] is False
        edge_ledger = status["edge_ledger"]
        assert isinstance(edge_ledger, dict)
        assert edge_ledger["state"] == "not_answering"  # requests fail over; the local ledger is not in use
        assert "HTTP 401" in str(edge_ledger["config_fault"])
        assert await origin.sim_received("5xx") == []
        assert await origin.sim_received("401") == []
        assert 'smsfailover_origin_ledger_unavailable_total{kind="auth"} 1.0' in await _metrics(origin)


async def test_a_lookup_that_gets_no_answer_never_changes_the_ledger(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws = await _enabled(origin)
        origin.edge.failing = True
        lookup = await origin.http.get("/v1/messages", params={"idempotency_key": new_key()}, headers=origin.auth(ws))
        assert lookup.status_code == 404
        origin.edge.failing = False
        assert (await origin.send(ws)).json()["ledger"] == "edge"


# -- degraded mode and reconcile -----------------------------------------------------------------------------------


async def test_edge_unreachable_degrades_to_the_local_ledger_and_says_so(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws = await _enabled(origin)
        await origin.edge_link.cut()  # connections refused
        first = await origin.send(ws, content="before the outage budget")
        assert first.json()["error"]["code"] == "ledger_unavailable"  # a request never decides degraded mode
        await origin.wait_for_ledger("local")  # the liveness round does, after the budget (0.5 s here)

        resp = await origin.send(ws, content="while degraded")

        assert resp.status_code == 201, resp.text
        assert resp.json()["ledger"] == "local"
        assert len(await origin.sim_received("while degraded")) == 1
        health = (await origin.http.get("/v1/health")).json()
        assert (health["status"], health["ledger"]) == ("degraded", "local")
        status = await _status(origin, ws)
        assert (status["degraded"], status["ledger"]) == (True, "local")
        assert isinstance(status["edge_ledger"], dict)
        assert status["edge_ledger"]["state"] == "unreachable"
        metrics = await _metrics(origin)
        assert "smsfailover_origin_degraded_ledger_claims_total 1.0" in metrics
        assert "smsfailover_origin_ledger_degraded 1.0" in metrics
        assert await origin.services.edge_ledger_queue.local_window_left()
        assert await origin.sim_received("before the outage budget") == []


async def test_degraded_keys_are_reconciled_and_a_ping_ends_degraded_mode(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        await origin.edge_link.cut()
        await origin.wait_for_ledger("local")
        resp = await origin.send(ws, key=key)
        assert resp.json()["ledger"] == "local"

        await origin.edge_link.connect()
        await apoll(lambda: _reconciled(origin.edge, key), timeout_s=15, what="the reconcile call")

        [record] = [r for r in origin.edge.reconciled if r["key"] == key]
        assert (record["state"], record["endpoint"]) == ("completed", "origin")
        assert record["message"]["id"] == resp.json()["id"]
        await apoll(lambda: _queue_empty(origin), what="the queue to drain")
        await origin.wait_for_ledger("edge")  # the next liveness round, once the local window is pushed
        assert (await origin.http.get("/v1/health")).json()["status"] == "ok"
        assert (await origin.send(ws)).json()["ledger"] == "edge"
        assert (await _status(origin, ws))["double_sends_found"] == 0


async def _reconciled(state: FakeEdgeState, key: str) -> bool | None:
    return True if any(r["key"] == key for r in state.reconciled) else None


async def _queue_empty(origin: Origin) -> bool | None:
    return True if await origin.services.edge_ledger_queue.count() == 0 else None


async def test_a_double_send_found_by_reconcile_is_counted_whoever_sent_it(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        await origin.edge_link.cut()
        await origin.wait_for_ledger("local")
        await origin.send(ws, key=key)
        # meanwhile another attempt (here: another origin process, not the edge) claimed and sent the same key there
        origin.edge.ledger[(ws, key)] = {**_edge_record(ws, key, state="completed"), "endpoint": "origin"}
        await origin.edge_link.connect()
        await apoll(lambda: _reconciled(origin.edge, key), timeout_s=15, what="the reconcile call")

        assert await apoll(lambda: _metric_line(origin, "smsfailover_origin_double_sends_total 1.0"))
        assert (await _status(origin, ws))["double_sends_found"] == 1


async def _metric_line(origin: Origin, line: str) -> bool | None:
    return True if line in await _metrics(origin) else None


async def test_a_completion_the_edge_did_not_take_is_pushed_later(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        origin.edge.failing_paths.add("/v1/ledger/complete")

        resp = await origin.send(ws, key=key, content="completed locally")

        assert resp.status_code == 201, resp.text
        assert resp.json()["ledger"] == "edge"
        local = await origin.services.local_ledger.get(ws, key)
        assert local is not None
        assert local.state == "completed"
        origin.edge.failing_paths.clear()
        await apoll(lambda: _edge_state_is(origin, ws, key, "completed"), timeout_s=15, what="the edge completed")
        again = await origin.send(ws, key=key, content="completed locally")
        assert again.status_code == 200  # replayed from the origin's own record
        assert len(await origin.sim_received("completed locally")) == 1


async def _edge_state_is(origin: Origin, ws: str, key: str, state: str) -> bool | None:
    record = origin.edge.ledger.get((ws, key))
    return True if record is not None and record["state"] == state else None
