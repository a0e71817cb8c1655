"""Rule 5 (revised) and truth after a crash, against a real origin and the fake edge (DESIGN.md, "Ledger authority").

- A request that meets an edge-ledger failure answers 503 at once; only the liveness round, after the failover budget
  without any ledger round trip, sends keys to the local ledger, whatever the failures are (refused, 5xx).
- A key answered 503 is never sent on the local ledger later.
- A claim whose call never began is settled not_sent only once the edge ledger has been asked: another attempt's
  record there is answered instead; while the edge cannot be asked the key stays unknown.
"""

from __future__ import annotations

import time
from pathlib import Path

from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.core.message import payload_fingerprint

from tests.origin.harness import VALID_TO, Origin, apoll, new_key, new_workspace, running_origin

EDGE_SENT_ID = "msg_01JZ0000000000000000000EDG"


async def _enabled(origin: Origin) -> str:
    ws = new_workspace()
    await origin.enable_failover(ws)
    return ws


async def _by_key(origin: Origin, ws: str, key: str) -> dict[str, object]:
    resp = await origin.http.get("/v1/messages", params={"idempotency_key": key}, headers=origin.auth(ws))
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def _crashed_claim(origin: Origin, ws: str, key: str, content: str) -> LedgerRecord:
    """What a kill -9 leaves: the origin's claim committed here, its lease over, no call-began mark, no edge claim."""
    past = time.time() - 120
    claim = LedgerRecord(
        workspace_id=ws,
        key=key,
        fingerprint=payload_fingerprint(VALID_TO, content, []),
        state=LedgerState.CLAIMED,
        endpoint="origin",
        lease_expires_at=past + 30,
        created_at=past,
        updated_at=past,
        message_id="msg_01JZ0000000000000000000ORG",
    )
    assert await origin.services.local_ledger.try_claim(claim)
    return claim


def _edge_sent(ws: str, key: str, content: str) -> dict[str, object]:
    now = time.time() - 100
    message = {"id": EDGE_SENT_ID, "status": "sent", "endpoint": "edge", "idempotency_key": key, "to": VALID_TO}
    return {
        "workspace_id": ws,
        "key": key,
        "fingerprint": payload_fingerprint(VALID_TO, content, []),
        "state": "completed",
        "endpoint": "edge",
        "lease_expires_at": now + 30,
        "created_at": now,
        "updated_at": now,
        "message": {**message, "requires_refresh": True},
        "message_id": EDGE_SENT_ID,
    }


def _edge_message(ws: str, key: str, content: str, status: str, created: float) -> dict[str, object]:
    """An edge send as the sync feed carries it (seq 1)."""
    return {
        "seq": 1,
        "id": EDGE_SENT_ID,
        "workspace_id": ws,
        "idempotency_key": key,
        "to": VALID_TO,
        "content": content,
        "media_urls": [],
        "status": status,
        "endpoint": "edge",
        "ledger": "edge",
        "provider_message_id": "SM" + "e" * 32 if status == "sent" else None,
        "segments": 1,
        "encoding": "GSM-7",
        "created_at": rfc3339(created),
        "updated_at": rfc3339(created),
        "requires_refresh": True,
    }


# -- rule 5: degraded mode only on a sustained outage --------------------------------------------------------------


async def test_a_blip_shorter_than_the_budget_never_leaves_the_edge_ledger(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, ledger_outage_s=3.0) as origin:
        ws = await _enabled(origin)
        await origin.edge_link.cut()  # refused connections, the old detector's "definitely unreachable"
        during = [await origin.send(ws, content=f"during the blip {i}") for i in range(4)]
        await origin.edge_link.connect()
        after = await origin.send(ws, content="after the blip")

        assert [r.status_code for r in during] == [503] * 4
        assert {r.json()["error"]["code"] for r in during} == {"ledger_unavailable"}
        assert (after.status_code, after.json()["ledger"]) == (201, "edge")
        assert origin.services.ledgers.detector.snapshot().since is None  # never degraded
        assert await origin.sim_received("during the blip") == []


