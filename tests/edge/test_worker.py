"""worker.serve: the request's work outlives the request (ctx.waitUntil), so a client that goes away mid-send never
leaves a claim marked "call began" without the provider's answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest
from smsfailover.core.messages_api import ApiRequest
from smsfailover.core.provider import HttpReply
from smsfailover.edge_worker.worker import serve

from .test_app import TO, WS, make_edge, service_token, ws_token

SID = "SM" + "7" * 32


class Ctx:
    """The Workers ExecutionContext as far as serve uses it: what it was asked to wait for."""

    def __init__(self) -> None:
        self.kept: list[Awaitable[Any]] = []

    def waitUntil(self, work: Awaitable[Any]) -> None:  # the runtime's name
        self.kept.append(work)


async def test_a_send_cancelled_mid_provider_call_still_completes_its_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    edge = make_edge()
    called, answer = asyncio.Event(), asyncio.Event()

    async def slow_provider(url: str, fields: Sequence[tuple[str, str]], auth: object, timeout_s: float) -> HttpReply:
        called.set()
        await answer.wait()
        return HttpReply(201, json.dumps({"sid": SID, "status": "queued", "num_segments": "1"}).encode())

    monkeypatch.setattr(edge.poster, "post_form", slow_provider)
    body = json.dumps({"to": TO, "content": "hello", "workspace_id": WS}).encode()
    headers = {"authorization": f"Bearer {ws_token(edge.clock)}", "idempotency-key": "gone"}
    ctx = Ctx()
    request = asyncio.ensure_future(serve(edge.app, ApiRequest("POST", "/v1/messages", {}, headers, body), ctx))
    await called.wait()
    request.cancel()  # the client went away while the provider call was in flight
    with pytest.raises(asyncio.CancelledError):
        await request
    answer.set()
    await asyncio.gather(*ctx.kept)  # what the runtime waits for after the request
    service = {"authorization": f"Bearer {service_token(edge.clock)}"}
    held = await edge.app.handle(ApiRequest("GET", f"/v1/ledger/{WS}/gone", {}, service))
    assert held.body["state"] == "completed"
    message = held.body["message"]
    assert isinstance(message, dict)
    assert message["provider_message_id"] == SID
    edge.db.close()
