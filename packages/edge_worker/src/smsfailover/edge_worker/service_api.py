"""The edge's own routes (docs/architecture.md, "Edge service routes").

Service token only: the ledger the origin shares with the edge (claim, get, complete, release, the batch of those,
reconcile), the sync feed of edge-sent messages, and the settings mirror write. The mirrored settings read also
takes the workspace's own token (the router's second source while the origin is down).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from smsfailover.core.auth import Principal, SigningKeys, require_service, verify_bearer
from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import LedgerStore
from smsfailover.core.message import validate_workspace_id
from smsfailover.core.messages_api import ApiRequest, ApiResponse
from smsfailover.core.numbers import whole_number
from smsfailover.edge_worker.ledger_batch import MAX_OPS, run_batch
from smsfailover.edge_worker.ledger_json import (
    MAX_EPOCH_S,
    record_from_json,
    require_claim,
    require_object,
    require_str,
    time_or_now,
    ws_key,
)
from smsfailover.edge_worker.mirror import MirroredSettings, SettingsMirror
from smsfailover.edge_worker.reconcile import reconcile
from smsfailover.edge_worker.shards import Shards
from smsfailover.edge_worker.sync import SyncFeed

MAX_RECONCILE = 500  # records per reconcile call; the origin sends larger backlogs in pages
MAX_SYNC_PAGE = 500
DEFAULT_SYNC_PAGE = 100
MAX_BODY = 1024 * 1024


class ServiceApi:
    def __init__(
        self,
        *,
        ledger: LedgerStore,
        shards: Shards,
        feed: SyncFeed,
        mirror: SettingsMirror,
        keys: SigningKeys,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._shards = shards
        self._feed = feed
        self._mirror = mirror
        self._keys = keys
        self._clock = clock

    # -- authentication -------------------------------------------------------------------------

    def _principal(self, request: ApiRequest) -> Principal:
        return verify_bearer(self._keys, request.headers.get("authorization"), self._clock.time())

    def _service(self, request: ApiRequest) -> None:
        require_service(self._principal(request))

    # -- ledger ---------------------------------------------------------------------------------

    async def claim(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        self._service(request)
        record = require_claim(_body(request).get("record"))
        claimed = await self._ledger.try_claim(record)
        current = await self._ledger.get(record.workspace_id, record.key)
        return _ok({"claimed": claimed, "record": current.to_json() if current else None})

    async def get_record(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        self._service(request)
        workspace_id, key = ws_key(params["ws"], params["key"])
        record = await self._ledger.get(workspace_id, key)
        if record is None:
            raise ApiError(404, "not_found", "No ledger record has this workspace and key.")
        return _ok(record.to_json())

    async def complete(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        """Complete the claim named by `message_id` (fenced: another attempt's claim is left as it is)."""
        self._service(request)
        body = _body(request)
        workspace_id, key = ws_key(require_str(body, "workspace_id"), require_str(body, "key"))
        message = require_object(body.get("message"), "message")
        message_id = require_str(body, "message_id")
        await self._ledger.complete(
            workspace_id, key, dict(message), time_or_now(body, self._clock), message_id=message_id
        )
        return await self._current(workspace_id, key)

    async def release(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        """Release the claim named by `message_id`; a late retried release never frees someone else's claim."""
        self._service(request)
        body = _body(request)
        workspace_id, key = ws_key(require_str(body, "workspace_id"), require_str(body, "key"))
        message_id = require_str(body, "message_id")
        await self._ledger.release(workspace_id, key, time_or_now(body, self._clock), message_id=message_id)
        record = await self._ledger.get(workspace_id, key)
        return _ok({"record": record.to_json() if record else None})

    async def batch(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        """Claims, completions and releases together: one D1 batch per shard, one answer per operation."""
        self._service(request)
        ops = _body(request).get("ops")
        if not isinstance(ops, list) or not 1 <= len(ops) <= MAX_OPS:
            raise ApiError(422, "invalid_request", f"ops must be a list of 1 to {MAX_OPS} operations.", field="ops")
        return _ok({"results": await run_batch(self._shards, ops, self._clock)})

    async def ping(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        """An authenticated round trip: what ends the origin's degraded mode (not health). The edge is reachable
        whatever its shards say, so this answers 200 with each shard's state: one failing shard makes its keys'
        claims 503, never the whole edge "unreachable" (that would keep the origin sending on its own ledger while
        the edge still sends for the other shards' keys)."""
        self._service(request)
        shards = await self._shards.health()
        return _ok({"ledger": "ok" if all(shard["ok"] for shard in shards) else "degraded", "shards": shards})

    async def reconcile(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        """Merge the origin's records of keys this ledger may not have seen (DESIGN.md rule 6; reconcile.py).
        200 with each shard's records answered, those of a failing shard in `failed`; 503 only when no record
        could be applied (the origin then keeps them all for its next round)."""
        self._service(request)
        records = _body(request).get("records")
        if not isinstance(records, list) or len(records) > MAX_RECONCILE:
            raise ApiError(
                422, "invalid_request", f"records must be a list of at most {MAX_RECONCILE}.", field="records"
            )
        parsed = [record_from_json(raw, f"records[{index}]") for index, raw in enumerate(records)]
        answer = await reconcile(self._shards, parsed, self._clock.time())
        if answer.failed and len(answer.failed) == answer.routed:
            raise ApiError(503, "ledger_unavailable", "No ledger shard of these records answered; nothing was merged.")
        return _ok(answer.to_json())

    async def _current(self, workspace_id: str, key: str) -> ApiResponse:
        record = await self._ledger.get(workspace_id, key)
        if record is None:
            raise ApiError(404, "not_found", "No ledger record has this workspace and key.")
        return _ok({"record": record.to_json()})

    # -- sync feed ------------------------------------------------------------------------------

    async def sync_messages(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        self._service(request)
        shard = _int_query(request, "shard", 0, maximum=self._shards.count - 1)
        after = _int_query(request, "after", 0, maximum=2**62)
        limit = _int_query(request, "limit", DEFAULT_SYNC_PAGE, maximum=MAX_SYNC_PAGE, minimum=1)
        page = await self._feed.page(shard=shard, after=after, limit=limit)
        return _ok({"data": page.data, "next_cursor": page.next_cursor, "shard": shard, "shards": self._shards.count})

    # -- settings mirror ------------------------------------------------------------------------

    async def put_settings(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        self._service(request)
        workspace_id = params["ws"]
        validate_workspace_id(workspace_id)
        body = _body(request)
        enabled = body.get("sms_failover_enabled")
        if not isinstance(enabled, bool):
            raise ApiError(
                422,
                "invalid_request",
                "sms_failover_enabled must be true or false.",
                field="sms_failover_enabled",
            )
        updated_at = _epoch(body.get("updated_at"))
        settings = await self._mirror.put(workspace_id, enabled, updated_at, self._clock.time())
        return _ok(_settings_json(settings))

    async def get_settings(self, request: ApiRequest, params: Mapping[str, str]) -> ApiResponse:
        workspace_id = params["ws"]
        principal = self._principal(request)
        validate_workspace_id(workspace_id)
        if not principal.is_service and principal.workspace_id != workspace_id:
            raise ApiError(403, "forbidden", "This token is for another workspace.")
        return _ok(_settings_json(await self._mirror.get(workspace_id)))


def _ok(body: dict[str, object]) -> ApiResponse:
    return ApiResponse(200, body, {})


def _body(request: ApiRequest) -> Mapping[str, Any]:
    if len(request.body) > MAX_BODY:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return data


def _epoch(value: object) -> float:
    """An RFC 3339 string, or epoch milliseconds / seconds (told apart by size), as epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value) / 1000 if value >= MAX_EPOCH_S else float(value)  # past year 5138: epoch ms
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise ApiError(422, "invalid_request", "updated_at must be an RFC 3339 time with a zone.", field="updated_at")


def _int_query(request: ApiRequest, name: str, default: int, *, maximum: int, minimum: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, minimum=minimum, maximum=maximum)
    if value is None:
        raise ApiError(
            422, "invalid_request", f"{name} must be a whole number from {minimum} to {maximum}.", field=name
        )
    return value


def _settings_json(settings: MirroredSettings) -> dict[str, object]:
    return {
        "workspace_id": settings.workspace_id,
        "sms_failover_enabled": settings.sms_failover_enabled,
        "updated_at": rfc3339(settings.updated_at) if settings.updated_at is not None else None,
    }