async def test_an_edge_answering_5xx_is_an_outage_too_and_recovery_reconciles(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        origin.edge.failing = True  # as Cloudflare answers when a Worker or D1 fails: 503 to everyone
        await origin.wait_for_ledger("local")

        local = await origin.send(ws, key=key, content="sent during a 5xx outage")
        assert (local.status_code, local.json()["ledger"]) == (201, "local")
        assert len(await origin.sim_received("sent during a 5xx outage")) == 1

        origin.edge.failing = False
        await origin.wait_for_ledger("edge")  # only once the local window was pushed
        assert origin.edge.ledger[(ws, key)]["message_id"] == local.json()["id"]
        assert (await origin.send(ws, content="after the outage")).json()["ledger"] == "edge"


async def test_a_key_answered_503_is_never_sent_on_the_local_ledger_later(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        origin.edge.failing = True
        first = await origin.send(ws, key=key, content="answered 503 first")
        assert first.json()["error"]["code"] == "ledger_unavailable"
        await origin.wait_for_ledger("local")

        retry = await origin.send(ws, key=key, content="answered 503 first")

        assert retry.status_code == 409, retry.text  # it waits for the edge's answer
        assert await origin.sim_received("answered 503 first") == []


async def test_a_retry_after_a_503_claims_at_the_edge_afresh(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key = await _enabled(origin), new_key()
        origin.edge.failing = True
        assert (await origin.send(ws, key=key, content="retried")).status_code == 503
        origin.edge.failing = False

        retry = await origin.send(ws, key=key, content="retried")

        assert (retry.status_code, retry.json()["ledger"]) == (201, "edge"), retry.text
        assert origin.edge.ledger[(ws, key)]["message_id"] == retry.json()["id"]
        assert len(await origin.sim_received("retried")) == 1


# -- truth after a crash -------------------------------------------------------------------------------------------


async def test_after_a_crash_the_edges_send_is_answered_not_failed(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key, content = await _enabled(origin), new_key(), "the edge sent it after the crash"
        await _crashed_claim(origin, ws, key, content)
        origin.edge.ledger[(ws, key)] = _edge_sent(ws, key, content)

        answer = await _by_key(origin, ws, key)

        assert (answer["status"], answer["endpoint"], answer["id"]) == ("sent", "edge", EDGE_SENT_ID)
        kept = await origin.services.local_ledger.get(ws, key)
        assert kept is not None
        assert kept.message_id == EDGE_SENT_ID


async def test_the_resolution_round_adopts_the_edges_send_for_a_crashed_claim(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key, content = await _enabled(origin), new_key(), "found by the round"
        await _crashed_claim(origin, ws, key, content)
        origin.edge.ledger[(ws, key)] = _edge_sent(ws, key, content)

        result = await origin.services.unknowns.run_once()

        assert (result.not_sent, result.found) == (0, 1)
        assert (await _by_key(origin, ws, key))["status"] == "sent"


async def test_not_sent_is_settled_at_the_edge_first(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key, content = await _enabled(origin), new_key(), "never began"
        claim = await _crashed_claim(origin, ws, key, content)

        answer = await _by_key(origin, ws, key)

        assert answer["status"] == "failed"
        assert answer["error"] == {"code": "not_sent", "message": answer["error"]["message"]}  # type: ignore[index]

        async def settled_at_edge() -> bool | None:
            record = origin.edge.ledger.get((ws, key))
            return True if record is not None and record["state"] == "completed" else None

        await apoll(settled_at_edge, what="the not_sent completion at the edge")
        record = origin.edge.ledger[(ws, key)]
        assert record["message_id"] == claim.message_id
        assert record["message"]["status"] == "failed"


async def test_while_the_edge_cannot_be_asked_a_crashed_claim_stays_unknown(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, ledger_outage_s=60.0) as origin:
        ws, key, content = await _enabled(origin), new_key(), "cannot ask"
        await _crashed_claim(origin, ws, key, content)
        origin.edge.failing = True

        answer = await _by_key(origin, ws, key)
        result = await origin.services.unknowns.run_once()

        assert answer["status"] == "unknown"
        assert result.not_sent == 0
        kept = await origin.services.local_ledger.get(ws, key)
        assert kept is not None
        assert kept.state is LedgerState.CLAIMED


async def test_the_sync_adopts_an_edge_send_beside_a_claim_that_never_began(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path) as origin:
        ws, key, content = await _enabled(origin), new_key(), "synced over a crashed claim"
        await _crashed_claim(origin, ws, key, content)
        origin.edge.edge_messages.append(_edge_message(ws, key, content, "sent", time.time() - 100))

        async def adopted() -> bool | None:
            kept = await origin.services.local_ledger.get(ws, key)
            return True if kept is not None and kept.message_id == EDGE_SENT_ID else None

        await apoll(adopted, what="the sync to adopt the edge's record")
        assert (await _by_key(origin, ws, key))["status"] == "sent"


# -- the edge's unknowns ---------------------------------------------------------------------------------------------


async def test_an_edge_send_left_in_flight_is_resolved_by_the_provider_record_at_both_endpoints(
    tmp_path: Path,
) -> None:
    """The edge died mid-send: the sync brought its row (unknown) and its claim; the provider has the message. The
    origin's round looks it up after the lease and settles the key here and at the edge."""
    async with running_origin("sqlite", tmp_path, lease_s=0.3) as origin:
        ws, key, content = await _enabled(origin), new_key(), "the edge died mid-send " + new_key()
        created = time.time() - 5
        origin.edge.edge_messages.append(_edge_message(ws, key, content, "unknown", created))
        edge_claim = {**_edge_sent(ws, key, content), "state": "claimed", "message": None}
        origin.edge.ledger[(ws, key)] = {**edge_claim, "lease_expires_at": created + 0.3, "created_at": created}
        sid = await origin.provider_has(content)

        async def found() -> bool | None:
            return True if (await origin.services.unknowns.run_once()).found else None

        await apoll(found, what="a round that finds the edge's send at the provider")
        answer = await _by_key(origin, ws, key)
        assert answer["status"] in {"queued", "sent", "delivered"}
        assert answer["provider_message_id"] == sid

        async def settled_at_edge() -> bool | None:
            return True if origin.edge.ledger[(ws, key)]["state"] == "completed" else None

        await apoll(settled_at_edge, what="the resolution at the edge")
        assert origin.edge.ledger[(ws, key)]["message"]["provider_message_id"] == sid
