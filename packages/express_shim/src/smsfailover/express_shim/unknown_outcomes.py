"""Unknown outcomes resolve themselves at the origin (issue 15; CONTRACT §1.8, DESIGN.md "Unknown outcomes").

Each round (a periodic task) takes the claims whose lease has passed, and the sends completed as unknown (the
provider did not confirm them), oldest first, bounded: the origin's own, and the edge's as the sync brought them (an
edge that died mid-send, or whose provider call timed out), so both endpoints end with the provider's record:

    no call-began mark    failed, reason not_sent: final for the key (the call can no longer begin), once the
                          ledger confirms it (ledger.confirm_not_sent: the edge is asked while it may accept
                          sends; another attempt's record there takes the claim's place; no answer: later)
    a mark                the provider's record decides: a callback to the message's own URL (resolve_by_callback),
                          or a lookup in the provider's Messages list once the lease has passed:
                            one match     the message takes its status and sid
                            none          stays unknown, "not found at the provider" and when; looked for again
                                          every LOOKUP_EVERY_S; a second "none" NOT_FOUND_FINAL_S or more after
                                          the lease settles it failed, not_at_provider (the provider's record says
                                          the call never arrived); left after LOOKUP_FOR_S if lookups keep failing
                            several       stays unknown, "ambiguous" (a wrong match would be worse than none)
                            lookup failed stays unknown, tried again next round

Each resolution is the claim completed with the message as now known (fenced by its message id, through the
workspace's ledger, so the edge ledger hears it too) and the message row updated. What was checked is kept in
`unknown_checks`, for `GET /v1/workspaces/{ws}/unknowns`, the CLI and the settings page. An operator may mark an
unknown failed (the caller may then send again under a new key): logged, and kept here with who did it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import IdempotencyLedger, LedgerRecord, LedgerState, NotSent, ledger_body
from smsfailover.core.log import log_event
from smsfailover.core.messages_api import settle_not_sent, settle_open_claim
from smsfailover.core.provider import TwilioProvider
from smsfailover.core.provider_lookup import Ambiguous, Found, LookupFailed, LookupResult, NotFound
from smsfailover.core.sql import SqlMessageStore, record_from_row
from smsfailover.express_shim.storage.base import Database

CHECKS_TABLE = """
CREATE TABLE IF NOT EXISTS unknown_checks (
    message_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    checks INTEGER NOT NULL,
    checked_at INTEGER NOT NULL,
    resolved_by TEXT
);
CREATE INDEX IF NOT EXISTS unknown_checks_ws ON unknown_checks (workspace_id, checked_at);
CREATE INDEX IF NOT EXISTS messages_unknown_created ON messages (created_at) WHERE status = 'unknown'
"""

SETTLE_MARGIN_S = 2.0  # past the lease, for clock skew between origin processes (the mark's refusal is per clock)
LOOKUP_EVERY_S = 10.0
LOOKUP_FOR_S = 300.0  # after the lease: a provider that has not listed the message by then will not
NOT_FOUND_FINAL_S = 10.0  # after the lease: a second lookup that finds nothing settles the key failed (never arrived)
NOT_AT_PROVIDER_ERROR = {
    "code": "not_at_provider",
    "message": "The provider call began, but the provider has no record of the message: it did not go out, and it "
    "will not be sent under this key. Send it again under a new key if it is still wanted.",
}
ROUND_LIMIT = 50  # claims per round; the rest wait for the next
MARKED_FAILED_ERROR = {
    "code": "marked_failed",
    "message": "An operator marked this unknown outcome failed; it may be sent again under a new key.",
}

LedgerFor = Callable[[str], Awaitable[IdempotencyLedger]]

_OPEN_CLAIMS = """
SELECT * FROM idempotency_ledger
WHERE state = 'claimed' AND lease_expires_at < ? AND created_at > ?
  AND (call_began_at IS NULL OR lease_expires_at > ?)
ORDER BY lease_expires_at LIMIT ?
"""
# Sends whose provider did not confirm them (a timeout after the request went out): completed as unknown.
_UNCONFIRMED = """
SELECT l.* FROM messages m JOIN idempotency_ledger l
  ON l.workspace_id = m.workspace_id AND l.idempotency_key = m.idempotency_key AND l.message_id = m.id
WHERE m.status = 'unknown' AND m.created_at < ? AND m.created_at > ?
  AND l.state = 'completed'
