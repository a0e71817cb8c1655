"""Failover enabled: the origin claims keys in the edge ledger; with the edge unreachable it degrades to its
own ledger, says so everywhere, and reconciles those keys into the edge ledger once the edge is back."""

from __future__ import annotations

from pathlib import Path

from tests.origin.fake_edge import FakeEdgeState
from tests.origin.harness import Origin, apoll, new_key, new_workspace, running_origin


async def _enabled(origin: Origin) -> str:
    ws = new_workspace()
    assert (await origin.set_failover(ws, True)).status_code == 200
    return ws


async def test_settings_changes_reach_the_edge_mirror(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws = await _enabled(origin)
        await apoll(lambda: _mirrored(origin, ws, True), what="the mirror to say enabled")
        assert (await origin.set_failover(ws, False)).status_code == 200
        await apoll(lambda: _mirrored(origin, ws, False), what="the mirror to say disabled")
        assert origin.edge.auth_headers  # every mirror call carried a (service) bearer token
        assert all(h.startswith("Bearer ") for h in origin.edge.auth_headers)


async def test_a_change_wakes_the_outbox_at_once(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, outbox_interval_s=60.0) as origin:
        ws = await _enabled(origin)
        await apoll(lambda: _mirrored(origin, ws, True), timeout_s=5, what="the pushed change, long before 60 s")


async def _mirrored(origin: Origin, ws: str, value: bool) -> bool | None:
    entry = origin.edge.mirror.get(ws)
    return True if entry is not None and entry["sms_failover_enabled"] is value else None


async def test_settings_survive_an_edge_outage_and_arrive_later(tmp_path: Path) -> None:
    state = FakeEdgeState(failing=True)
    async with running_origin("sqlite", tmp_path, edge_state=state) as origin:
        ws = await _enabled(origin)
        await apoll(lambda: _tried(origin), what="a failed push")
        assert ws not in state.mirror
        assert await origin.services.outbox.pending_count() == 1

        state.failing = False
        await apoll(lambda: _mirrored(origin, ws, True), timeout_s=15, what="the retried push")


async def _tried(origin: Origin) -> bool | None:
    return True if origin.edge.mirror_puts or len(origin.edge.auth_headers) > 0 else None


async def test_with_failover_on_the_claim_is_made_in_the_edge_ledger(db_kind: str, tmp_path: Path) -> None:
    async with running_origin(db_kind, tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        resp = await origin.send(ws, key=key)

        assert resp.status_code == 201, resp.text
        assert resp.json()["ledger"] == "edge"
        record = origin.edge.ledger[(ws, key)]
        assert record["endpoint"] == "origin"
        assert record["state"] == "completed"
        assert record["message"]["id"] == resp.json()["id"]


async def test_a_key_the_edge_already_sent_is_replayed_not_resent(tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin("sqlite", tmp_path, edge_state=state) as origin:
        ws, key = await _enabled(origin), new_key()
        first = await origin.send(ws, key=key, content="edge sent this")
        edge_body = {**first.json(), "endpoint": "edge", "requires_refresh": True}
        state.ledger[(ws, key)].update(endpoint="edge", message=edge_body)

        again = await origin.send(ws, key=key, content="edge sent this")

        assert again.status_code == 200
        assert again.json()["endpoint"] == "edge"
        assert again.json()["requires_refresh"] is True


async def test_edge_unreachable_degrades_to_the_local_ledger_and_says_so(db_kind: str, tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin(db_kind, tmp_path, edge_state=state) as origin:
        ws = await _enabled(origin)
        state.failing = True

        resp = await origin.send(ws, content="while degraded")

        assert resp.status_code == 201, resp.text
        assert resp.json()["ledger"] == "local"
        assert len(await origin.sim_received("while degraded")) == 1
        health = (await origin.http.get("/v1/health")).json()
        assert health["status"] == "degraded"
        assert health["ledger"] == "local"
        status = (await origin.http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=origin.auth(ws))).json()
        assert status["degraded"] is True
        assert status["ledger"] == "local"
        metrics = (
            await origin.http.get("/metrics", headers={"Authorization": f"Bearer {origin.service_token()}"})
        ).text
        assert "smsfailover_origin_degraded_ledger_claims_total 1.0" in metrics
        assert "smsfailover_origin_ledger_degraded 1.0" in metrics
        assert await origin.services.degraded_claims.count() == 1


async def test_degraded_keys_are_reconciled_when_the_edge_is_back(db_kind: str, tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin(db_kind, tmp_path, edge_state=state) as origin:
        ws, key = await _enabled(origin), new_key()
        state.failing = True
        resp = await origin.send(ws, key=key)
        assert resp.json()["ledger"] == "local"

        state.failing = False
        await apoll(lambda: _reconciled(state, key), timeout_s=15, what="the reconcile call")

        [record] = [r for r in state.reconciled if r["key"] == key]
        assert record["state"] == "completed"
        assert record["endpoint"] == "origin"
        assert record["message"]["id"] == resp.json()["id"]
        await apoll(lambda: _queue_empty(origin), what="the queue to drain")
        assert (await origin.http.get("/v1/health")).json()["status"] == "ok"
        after = await origin.send(ws)
        assert after.json()["ledger"] == "edge"


async def _reconciled(state: FakeEdgeState, key: str) -> bool | None:
    return True if any(r["key"] == key for r in state.reconciled) else None


async def _queue_empty(origin: Origin) -> bool | None:
    return True if await origin.services.degraded_claims.count() == 0 else None


async def test_a_double_send_found_by_reconcile_is_counted(tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin("sqlite", tmp_path, edge_state=state) as origin:
        ws, key = await _enabled(origin), new_key()
        state.failing = True
        await origin.send(ws, key=key)
        # meanwhile the edge sent the same key itself (the client gave up on the origin and failed over)
        state.ledger[(ws, key)] = {
            "workspace_id": ws,
            "key": key,
            "state": "completed",
            "endpoint": "edge",
            "fingerprint": "f",
        }
        state.failing = False
        await apoll(lambda: _reconciled(state, key), timeout_s=15, what="the reconcile call")

        metrics = await apoll(lambda: _metric_line(origin, "smsfailover_origin_double_sends_total 1.0"))
        assert metrics


async def _metric_line(origin: Origin, line: str) -> bool | None:
    text = (await origin.http.get("/metrics", headers={"Authorization": f"Bearer {origin.service_token()}"})).text
    return True if line in text else None


async def test_an_edge_lost_between_claim_and_completion_keeps_the_outcome_for_reconcile(tmp_path: Path) -> None:
    state = FakeEdgeState()
    async with running_origin("sqlite", tmp_path, edge_state=state) as origin:
        ws, key = await _enabled(origin), new_key()
        state.failing_paths.add("/v1/ledger/complete")

        resp = await origin.send(ws, key=key, content="completed locally")

        assert resp.status_code == 201, resp.text
        assert len(await origin.sim_received("completed locally")) == 1
        local = await origin.services.local_ledger.get(ws, key)
        assert local is not None
        assert local.state == "completed"
        state.failing_paths.clear()
        await apoll(lambda: _reconciled(state, key), timeout_s=15, what="the reconcile call")
        [record] = [r for r in state.reconciled if r["key"] == key]
        assert record["state"] == "completed"
        again = await origin.send(ws, key=key, content="completed locally")
        assert again.status_code in (200, 409)  # replayed (or still held at the edge): never sent twice
        assert len(await origin.sim_received("completed locally")) == 1
