"""`POST /v1/ledger/batch`: many ledger operations of one origin process in one request (docs/scaling.md).

    {"ops": [{"op": "claim", "record": {...}},
             {"op": "complete", "workspace_id", "key", "message_id", "message", "now"?},
             {"op": "release", "workspace_id", "key", "message_id", "now"?}]}
    -> {"results": [{"claimed": true}, {"claimed": false, "record": {...}}, {}, {"status": 422, "error": {...}}]}

Each operation is the same statement its single route runs (core's claim, fenced complete and release); a claim is
followed by a read of the key's record, answered only when the claim was not taken (the caller has its own record
otherwise). A completion or release answers `{}`: fenced, it changed this attempt's claim or nothing, and the
caller reads the record if it needs it. The operations of one shard run as one D1 `batch()`: one round trip and one
transaction, in the order given. Pyodide makes every Python step here several times dearer than under CPython,
so the answers carry no more than the caller uses (docs/edge-host.md). An operation that does not validate is
answered alone (422) and the others still run; a shard that fails answers 503 `ledger_unavailable` for its
operations only (nothing of its batch applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.log import log_event
from smsfailover.core.sql import Statement, claim_call, complete_call, get_call, record_from_row, release_call
from smsfailover.edge_worker.ledger_json import require_claim, require_object, require_str, time_or_now, ws_key
from smsfailover.edge_worker.shards import Shards

MAX_OPS = 256
Result = dict[str, object]


@dataclass(frozen=True, slots=True)
class LedgerOp:
    kind: str  # claim | complete | release
    workspace_id: str
    key: str
    statement: Statement


def parse_op(raw: object, clock: Clock, where: str) -> LedgerOp:
    op = require_object(raw, where)
    kind = op.get("op")
    if kind == "claim":
        record = require_claim(op.get("record"), f"{where}.record")
        return LedgerOp("claim", record.workspace_id, record.key, claim_call(record))
    if kind not in ("complete", "release"):
        raise ApiError(422, "invalid_request", "op must be claim, complete or release.", field=f"{where}.op")
    workspace_id, key = ws_key(require_str(op, "workspace_id"), require_str(op, "key"))
    message_id = require_str(op, "message_id")
    now = time_or_now(op, clock)
    if kind == "complete":
        message = dict(require_object(op.get("message"), f"{where}.message"))
        return LedgerOp("complete", workspace_id, key, complete_call(workspace_id, key, message, now, message_id))
    return LedgerOp("release", workspace_id, key, release_call(workspace_id, key, now, message_id))


async def run_batch(shards: Shards, ops: Sequence[object], clock: Clock) -> list[Result]:
    results: list[Result | None] = [None] * len(ops)
    by_shard: dict[int, list[tuple[int, LedgerOp]]] = {}
    for index, raw in enumerate(ops):
        try:
            op = parse_op(raw, clock, f"ops[{index}]")
        except ApiError as exc:
            results[index] = _error(exc)
            continue
        by_shard.setdefault(shards.index(op.workspace_id, op.key), []).append((index, op))
    now_ms = round(clock.time() * 1000)
    await asyncio.gather(*(_run_shard(shards, shard, items, results, now_ms) for shard, items in by_shard.items()))
    return [result if result is not None else _error(_unavailable()) for result in results]


async def _run_shard(
    shards: Shards, shard: int, items: list[tuple[int, LedgerOp]], results: list[Result | None], now_ms: int
) -> None:
    statements: list[Statement] = []
    for _index, op in items:
        statements.append(op.statement)
        if op.kind == "claim":
            statements.append(get_call(op.workspace_id, op.key))
    try:
        rows = await shards.batch(shard, statements, now_ms)
    except Exception as exc:
        log_event("edge.ledger_batch_failed", shard=shards.names[shard], ops=len(items), error=type(exc).__name__)
        for index, _op in items:
            results[index] = _error(_unavailable())
        return
    answers = iter(rows)
    for index, op in items:
        changed = next(answers)
        if op.kind != "claim":
            results[index] = {}
            continue
        held = next(answers)
        if len(changed) == 1:
            results[index] = {"claimed": True}
        else:
            results[index] = {"claimed": False, "record": record_from_row(held[0]).to_json() if held else None}


def _unavailable() -> ApiError:
    return ApiError(503, "ledger_unavailable", "This ledger shard did not answer; nothing of its batch was applied.")


def _error(exc: ApiError) -> Result:
    envelope: Mapping[str, object] = exc.envelope()
    return {"status": exc.status, "error": envelope["error"]}
