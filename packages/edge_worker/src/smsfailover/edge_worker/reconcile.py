"""`POST /v1/ledger/reconcile`: the origin's records of keys this ledger may not have seen (DESIGN.md rules 6, 7).

    {"records": [record, ...]}
    -> {"merged": 2, "duplicates": [{"workspace_id", "key"}, ...], "kept": [record, ...],
        "failed": [{"workspace_id", "key"}, ...]}

Per pushed record, in its key's shard:
- a key new here, or released here by another attempt, takes the record as the origin left it, its call-began mark
  included (`merged`); a stale claim never revives its own attempt's release here;
- this ledger holding the same attempt's open claim takes the origin's outcome, or its mark (`merged`);
- another attempt's record here that was not released stays, answered in `kept` as it stands (the origin adopts
  it: "Truth after a crash"). It is a double send (`duplicates`) only when both attempts may have sent
  (`may_have_sent`): an expired origin claim without a mark never called the provider;
- except an edge claim here that never began (no mark, lease over: no call can begin now) facing a record that may
  have sent: the pushed record replaces it, and the edge's message row is settled `failed`/`not_sent`, so the key
  reads as what happened, never as not sent (`merged`).
A shard that fails answers its unsettled records in `failed` (the origin pushes them again later); the others still
merge. Each shard's records take one D1 batch, and a second for those whose record here had to be read first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from smsfailover.core.ledger import LedgerRecord, LedgerState, ledger_body
from smsfailover.core.log import log_event
from smsfailover.core.messages_api import NOT_SENT_ERROR
from smsfailover.core.sql import Statement, get_call, record_from_row, record_params
from smsfailover.edge_worker.shards import Shards

ROUNDS = 3  # a conditional write that lost a race is decided again from the row it met, this many times at most

_COLUMNS = (
    "workspace_id, idempotency_key, fingerprint, state, endpoint, message_id, "
    "lease_expires_at, created_at, updated_at, message, call_began_at"
)
_TAKE = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[2:])


def _upsert(where: str) -> str:
    """The pushed record, inserted, or written over the row here when `where` holds; RETURNING: it was written."""
    return (
        f"INSERT INTO idempotency_ledger ({_COLUMNS}) VALUES ({', '.join('?' * 11)}) "  # noqa: S608 (constants)
        f"ON CONFLICT (workspace_id, idempotency_key) DO UPDATE SET {_TAKE} WHERE {where} RETURNING idempotency_key"
    )


# A key new here, or released by another attempt (or released by this one, when the origin says it completed).
_INSERT = _upsert(
    "idempotency_ledger.state = 'released' "
    "AND (excluded.state = 'completed' OR idempotency_ledger.message_id <> excluded.message_id)"
)
# An edge claim that never began, named by its message id, the edge's now (ms) after its lease: no call can begin.
_NEVER_BEGAN = (
    "idempotency_ledger.message_id = ? AND idempotency_ledger.state = 'claimed' "
    "AND idempotency_ledger.call_began_at IS NULL AND idempotency_ledger.lease_expires_at <= ?"
)
_REPLACE = _upsert(_NEVER_BEGAN)
# The same attempt's open claim takes the origin's state and body, and keeps a mark it has or takes the pushed one.
_ADVANCE = (
    "UPDATE idempotency_ledger SET state = ?, message = ?, updated_at = ?, call_began_at = COALESCE(call_began_at, ?) "
    "WHERE workspace_id = ? AND idempotency_key = ? AND message_id = ? AND state = 'claimed' RETURNING idempotency_key"
)
# The replaced edge claim's message row, in the same batch and under the same condition: failed, not sent.
_SETTLE_ROW = (
    "UPDATE messages SET status = 'failed', error = ?, updated_at = ?, "  # noqa: S608 (constants)
    "seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages) WHERE workspace_id = ? AND id = ? AND EXISTS "
    f"(SELECT 1 FROM idempotency_ledger WHERE workspace_id = ? AND idempotency_key = ? AND {_NEVER_BEGAN})"
)


@dataclass
class ReconcileAnswer:
    merged: int = 0
    duplicates: list[dict[str, str]] = field(default_factory=list)
    kept: list[dict[str, object]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    routed: int = 0  # records that needed a shard (a released one needs none)

    def to_json(self) -> dict[str, object]:
        return {"merged": self.merged, "duplicates": self.duplicates, "kept": self.kept, "failed": self.failed}


def may_have_sent(record: LedgerRecord, marks_of: str, now: float) -> bool:
    """Whether the record's attempt may have reached the provider. Only the sender's own ledger (`marks_of`) holds
    its marks, so only there does a claim without one, lease over, say the call never began."""
    if record.state is LedgerState.RELEASED:
        return False
    if record.state is LedgerState.COMPLETED:
        # `failed` (not_sent, the provider's own word): nothing went out. An operator's mark on an unknown is a
        # decision, not a fact about the send: it may have gone out.
        message = record.message or {}
        error = message.get("error")
        decided = isinstance(error, Mapping) and error.get("code") == "marked_failed"
        return message.get("status") != "failed" or decided
    return not _never_began(record, marks_of, now)


def _never_began(record: LedgerRecord, marks_of: str, now: float) -> bool:
    return (
        record.state is LedgerState.CLAIMED
        and record.endpoint == marks_of
        and record.call_began_at is None
        and record.is_expired(now)
    )


async def reconcile(shards: Shards, records: Sequence[LedgerRecord], now: float) -> ReconcileAnswer:
    answer = ReconcileAnswer()
    by_shard: dict[int, list[LedgerRecord]] = {}
    for record in records:
        if record.state is LedgerState.RELEASED:
            continue  # nothing was sent; releases travel fenced through /v1/ledger/release
        if record.state is LedgerState.COMPLETED and record.message is None:
            record = replace(record, state=LedgerState.CLAIMED)  # no body to replay: kept as the claim it was
        by_shard.setdefault(shards.index(record.workspace_id, record.key), []).append(record)
        answer.routed += 1
    await asyncio.gather(*(_merge_shard(shards, i, items, now, answer) for i, items in by_shard.items()))
    return answer


async def _merge_shard(
    shards: Shards, index: int, records: list[LedgerRecord], now: float, answer: ReconcileAnswer
) -> None:
    now_ms = _ms(now)
    pending = [(record, [_insert(record)]) for record in records]
    for _ in range(ROUNDS):
        statements = [s for record, writes in pending for s in (*writes, get_call(record.workspace_id, record.key))]
        try:
            rows = iter(await shards.batch(index, statements, now_ms))
        except Exception as exc:
            name, error = shards.names[index], type(exc).__name__
            log_event("edge.reconcile_failed", shard=name, records=len(pending), error=error)
            break
        retry: list[tuple[LedgerRecord, list[Statement]]] = []
        for record, writes in pending:
            written = [next(rows) for _ in writes]
            found = next(rows)
            if written and written[-1]:  # the ledger write (always last) took
                answer.merged += 1
                continue
            held = record_from_row(found[0]) if found else None
            decided = _decide(record, held, now, answer)
            if decided:
                retry.append((record, decided))
        pending = retry
        if not pending:
            return
    answer.failed += [{"workspace_id": r.workspace_id, "key": r.key} for r, _ in pending]


def _decide(record: LedgerRecord, held: LedgerRecord | None, now: float, answer: ReconcileAnswer) -> list[Statement]:
    """The writes the row here calls for (tried in the next round), or none once the record is answered."""
    if held is None or held.state is LedgerState.RELEASED:
        if held is not None and held.message_id == record.message_id and record.state is LedgerState.CLAIMED:
            return []  # this attempt released here (nothing was sent): a stale copy of its claim never revives it
        return [_insert(record)]  # gone or released since the first write: insert again
    if held.message_id == record.message_id:
        open_here = held.state is LedgerState.CLAIMED
        if open_here and (record.state is LedgerState.COMPLETED or _more_marked(record, held)):
            return [_advance(record)]  # the origin's own open claim takes its outcome or its mark
        return []  # known here
    sent_here, sent_there = may_have_sent(held, "edge", now), may_have_sent(record, "origin", now)
    if sent_there and _never_began(held, "edge", now):
        return [_settle_row(held, now), _replace(record, held, now)]
    if sent_here and sent_there:
        answer.duplicates.append({"workspace_id": record.workspace_id, "key": record.key})
    answer.kept.append(held.to_json())
    return []


def _more_marked(record: LedgerRecord, held: LedgerRecord) -> bool:
    return record.call_began_at is not None and held.call_began_at is None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _mark(record: LedgerRecord) -> int | None:
    """The mark as stored: none stays NULL (an origin claim that never began), -1 ("not recorded") stays -1."""
    mark = record.call_began_at
    return None if mark is None else -1 if mark < 0 else _ms(mark)


def _body(record: LedgerRecord) -> str | None:
    return None if record.message is None else json.dumps(ledger_body(record.message))


def _row(record: LedgerRecord) -> list[object]:
    return record_params(record, _mark(record))


def _insert(record: LedgerRecord) -> Statement:
    return _INSERT, _row(record)


def _replace(record: LedgerRecord, held: LedgerRecord, now: float) -> Statement:
    return _REPLACE, [*_row(record), held.message_id, _ms(now)]


def _advance(record: LedgerRecord) -> Statement:
    keys = [record.workspace_id, record.key, record.message_id]
    return _ADVANCE, [record.state.value, _body(record), _ms(record.updated_at), _mark(record), *keys]


def _settle_row(held: LedgerRecord, now: float) -> Statement:
    error = json.dumps(NOT_SENT_ERROR)
    return _SETTLE_ROW, [error, _ms(now), held.workspace_id, held.message_id, held.workspace_id, held.key,
                         held.message_id, _ms(now)]  # fmt: skip