ORDER BY m.created_at LIMIT ?
"""
# Another unknown send of the same text to the same number around the same time: a provider record that matches one
# matches both, so neither takes it (a wrong sid would be worse than an unknown).
_OPEN_TWINS = """
SELECT id FROM messages
WHERE to_number = ? AND content = ? AND status = 'unknown' AND id <> ?
  AND created_at >= ? AND created_at <= ?
LIMIT 1
"""
_AMEND = """
UPDATE idempotency_ledger SET message = ?, updated_at = ?
WHERE workspace_id = ? AND idempotency_key = ? AND message_id = ? AND state = 'completed'
"""
_UPSERT_CHECK = """
INSERT INTO unknown_checks (message_id, workspace_id, idempotency_key, result, detail, checks, checked_at, resolved_by)
VALUES (?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (message_id) DO UPDATE SET result = excluded.result, detail = excluded.detail,
    checks = unknown_checks.checks + 1, checked_at = excluded.checked_at, resolved_by = excluded.resolved_by
"""


@dataclass(frozen=True, slots=True)
class RoundResult:
    not_sent: int = 0
    found: int = 0
    still_unknown: int = 0


class UnknownOutcomes:
    def __init__(
        self,
        db: Database,
        messages: SqlMessageStore,
        ledger_for: LedgerFor,
        provider: TwilioProvider,
        clock: Clock,
        *,
        lease_s: float,
        retention_s: float,
    ) -> None:
        self._db = db
        self._messages = messages
        self._ledger_for = ledger_for
        self._provider = provider
        self._clock = clock
        self._lease_s = lease_s
        self._retention_s = retention_s

    # ---- the periodic round -------------------------------------------------------------------------------------

    async def run_once(self) -> RoundResult:
        now = self._clock.time()
        # a claim whose call may have begun is looked up for LOOKUP_FOR_S, then left (it would crowd the round out)
        rows = await self._db.fetch(
            _OPEN_CLAIMS,
            (_ms(now - SETTLE_MARGIN_S), _ms(now - self._retention_s), _ms(now - LOOKUP_FOR_S - 60), ROUND_LIMIT),
        )
        unconfirmed = await self._db.fetch(
            _UNCONFIRMED,
            (_ms(now - self._lease_s - SETTLE_MARGIN_S), _ms(now - LOOKUP_FOR_S - self._lease_s), ROUND_LIMIT),
        )
        counts = {"not_sent": 0, "found": 0, "still_unknown": 0}
        for row in [*rows, *unconfirmed]:
            counts[await self._settle_one(record_from_row(row), now)] += 1
        if rows:
            log_event("unknowns.round", **counts)
        return RoundResult(**counts)

    async def _settle_one(self, record: LedgerRecord, now: float) -> str:
        """One claim; a failure is logged and the claim waits for the next round (the others still go now)."""
        try:
            return await self._settle(record, now)
        except Exception as exc:
            log_event(
                "unknowns.settle_failed",
                level=logging.ERROR,
                workspace_id=record.workspace_id,
                error=type(exc).__name__,
            )
            return "still_unknown"

    async def _settle(self, record: LedgerRecord, now: float) -> str:
        ledger = await self._ledger_for(record.workspace_id)
        if ledger.never_began(record):
            return await self._settle_never_began(ledger, record, now)
        if not await self._lookup_due(record, now):
            return "still_unknown"
        result = await self._look_up(record)
        if result is None:
            return "still_unknown"
        if isinstance(result.outcome, Found):
            await self._resolve(ledger, record, result.outcome.sid, result.outcome.status, now)
            await self._note(record, "found", result.describe(), now)
            return "found"
        kind = _check_result(result)
        if kind == "not_found" and await self._never_arrived(record, result.checked_at):
            await self._close(ledger, record, {"status": "failed", "error": dict(NOT_AT_PROVIDER_ERROR)}, now)
            await self._note(record, "not_at_provider", result.describe(), result.checked_at)
            log_event("unknowns.not_at_provider", workspace_id=record.workspace_id)
            return "not_sent"
        await self._note(record, kind, result.describe(), result.checked_at)
        log_event("unknowns.checked", level=logging.INFO, workspace_id=record.workspace_id, result=kind)
        return "still_unknown"

    async def _never_arrived(self, record: LedgerRecord, checked_at: float) -> bool:
        """The provider's list has not shown the message in two lookups, the later one NOT_FOUND_FINAL_S after the
        lease: a provider lists a message it accepted within seconds, so its record says the call never arrived."""
        if checked_at < max(record.lease_expires_at, record.updated_at) + NOT_FOUND_FINAL_S:
            return False
        rows = await self._db.fetch("SELECT result FROM unknown_checks WHERE message_id = ?", (record.message_id,))
        return bool(rows) and rows[0]["result"] == "not_found"

    async def _settle_never_began(self, ledger: IdempotencyLedger, record: LedgerRecord, now: float) -> str:
        """not_sent once the ledger confirms it (the edge is asked while it may accept sends for the workspace:
        truth after a crash); another attempt's record found there has taken the claim's place; no answer: later."""
        outcome = await ledger.confirm_not_sent(record)
        if isinstance(outcome, NotSent):
            await settle_not_sent(ledger, self._messages, record, now)
            await self._note(record, "not_sent", "the provider call never began", now)
            log_event("unknowns.not_sent", workspace_id=record.workspace_id)
            return "not_sent"
        if outcome.record.message_id == record.message_id:
            return "still_unknown"  # the edge ledger could not be asked: the key stays unknown until it can
        log_event("unknowns.taken_by_other_attempt", workspace_id=record.workspace_id, by=outcome.record.endpoint)
        return "found"

    async def _lookup_due(self, record: LedgerRecord, now: float) -> bool:
        if now > max(record.lease_expires_at, record.updated_at) + LOOKUP_FOR_S:
            return False
        rows = await self._db.fetch("SELECT checked_at FROM unknown_checks WHERE message_id = ?", (record.message_id,))
        return not rows or now * 1000 - float(str(rows[0]["checked_at"])) >= LOOKUP_EVERY_S * 1000

    async def _look_up(self, record: LedgerRecord) -> LookupResult | None:
        message = await self._messages.get(record.workspace_id, record.message_id)
        if message is None:  # no row to say what was sent: nothing to match on
            return None
        began = record.call_began_at if record.call_began_at and record.call_began_at > 0 else record.created_at
        twins = await self._db.fetch(
            _OPEN_TWINS,
            (
                str(message["to"]),
                message.get("content"),
                record.message_id,
                _ms(record.created_at - self._lease_s),
                _ms(record.lease_expires_at + self._lease_s),
            ),
        )
        if twins:  # another unknown send of the same text to the same number: one provider record fits both
            return LookupResult(Ambiguous(()), self._clock.time())
        known = await self._db.fetch(
            "SELECT provider_message_id FROM messages WHERE to_number = ? AND provider_message_id IS NOT NULL "
            "AND created_at >= ? AND created_at <= ?",
            (str(message["to"]), _ms(record.created_at - 3600), _ms(record.lease_expires_at + 3600)),
        )
        return await self._provider.find_unknown(
            to=str(message["to"]),
            body=str(message.get("content") or ""),
            window=(began, record.lease_expires_at),
            exclude_sids={str(r["provider_message_id"]) for r in known},
        )

    async def _resolve(
        self, ledger: IdempotencyLedger, record: LedgerRecord, sid: str, status: str | None, now: float
    ) -> None:
        fields: dict[str, object] = {"status": status or "queued", "provider_message_id": sid, "error": None}
        await self._close(ledger, record, fields, now)
        log_event("unknowns.resolved", workspace_id=record.workspace_id, status=str(fields["status"]))

    async def _close(
        self, ledger: IdempotencyLedger, record: LedgerRecord, fields: dict[str, object], now: float
    ) -> dict[str, object]:
        """settle_open_claim; a send completed as unknown also has its record's body amended (the ledger completes
        only claims), so its replays say what happened."""
        body = await settle_open_claim(ledger, self._messages, record, fields, now)
        if record.state is LedgerState.COMPLETED:
            amended = (json.dumps(ledger_body(body)), _ms(now), record.workspace_id, record.key, record.message_id)
            await self._db.execute(_AMEND, amended)
        return body

    async def _note(self, record: LedgerRecord, result: str, detail: str, at: float, by: str | None = None) -> None:
        await self._db.execute(
            _UPSERT_CHECK, (record.message_id, record.workspace_id, record.key, result, detail, _ms(at), by)
        )

    # ---- callbacks and operators --------------------------------------------------------------------------------

    async def resolve_by_callback(self, message_id: str, sid: str, status: str) -> bool:
        """A status callback to a message's own URL: an open claim of ours with that id takes the callback's sid
        and status (the callback is the provider's record). False when there is no such open claim."""
        owner = await self._db.fetch("SELECT workspace_id FROM messages WHERE id = ?", (message_id,))
        message = await self._messages.get(str(owner[0]["workspace_id"]), message_id) if owner else None
        if message is None or message.get("provider_message_id"):
            return False
        record = await self._unresolved(str(message["workspace_id"]), str(message["idempotency_key"]), message_id)
        if record is None or (record.state is LedgerState.CLAIMED and not record.is_expired(self._clock.time())):
            return False  # a send still in flight records its own answer
        ledger = await self._ledger_for(record.workspace_id)
        await self._resolve(ledger, record, sid, status, self._clock.time())
        await self._note(record, "found", f"resolved by the provider's status callback ({status})", self._clock.time())
        return True

    async def mark_failed(self, workspace_id: str, message_id: str, operator: str) -> dict[str, object]:
        """An operator's decision for an unknown: failed, so the caller may send again under a new key."""
        message = await self._messages.get(workspace_id, message_id)
        if message is None or message.get("status") != "unknown":
            raise _no_unknown(message_id)
        record = await self._unresolved(workspace_id, str(message["idempotency_key"]), message_id)
        now = self._clock.time()
        if record is None or (record.state is LedgerState.CLAIMED and not record.is_expired(now)):
            raise _no_unknown(message_id)
        fields: dict[str, object] = {"status": "failed", "error": dict(MARKED_FAILED_ERROR)}
        body = await self._close(await self._ledger_for(workspace_id), record, fields, now)
        await self._note(record, "marked_failed", "an operator marked it failed", now, by=operator)
        log_event("unknowns.marked_failed", level=logging.WARNING, workspace_id=workspace_id, operator=operator)
        return body

    async def _unresolved(self, workspace_id: str, key: str, message_id: str) -> LedgerRecord | None:
        """The origin's record of this attempt while its outcome is open: claimed, or completed as unknown."""
        record = await (await self._ledger_for(workspace_id)).store.get(workspace_id, key)
        if record is None or record.message_id != message_id or record.state is LedgerState.RELEASED:
            return None
        if record.state is LedgerState.COMPLETED and (record.message or {}).get("status") != "unknown":
            return None
        return record

    # ---- what is unknown now ------------------------------------------------------------------------------------

    async def listing(self, workspace_id: str, *, limit: int = 100) -> list[dict[str, object]]:
        """The workspace's messages still unknown, newest first, with what was checked (bounded)."""
        rows = await self._db.fetch(
            "SELECT m.id, m.idempotency_key, m.endpoint, m.to_number, m.created_at, c.result, c.detail, c.checks, "
            "c.checked_at, l.state, l.lease_expires_at FROM messages m "
            "LEFT JOIN unknown_checks c ON c.message_id = m.id "
            "LEFT JOIN idempotency_ledger l ON l.workspace_id = m.workspace_id "
            "AND l.idempotency_key = m.idempotency_key AND l.message_id = m.id "
            "WHERE m.workspace_id = ? AND m.status = 'unknown' ORDER BY m.created_at DESC LIMIT ?",
            (workspace_id, limit),
        )
        return [_listed(row, self._clock.time()) for row in rows]


def _listed(row: dict[str, object], now: float) -> dict[str, object]:
    created = float(str(row["created_at"])) / 1000
    checked = row.get("checked_at")
    lease_end = row.get("lease_expires_at")
    in_flight = row.get("state") == "claimed" and lease_end is not None and now * 1000 < float(str(lease_end))
    return {
        "id": row["id"],
        "idempotency_key": row["idempotency_key"],
        "endpoint": row["endpoint"],
        "to": row["to_number"],
        "created_at": rfc3339(created),
        "resolution": str(row.get("result") or ("in_flight" if in_flight else "pending")),
        "detail": row.get("detail"),
        "checks": int(str(row.get("checks") or 0)),
        "checked_at": rfc3339(float(str(checked)) / 1000) if checked is not None else None,
    }


def _check_result(result: LookupResult) -> str:
    outcome = result.outcome
    if isinstance(outcome, NotFound):
        return "not_found"
    if isinstance(outcome, Ambiguous):
        return "ambiguous"
    assert isinstance(outcome, LookupFailed)
    return "lookup_failed"


def _no_unknown(message_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No unknown outcome {message_id} whose lease has passed in this workspace.")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
