"""The SDK's own cost, apart from the network: FailoverClient.send_message against a direct httpx2 POST, both
over one httpx2.MockTransport that answers at once (benchmark 1's in-process rows)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable

import httpx2
from smsfailover.core import FailoverClient
from smsfailover.core.config import ClientConfig
from smsfailover.core.router import BreakerRegistry
from smsfailover.core.transport import HttpxTransport

from benchmarks.common import send_body

ORIGIN = "http://origin.bench"
EDGE = "http://edge.bench"
SECRET = "in-process-benchmark-secret-" + "x" * 16
WS = "bench-in-process"
CHUNK = 200  # sends per turn; the two senders alternate turns
_MESSAGE = {
    "id": "msg_01JBENCHBENCHBENCHBENCHBENC",
    "workspace_id": WS,
    "to": "+16266635938",
    "status": "queued",
    "endpoint": "origin",
    "idempotency_key": "k",
    "provider_message_id": "SM0",
    "segments": 1,
    "encoding": "GSM-7",
    "requires_refresh": False,
    "ledger": "local",
    "created_at": "2026-12-01T00:00:00Z",
}


def _answer(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/settings"):
        return httpx2.Response(200, json={"workspace_id": WS, "sms_failover_enabled": False})
    return httpx2.Response(201, json=_MESSAGE)


async def _per_send_us(send: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await send()
    return (time.perf_counter() - started) / count * 1e6


async def compare(turns: int) -> tuple[list[float], list[float]]:
    """(SDK µs per send, direct µs per send), one figure per turn of CHUNK sends each."""
    mock = httpx2.MockTransport(_answer)
    config = ClientConfig(origin_url=ORIGIN, edge_url=EDGE, jwt_secret=SECRET)
    client = FailoverClient(config, transport=HttpxTransport(transport=mock), breakers=BreakerRegistry())
    http = httpx2.AsyncClient(transport=mock)
    token = client.token_for(WS)
    body = send_body(WS, "in process")

    async def sdk() -> None:
        await client.send_message(to="+16266635938", content="in process", workspace_id=WS)

    async def direct() -> None:
        # What a caller writes by hand: a fresh key, the POST, the JSON answer.
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k_" + secrets.token_urlsafe(24)}
        reply = await http.post(ORIGIN + "/v1/messages", json=body, headers=headers)
        reply.json()

    try:
        for send in (sdk, direct):  # warm up: settings cache, token, code paths
            await _per_send_us(send, CHUNK)
        sdk_us: list[float] = []
        direct_us: list[float] = []
        for _ in range(turns):
            sdk_us.append(await _per_send_us(sdk, CHUNK))
            direct_us.append(await _per_send_us(direct, CHUNK))
        return sdk_us, direct_us
    finally:
        await client.aclose()
        await http.aclose()
