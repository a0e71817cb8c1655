"""RemoteLedgerStore: core's LedgerStore over the edge's service ledger routes (the one shared ledger).

Any failure to reach the edge surfaces as EdgeUnavailable; the ledger selection decides what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smsfailover.core.ledger import LedgerRecord, LedgerState
from smsfailover.express_shim.edge_client import EdgeClient, EdgeUnavailable


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
        raise EdgeUnavailable(f"the edge answered a malformed ledger record ({type(exc).__name__})") from exc


class RemoteLedgerStore:
    def __init__(self, edge: EdgeClient) -> None:
        self._edge = edge

    async def try_claim(self, record: LedgerRecord) -> bool:
        answer = await self._edge.ledger_claim(record.to_json())
        return answer.get("claimed") is True

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        data = await self._edge.ledger_get(workspace_id, key)
        return None if data is None else record_from_json(data)

    async def complete(self, workspace_id: str, key: str, message: dict[str, object], now: float) -> None:
        await self._edge.ledger_complete(workspace_id, key, message, now)

    async def release(self, workspace_id: str, key: str, now: float) -> None:
        await self._edge.ledger_release(workspace_id, key, now)

    async def purge(self, older_than: float) -> int:
        return 0  # the edge purges its own ledger (its Cron Trigger)
