"""The edge's ledger as the origin reaches it, fenced by message id: claims, completions and releases through the
batch route (batcher.py: concurrent ones share a request), reads and reconcile through their own routes.

Every failure is EdgeUnavailable with its kind (edge_client.py); what a kind means is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.express_shim.edge_client import ERROR, EdgeClient, EdgeUnavailable
from smsfailover.express_shim.ledger.batcher import LedgerBatcher


def record_from_json(data: Mapping[str, Any]) -> LedgerRecord:
    try:
        message = data.get("message")
        return LedgerRecord(
            workspace_id=str(data["workspace_id"]),
            key=str(data["key"]),
            fingerprint=str(data["fingerprint"]),
            state=LedgerState(str(data["state"])),
            endpoint=str(data["endpoint"]),
            lease_expires_at=float(data["lease_expires_at"]),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            message=dict(message) if isinstance(message, dict) else None,
            message_id=str(data.get("message_id") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeUnavailable(f"the edge answered a malformed ledger record ({type(exc).__name__})", ERROR) from exc


@dataclass(frozen=True, slots=True)
class ReconcileAnswer:
    merged: int
    duplicates: list[tuple[str, str]]  # keys two attempts may both have sent: double sends
    failed: list[tuple[str, str]]  # keys whose shard did not answer: nothing merged, pushed again later
    kept: list[LedgerRecord]  # another attempt's record the edge kept in place of a pushed one


def _keys(answer: Mapping[str, Any], name: str) -> list[tuple[str, str]]:
    found = answer.get(name) or []
    return [(str(d.get("workspace_id")), str(d.get("key"))) for d in found if isinstance(d, dict)]


class EdgeLedger:
    def __init__(self, edge: EdgeClient, batcher: LedgerBatcher | None = None) -> None:
        self._edge = edge
        self._batcher = batcher or LedgerBatcher(edge)

    async def claim(self, record: LedgerRecord) -> tuple[bool, LedgerRecord]:
        """(True, our claim) if the edge took it; (False, the record holding the key there) if not."""
        answer = await self._batcher.submit({"op": "claim", "record": record.to_json()})
        if answer.get("claimed") is True:
            return True, record
        held = answer.get("record")
        if not isinstance(held, dict):
            raise EdgeUnavailable("the edge answered a claim without the record", ERROR)
        return False, record_from_json(held)

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        data = await self._edge.ledger_get(workspace_id, key)
        return None if data is None else record_from_json(data)

    async def complete(self, claim: LedgerRecord, message: dict[str, object], now: float) -> None:
        """Lazy: a completion is never on a send's path, so it waits (briefly) to share a claim's request."""
        await self._batcher.submit(
            {
                "op": "complete",
                "workspace_id": claim.workspace_id,
                "key": claim.key,
                "message_id": claim.message_id,
                "message": message,
                "now": now,
            },
            lazy=True,
        )

    async def release(self, workspace_id: str, key: str, message_id: str, now: float) -> None:
        op = {"op": "release", "workspace_id": workspace_id, "key": key, "message_id": message_id, "now": now}
        await self._batcher.submit(op)

    async def reconcile(self, records: list[LedgerRecord]) -> ReconcileAnswer:
        """What the edge made of the origin's records (DESIGN.md rule 6)."""
        answer = await self._edge.ledger_reconcile([r.to_json() for r in records])
        kept = [record_from_json(r) for r in answer.get("kept") or [] if isinstance(r, dict)]
        return ReconcileAnswer(
            int(answer.get("merged") or 0), _keys(answer, "duplicates"), _keys(answer, "failed"), kept
        )

    async def ping(self) -> list[dict[str, Any]]:
        """Every shard's state as the edge reports it (`ok` each); EdgeUnavailable when the edge gives no answer."""
        shards = (await self._edge.ledger_ping()).get("shards")
        return [s for s in shards if isinstance(s, dict)] if isinstance(shards, list) else []
