"""The edge's ledger as the origin reaches it: the service ledger routes, one call each, fenced by message id.

Every failure is EdgeUnavailable with its kind (edge_client.py); what a kind means is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.express_shim.edge_client import ERROR, EdgeClient, EdgeUnavailable


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


class EdgeLedger:
    def __init__(self, edge: EdgeClient) -> None:
        self._edge = edge

    async def claim(self, record: LedgerRecord) -> tuple[bool, LedgerRecord]:
        """(True, our claim) if the edge took it; (False, the record holding the key there) if not."""
        answer = await self._edge.ledger_claim(record.to_json())
        held = answer.get("record")
        if not isinstance(held, dict):
            raise EdgeUnavailable("the edge answered a claim without the record", ERROR)
        return answer.get("claimed") is True, record_from_json(held)

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        data = await self._edge.ledger_get(workspace_id, key)
        return None if data is None else record_from_json(data)

    async def complete(self, claim: LedgerRecord, message: dict[str, object], now: float) -> None:
        await self._edge.ledger_complete(claim.workspace_id, claim.key, message, now, message_id=claim.message_id)

    async def release(self, workspace_id: str, key: str, message_id: str, now: float) -> None:
        await self._edge.ledger_release(workspace_id, key, now, message_id=message_id)

    async def reconcile(self, records: list[LedgerRecord]) -> tuple[int, list[tuple[str, str]]]:
        """(merged, double sends as (workspace, key)) for the origin's records (DESIGN.md rule 6)."""
        answer = await self._edge.ledger_reconcile([r.to_json() for r in records])
        found = answer.get("duplicates") or []
        duplicates = [(str(d.get("workspace_id")), str(d.get("key"))) for d in found if isinstance(d, dict)]
        return int(answer.get("merged") or 0), duplicates

    async def ping(self) -> None:
        await self._edge.ledger_ping()
