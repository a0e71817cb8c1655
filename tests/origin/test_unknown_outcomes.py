"""The origin resolves unknown outcomes (issue 15): a claim that never began its provider call is failed/not_sent, one
whose call began takes the provider's record (its own status callback URL, or a lookup in the provider's Messages
list), and an operator may mark one failed. The real origin app and the real simulator (tests/origin/harness.py),
with a short lease; the resolution round is driven by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import Claimed, LedgerRecord, LedgerState
from smsfailover.core.message import encoding_and_segments, payload_fingerprint
from smsfailover.express_shim.simulator.signature import twilio_signature

from tests.origin.harness import VALID_TO, Origin, apoll, new_key, new_workspace, running_origin

LEASE_S = 0.3
CALLBACK = "/v1/provider/twilio/status"


@pytest.fixture
async def origin(tmp_path: Path) -> Any:
    async with running_origin("sqlite", tmp_path, lease_s=LEASE_S, background=False) as running:
        yield running


async def _abandoned_send(origin: Origin, ws: str, content: str, *, began: bool) -> LedgerRecord:
    """What a send leaves when its process dies after the claim (and, if `began`, after the call-began mark)."""
    services = origin.services
    ledger = await services.ledgers.ledger_for(ws)
    key = new_key()
    record = ledger.new_claim(ws, key, payload_fingerprint(VALID_TO, content, []), "origin")
    assert await services.local_ledger.try_claim(record)
    encoding, segments = encoding_and_segments(content, has_media=False)
    created = rfc3339(record.created_at)
    await services.messages.insert(
        {
            "id": record.message_id,
            "workspace_id": ws,
            "to": VALID_TO,
            "content": content,
            "contact_id": None,
            "media_urls": [],
            "status": "unknown",
            "endpoint": "origin",
            "ledger": "local",
            "idempotency_key": key,
            "provider_message_id": None,
            "segments": segments,
            "encoding": encoding,
            "latency_ms": None,
            "error": None,
            "created_at": created,
            "updated_at": created,
            "requires_refresh": False,
        }
    )
    if began:
        assert await ledger.mark_call_began(record)
    return record


async def _settled(origin: Origin, expected: str) -> int:
    """Run resolution rounds until one reports `expected` (the claims' lease and margin must pass first)."""

    async def round_() -> int | None:
        result = await origin.services.unknowns.run_once()
        count = getattr(result, expected)
        return count if count else None

    return await apoll(round_, timeout_s=10, what=f"a round that reports {expected}")


async def _by_key(origin: Origin, ws: str, key: str) -> dict[str, Any]:
    response = await origin.http.get("/v1/messages", params={"idempotency_key": key}, headers=origin.auth(ws))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_claim_that_never_began_its_call_is_failed_not_sent(origin: Origin) -> None:
    ws, content = new_workspace(), "never sent " + new_key()
    record = await _abandoned_send(origin, ws, content, began=False)
    assert await _settled(origin, "not_sent") == 1
    message = await _by_key(origin, ws, record.key)
    assert (message["status"], message["error"]["code"]) == ("failed", "not_sent")
    stored = await origin.services.local_ledger.get(ws, record.key)
    assert stored is not None
    assert stored.state is LedgerState.COMPLETED
    assert await origin.sim_received(content) == []
    retry = await origin.send(ws, key=record.key, content=content)  # final for the key: never sent now
    assert (retry.status_code, retry.json()["status"]) == (200, "failed")
    assert await origin.sim_received(content) == []


async def test_a_call_that_reached_the_provider_is_found_by_a_lookup(origin: Origin) -> None:
    ws, content = new_workspace(), "lost answer " + new_key()
    record = await _abandoned_send(origin, ws, content, began=True)
    sid = await origin.provider_has(content)
    assert await _settled(origin, "found") == 1
    message = await _by_key(origin, ws, record.key)
    assert message["provider_message_id"] == sid
    assert message["status"] in {"queued", "sent", "delivered"}
    assert len(await origin.sim_received(content)) == 1


async def test_two_unknowns_of_the_same_text_never_take_the_one_provider_record(origin: Origin) -> None:
    """One of them reached the provider, which lists one message: a match fits both, so neither takes its sid."""
    ws, content = new_workspace(), "twice the same text " + new_key()
    first = await _abandoned_send(origin, ws, content, began=True)
    second = await _abandoned_send(origin, ws, content, began=True)
    await origin.provider_has(content)

    async def both_checked() -> bool | None:
        await origin.services.unknowns.run_once()
        listing = (await origin.http.get(f"/v1/workspaces/{ws}/unknowns", headers=origin.auth(ws))).json()
        done = [r for r in listing["data"] if r["resolution"] == "ambiguous"]
        return True if len(done) == 2 else None

    await apoll(both_checked, timeout_s=10, what="both lookups' marks")
    for record in (first, second):
        message = await _by_key(origin, ws, record.key)
        assert (message["status"], message["provider_message_id"]) == ("unknown", None)


async def test_a_call_the_provider_never_saw_stays_unknown_and_says_what_was_checked(origin: Origin) -> None:
    ws, content = new_workspace(), "never arrived " + new_key()
    record = await _abandoned_send(origin, ws, content, began=True)

    async def checked() -> dict[str, Any] | None:
        await origin.services.unknowns.run_once()
        listing = (await origin.http.get(f"/v1/workspaces/{ws}/unknowns", headers=origin.auth(ws))).json()
        rows = [r for r in listing["data"] if r["id"] == record.message_id and r["resolution"] == "not_found"]
        return rows[0] if rows else None

    row = await apoll(checked, timeout_s=10, what="the lookup's mark")
    assert "not found at the provider" in row["detail"]
    assert row["checked_at"] is not None
    assert (await _by_key(origin, ws, record.key))["status"] == "unknown"


async def test_a_call_the_provider_never_listed_in_two_lookups_after_the_lease_is_failed(origin: Origin) -> None:
    """The call began (marked) but never reached the provider (its process died first): two lookups that find
    nothing, the later one 10 s or more after the lease, settle it failed / not_at_provider."""
    ws, content = new_workspace(), "died before the wire " + new_key()
    record = await _abandoned_send(origin, ws, content, began=True)
    long_ago = (record.lease_expires_at - 60) * 1000  # as if the lease had ended a minute ago
    await origin.services.db.execute(
        "UPDATE idempotency_ledger SET lease_expires_at = ?, created_at = ?, updated_at = ? WHERE message_id = ?",
        (round(long_ago), round(long_ago - 300), round(long_ago - 300), record.message_id),
    )

    first = await origin.services.unknowns.run_once()
    assert (first.not_sent, first.still_unknown) == (0, 1)  # one lookup alone never settles it
    await origin.services.db.execute(  # the next lookup is due (every 10 s)
        "UPDATE unknown_checks SET checked_at = checked_at - 20000 WHERE message_id = ?", (record.message_id,)
    )
    second = await origin.services.unknowns.run_once()

    assert second.not_sent == 1
    message = await _by_key(origin, ws, record.key)
    assert (message["status"], message["error"]["code"]) == ("failed", "not_at_provider")
    assert await origin.sim_received(content) == []


async def test_the_messages_own_callback_url_resolves_it(origin: Origin) -> None:
    ws, content = new_workspace(), "callback " + new_key()
    record = await _abandoned_send(origin, ws, content, began=True)
    await apoll(lambda: _expired(origin, record), timeout_s=5, what="the lease to pass")
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    url = f"{origin.url}{CALLBACK}?message_id={record.message_id}"
    headers = {
        "X-Twilio-Signature": twilio_signature(url, params, origin.secrets.twilio_auth_token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    answer = await origin.http.post(
        f"{CALLBACK}?message_id={record.message_id}", content=str(httpx2.QueryParams(params)).encode(), headers=headers
    )
    assert answer.status_code == 204
    message = await _by_key(origin, ws, record.key)
    assert (message["status"], message["provider_message_id"]) == ("delivered", params["MessageSid"])


async def _expired(origin: Origin, record: LedgerRecord) -> bool | None:
    return True if origin.services.clock.time() > record.lease_expires_at else None


async def test_an_operator_may_mark_an_unknown_failed_and_nobody_else(origin: Origin) -> None:
    ws, content = new_workspace(), "operator " + new_key()
    record = await _abandoned_send(origin, ws, content, began=True)
    await apoll(lambda: _expired(origin, record), timeout_s=5, what="the lease to pass")
    path = f"/v1/workspaces/{ws}/unknowns/{record.message_id}/mark-failed"
    refused = await origin.http.post(path, headers=origin.auth(ws))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    operator = {"Authorization": f"Bearer {origin.operator_token()}"}
    marked = await origin.http.post(path, headers=operator)
    assert marked.status_code == 200, marked.text
    assert (marked.json()["status"], marked.json()["error"]["code"]) == ("failed", "marked_failed")
    assert (await _by_key(origin, ws, record.key))["status"] == "failed"
    again = await origin.http.post(path, headers=operator)
    assert again.status_code == 404  # no longer unknown
    listing = (await origin.http.get(f"/v1/workspaces/{ws}/unknowns", headers=operator)).json()
    assert listing["data"] == []
    checks = await origin.services.db.fetch(
        "SELECT result FROM unknown_checks WHERE message_id = ?", (record.message_id,)
    )
    assert json.loads(json.dumps(checks)) == [{"result": "marked_failed"}]


async def test_with_failover_on_an_expired_claim_whose_call_began_stays_unknown(tmp_path: Path) -> None:
    """The edge's copy of an origin claim has no call-began mark (only the origin's own ledger holds it): judged from
    that copy, a retry used to be told failed / not_sent for a message that may well have gone out."""
    async with running_origin("sqlite", tmp_path, lease_s=LEASE_S) as origin:
        ws, content = new_workspace(), "began " + new_key()
        await origin.enable_failover(ws)
        ledger = await origin.services.ledgers.ledger_for(ws)
        key = new_key()
        claimed = await ledger.claim(ws, key, payload_fingerprint(VALID_TO, content, []), "origin")
        assert isinstance(claimed, Claimed)
        assert (ws, key) in origin.edge.ledger  # claimed at the edge too, without the mark
        assert await ledger.mark_call_began(claimed.record)
        await apoll(lambda: _expired(origin, claimed.record), timeout_s=5, what="the lease to pass")
        retry = await origin.send(ws, key=key, content=content)
        assert retry.status_code == 200, retry.text
        assert retry.json()["status"] == "unknown"
