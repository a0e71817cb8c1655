"""The two ways the benchmarks send: core's FailoverClient (the SDK) and a direct httpx2 POST (the baseline)."""

from __future__ import annotations

import time

import httpx2
from smsfailover.core import FailoverClient
from smsfailover.core.config import ClientConfig
from smsfailover.core.router import BreakerRegistry

from benchmarks.common import auth, new_key, send_body


def sdk_client(env: dict[str, str], **overrides: object) -> FailoverClient:
    """A FailoverClient on this environment with its own breakers (no state shared with another benchmark)."""
    config = ClientConfig.from_env(env).with_overrides(**overrides)
    return FailoverClient(config, breakers=BreakerRegistry())


async def sdk_send(client: FailoverClient, workspace: str, content: str) -> float:
    started = time.perf_counter()
    await client.send_message(to="+16266635938", content=content, workspace_id=workspace)
    return (time.perf_counter() - started) * 1000


async def direct_send(http: httpx2.AsyncClient, url: str, token: str, workspace: str, content: str) -> float:
    started = time.perf_counter()
    reply = await http.post(url + "/v1/messages", json=send_body(workspace, content), headers=auth(token, new_key()))
    elapsed = (time.perf_counter() - started) * 1000
    if reply.status_code != 201:
        raise RuntimeError(f"{url} answered {reply.status_code}: {reply.text[:200]}")
    return elapsed


async def direct_sends(url: str, token: str, workspace: str, count: int, label: str) -> list[float]:
    """`count` sequential direct POSTs to one endpoint (after one warm-up), latencies in ms."""
    async with httpx2.AsyncClient(timeout=10.0) as http:
        await direct_send(http, url, token, workspace, f"{label} warm-up {time.time_ns()}")
        return [await direct_send(http, url, token, workspace, f"{label} {n} {time.time_ns()}") for n in range(count)]
