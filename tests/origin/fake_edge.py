"""A small stand-in for the edge's service routes (docs/architecture.md), served over real HTTP in tests.

The real edge is tested end to end elsewhere; this one records what the origin sends and can be told to fail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeEdgeState:
    failing: bool = False  # answer 503 to everything
    failing_paths: set[str] = field(default_factory=set)  # answer 503 on these paths only
    status: int | None = None  # answer this status (e.g. 401) to every service route
    hang_s: float = 0.0  # hold every service answer this long (a paused edge: the connection opens, no answer)
    enabled_at_mirror: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # ledger keys when enabled
    mirror: dict[str, dict[str, Any]] = field(default_factory=dict)
    mirror_puts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ledger: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reconciled: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    edge_messages: list[dict[str, Any]] = field(default_factory=list)  # each with "seq"
    auth_headers: list[str] = field(default_factory=list)
    sync_afters: list[int] = field(default_factory=list)  # the cursor of each sync request
    batch_sizes: list[int] = field(default_factory=list)  # operations per ledger batch request


def fake_edge(state: FakeEdgeState) -> Starlette:
    async def guard(request: Request) -> Response | None:
        state.auth_headers.append(request.headers.get("authorization", ""))
        if state.hang_s:
            await asyncio.sleep(state.hang_s)
        if state.status is not None:
            return JSONResponse({"error": {"code": "refused", "message": "refused"}}, status_code=state.status)
        if state.failing or request.url.path in state.failing_paths:
            return JSONResponse({"error": {"code": "unavailable", "message": "down"}}, status_code=503)
        return None

    async def health(request: Request) -> Response:
        if state.failing:
            return JSONResponse({"status": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "endpoint": "edge", "version": "fake", "ledger": "edge"})

    async def put_mirror(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        ws = request.path_params["ws"]
        body = await request.json()
        state.mirror_puts.append((ws, body))
        current = state.mirror.get(ws)
        if current is None or body["updated_at"] >= current["updated_at"]:
            state.mirror[ws] = body
            if body["sms_failover_enabled"]:
                state.enabled_at_mirror[ws] = {k for k in state.ledger if k[0] == ws}
        return JSONResponse({"workspace_id": ws, **state.mirror[ws]})

    def claim_op(body: dict[str, Any]) -> dict[str, Any]:
        record = body["record"]
        k = (record["workspace_id"], record["key"])
        current = state.ledger.get(k)
        if current is None or current["state"] == "released":
            state.ledger[k] = record
            return {"claimed": True, "record": record}
        return {"claimed": False, "record": current}

    async def claim(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        return JSONResponse(claim_op(await request.json()))

    async def get_record(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        record = state.ledger.get((request.path_params["ws"], request.path_params["key"]))
        if record is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no such record"}}, status_code=404)
        return JSONResponse(record)

    def fenced(body: dict[str, Any]) -> dict[str, Any] | None:
        record = state.ledger.get((body["workspace_id"], body["key"]))
        if record is None or record["state"] != "claimed" or record.get("message_id") != body["message_id"]:
            return None
        return record

    def complete_op(body: dict[str, Any]) -> dict[str, Any]:
        if (record := fenced(body)) is not None:
            record.update(state="completed", message=body["message"], updated_at=body["now"])
        return {"record": state.ledger.get((body["workspace_id"], body["key"]))}

    def release_op(body: dict[str, Any]) -> dict[str, Any]:
        state.releases.append(body)
        if (record := fenced(body)) is not None:
            record.update(state="released", updated_at=body["now"])
        return {"record": state.ledger.get((body["workspace_id"], body["key"]))}

    ops = {"claim": claim_op, "complete": complete_op, "release": release_op}

    async def complete(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        return JSONResponse(complete_op(await request.json()))

    async def release(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        return JSONResponse(release_op(await request.json()))

    async def batch(request: Request) -> Response:
        """The real edge's batch route: one answer per operation; `failing_paths` naming an operation's single
        route (e.g. /v1/ledger/claim) fails those operations alone, as a failing shard would."""
        if (denied := await guard(request)) is not None:
            return denied
        state.batch_sizes.append(len(body := (await request.json())["ops"]))
        results = []
        for op in body:
            if f"/v1/ledger/{op['op']}" in state.failing_paths:
                results.append({"status": 503, "error": {"code": "ledger_unavailable", "message": "down"}})
            else:
                results.append(ops[op["op"]](op))
        return JSONResponse({"results": results})

    async def ping(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        return JSONResponse({"ledger": "ok", "shards": [{"shard": 0, "binding": "DB", "ok": True}]})

    async def reconcile(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        records = (await request.json())["records"]
        state.reconciled.extend(records)
        duplicates = []
        merged = 0
        for record in records:  # the real edge's rules (edge_worker/service_api.py), in short
            k = (record["workspace_id"], record["key"])
            current = state.ledger.get(k)
            if current is None or current["state"] == "released":
                state.ledger[k] = record
                merged += 1
            elif current.get("message_id") == record.get("message_id"):
                if current["state"] == "claimed" and record["state"] == "completed":
                    current.update(state="completed", message=record["message"])
                    merged += 1
            else:  # another attempt's live record beside one the origin sent or may have sent
                duplicates.append({"workspace_id": k[0], "key": k[1]})
        return JSONResponse({"merged": merged, "duplicates": duplicates})

    async def sync(request: Request) -> Response:
        if (denied := await guard(request)) is not None:
            return denied
        after = int(request.query_params.get("after", "0"))
        state.sync_afters.append(after)
        limit = int(request.query_params.get("limit", "100"))
        page = [m for m in state.edge_messages if m["seq"] > after][:limit]
        cursor = page[-1]["seq"] if page else after
        return JSONResponse({"data": page, "next_cursor": cursor, "shard": 0, "shards": 1})

    return Starlette(
        routes=[
            Route("/v1/health", health),
            Route("/v1/settings-mirror/{ws}", put_mirror, methods=["PUT"]),
            Route("/v1/ledger/claim", claim, methods=["POST"]),
            Route("/v1/ledger/batch", batch, methods=["POST"]),
            Route("/v1/ledger/complete", complete, methods=["POST"]),
            Route("/v1/ledger/release", release, methods=["POST"]),
            Route("/v1/ledger/reconcile", reconcile, methods=["POST"]),
            Route("/v1/ledger/ping", ping),
            Route("/v1/ledger/{ws}/{key}", get_record),
            Route("/v1/sync/messages", sync),
        ]
    )
