"""Helpers the benchmarks share: a send body, enabling failover for a workspace and waiting for the edge mirror."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING

import httpx2

if TYPE_CHECKING:
    from benchmarks.stack import BenchStack

TO = "+16266635938"
MIRROR_WAIT_S = 30.0


def send_body(workspace: str, content: str) -> dict[str, object]:
    return {"to": TO, "content": content, "workspace_id": workspace}


def auth(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def new_key() -> str:
    return uuid.uuid4().hex


async def set_failover(stack: BenchStack, origin_url: str, workspace: str, enabled: bool) -> None:
    """Set the workspace's failover flag on the origin, then wait (bounded) until the edge mirrors it (the origin's
    outbox retries the push until the edge acknowledges it)."""
    token = stack.token(workspace)
    async with httpx2.AsyncClient(timeout=5.0) as http:
        reply = await http.patch(
            f"{origin_url}/v1/workspaces/{workspace}/settings",
            json={"sms_failover_enabled": enabled},
            headers=auth(token),
        )
        reply.raise_for_status()
        if await _mirrored(http, stack.edge.url, workspace, token, enabled):
            return
    raise RuntimeError(f"the edge did not mirror failover={enabled} for {workspace} within {MIRROR_WAIT_S:.0f} s")


async def _mirrored(http: httpx2.AsyncClient, edge_url: str, workspace: str, token: str, enabled: bool) -> bool:
    deadline = time.monotonic() + MIRROR_WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.HTTPError):
            mirror = await http.get(f"{edge_url}/v1/workspaces/{workspace}/settings", headers=auth(token))
            if mirror.status_code == 200 and mirror.json().get("sms_failover_enabled") is enabled:
                return True
            if mirror.status_code >= 500:
                return False  # the edge's D1 is broken: waiting longer will not help
        await asyncio.sleep(0.1)
    return False
