from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from smsfailover.core.transport import (
    HttpxTransport,
    TransportConnectError,
    TransportReply,
    TransportTimeout,
    message_by_key_url,
)

BASE = "http://origin.test"


def _transport(handler: httpx2.MockTransport) -> HttpxTransport:
    return HttpxTransport(transport=handler)


async def test_post_message_sends_token_key_and_json() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(201, json={"id": "msg_1"}, headers={"X-Thing": "v"})

    transport = _transport(httpx2.MockTransport(handler))
    reply = await transport.post_message(BASE + "/", {"to": "+1"}, token="tok", idempotency_key="k1", timeout_s=2)
    await transport.aclose()

    assert reply == TransportReply(201, {"id": "msg_1"}, reply.headers)
    assert reply.headers["x-thing"] == "v"
    request = seen[0]
    assert (request.method, str(request.url)) == ("POST", BASE + "/v1/messages")
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["idempotency-key"] == "k1"
    assert json.loads(request.content) == {"to": "+1"}


async def test_get_by_key_get_json_and_patch() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, str(request.url), request.headers.get("authorization")))
        return httpx2.Response(200, text="not json")

    transport = _transport(httpx2.MockTransport(handler))
    by_key = await transport.get_message_by_key(BASE, "a b&c", token="t", timeout_s=1)
    anonymous = await transport.get_json(BASE + "/v1/health", token=None, timeout_s=1)
    await transport.get_json(BASE + "/x", token="t", timeout_s=1)
    await transport.patch_json(BASE + "/y", {"a": 1}, token="t", timeout_s=1)
    await transport.aclose()

    assert by_key.json is None
    assert anonymous.status == 200
    assert seen == [
        ("GET", message_by_key_url(BASE, "a b&c"), "Bearer t"),
        ("GET", BASE + "/v1/health", None),
        ("GET", BASE + "/x", "Bearer t"),
        ("PATCH", BASE + "/y", "Bearer t"),
    ]
    assert message_by_key_url(BASE, "a b&c").endswith("?idempotency_key=a+b%26c")


async def test_a_json_array_is_not_an_object() -> None:
    transport = _transport(httpx2.MockTransport(lambda _: httpx2.Response(200, json=[1])))
    assert (await transport.get_json(BASE, token=None, timeout_s=1)).json is None
    await transport.aclose()


async def test_timeouts_and_connection_errors_are_mapped() -> None:
    def timeout(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    def refused(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    slow = _transport(httpx2.MockTransport(timeout))
    with pytest.raises(TransportTimeout, match="no answer within 2 s") as caught:
        await slow.post_message(BASE, {}, token="t", idempotency_key="k", timeout_s=2)
    assert caught.value.url == BASE + "/v1/messages"
    await slow.aclose()

    down = _transport(httpx2.MockTransport(refused))
    with pytest.raises(TransportConnectError, match="ConnectError"):
        await down.get_json(BASE, token=None, timeout_s=1)
    await down.aclose()


def test_reply_helpers() -> None:
    reply = TransportReply(409, {"error": {"code": "idempotency_in_progress"}}, {"retry-after": "2"})
    assert reply.error_code == "idempotency_in_progress"
    assert reply.retry_after_s(1.0) == 2.0
    assert TransportReply(409, None, {"retry-after": "soon"}).retry_after_s(1.5) == 1.5
    assert TransportReply(500, {"error": "flat"}).error_code is None
    assert TransportReply(500, None).retry_after_s(0.5) == 0.5


async def test_a_real_server_that_never_answers_times_out() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = HttpxTransport()
    try:
        with pytest.raises(TransportTimeout):
            await transport.post_message(f"http://127.0.0.1:{port}", {}, token="t", idempotency_key="k", timeout_s=0.2)
        assert len(writers) == 1
    finally:
        await transport.aclose()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_a_closed_port_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is free again: nothing listens
    transport = HttpxTransport()
    try:
        with pytest.raises(TransportConnectError):
            await transport.get_json(f"http://127.0.0.1:{port}/v1/health", token=None, timeout_s=2)
    finally:
        await transport.aclose()
