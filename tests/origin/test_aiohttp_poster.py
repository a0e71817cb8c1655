"""The origin's aiohttp provider poster over real 127.0.0.1 sockets: the reply, and core's two failure outcomes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from smsfailover.core.provider import ConnectFailed, ReplyLost
from smsfailover.express_shim.aiohttp_poster import AiohttpPoster
from smsfailover.express_shim.processes import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC1/Messages.json"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)


async def test_posts_the_form_with_basic_auth_and_returns_the_reply() -> None:
    seen: dict[str, bytes] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        seen["head"] = head
        seen["body"] = await reader.readexactly(length)
        body = b'{"sid": "SM1", "status": "queued"}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        writer.close()

    poster = AiohttpPoster()
    try:
        async with serving(handler) as url:
            reply = await poster.post_form(url, [("To", "+16266635938"), ("Body", "hi there")], ("AC1", "tok"), 5.0)
    finally:
        await poster.aclose()
    assert reply.status == 201
    assert reply.body == b'{"sid": "SM1", "status": "queued"}'
    assert seen["body"] == b"To=%2B16266635938&Body=hi+there"
    expected_auth = base64.b64encode(b"AC1:tok")
    assert b"authorization: basic " + expected_auth in seen["head"].lower().replace(
        expected_auth.lower(), expected_auth
    )
    assert b"application/x-www-form-urlencoded" in seen["head"]


async def test_refused_connection_is_connect_failed() -> None:
    poster = AiohttpPoster()
    try:
        with pytest.raises(ConnectFailed):
            await poster.post_form(f"http://127.0.0.1:{free_port()}/x", [("To", "+1")], ("AC1", "tok"), 2.0)
    finally:
        await poster.aclose()


async def test_no_answer_within_the_timeout_is_reply_lost() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=5)
        writer.close()

    poster = AiohttpPoster()
    try:
        async with serving(silent) as url:
            with pytest.raises(ReplyLost):
                await poster.post_form(url, [("To", "+1")], ("AC1", "tok"), 0.2)
            release.set()
    finally:
        await poster.aclose()


async def test_gets_the_url_as_built_with_basic_auth_and_returns_the_reply() -> None:
    seen: dict[str, bytes] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["head"] = await reader.readuntil(b"\r\n\r\n")
        body = b'{"messages": [], "next_page_uri": null}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    poster = AiohttpPoster()
    try:
        async with serving(handler) as url:
            query = "?To=%2B16266635938&DateSent%3E=2026-12-01&PageSize=200"
            reply = await poster.get(url + query, ("AC1", "tok"), 5.0)
    finally:
        await poster.aclose()
    assert reply.status == 200
    assert reply.body == b'{"messages": [], "next_page_uri": null}'
    request_line = seen["head"].split(b"\r\n")[0]
    assert request_line == b"GET /2010-04-01/Accounts/AC1/Messages.json" + query.encode() + b" HTTP/1.1"
    head = seen["head"].lower()
    assert b"authorization: basic " + base64.b64encode(b"AC1:tok").lower() in head
    assert b"accept: application/json" in head


async def test_a_refused_get_is_connect_failed() -> None:
    poster = AiohttpPoster()
    try:
        with pytest.raises(ConnectFailed):
            await poster.get(f"http://127.0.0.1:{free_port()}/x", ("AC1", "tok"), 2.0)
    finally:
        await poster.aclose()


async def test_a_pool_wait_that_runs_out_is_connect_failed_and_writes_nothing() -> None:
    """With the one pooled connection held by a silent request, the next request never gets a socket: never sent."""
    requests = 0
    busy, release = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            requests += 1
            busy.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=5)
        writer.close()

    poster = AiohttpPoster(max_connections=1)
    try:
        async with serving(silent) as url:
            holder = asyncio.create_task(poster.post_form(url, [("To", "+1")], ("AC1", "tok"), 3.0))
            await asyncio.wait_for(busy.wait(), timeout=5)  # the one connection is now busy with the first request
            with pytest.raises(ConnectFailed):
                await poster.post_form(url, [("To", "+2")], ("AC1", "tok"), 0.2)
            release.set()
            with pytest.raises(ReplyLost):  # the holder's request was written: its lost answer stays "may have sent"
                await holder
    finally:
        await poster.aclose()
    assert requests == 1


async def test_a_connect_that_times_out_is_connect_failed() -> None:
    """A listener whose accept queue is full drops the SYN (Linux), so the TCP connect itself runs out of time."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: one queued connection fills the queue
        port = listener.getsockname()[1]
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        await asyncio.sleep(0.05)
        poster = AiohttpPoster()
        try:
            with pytest.raises(ConnectFailed):
                await poster.post_form(f"http://127.0.0.1:{port}/x", [("To", "+1")], ("AC1", "tok"), 0.3)
        finally:
            await poster.aclose()
    finally:
        filler.close()
        listener.close()


@pytest.mark.parametrize(
    "error",
    [aiohttp.ConnectionTimeoutError("pool or connect ran out"), TimeoutError()],
)
async def test_errors_while_getting_a_connection_are_connect_failed(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Whatever the connector raises (aiohttp wraps a timeout as ConnectionTimeoutError), nothing was written."""

    async def failing_connect(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", failing_connect)
    poster = AiohttpPoster()
    try:
        with pytest.raises(ConnectFailed):
            await poster.post_form("http://127.0.0.1:9/x", [("To", "+1")], ("AC1", "tok"), 2.0)
    finally:
        await poster.aclose()


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.SocketTimeoutError("read ran out"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        ConnectionResetError(),
    ],
)
async def test_errors_once_a_connection_was_had_are_reply_lost(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Raised while sending on a real connection: the request may have been written, so the provider may have acted."""

    async def failing_send(self: object, conn: object) -> object:
        raise error

    monkeypatch.setattr(aiohttp.ClientRequest, "send", failing_send)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    poster = AiohttpPoster()
    try:
        async with serving(handler) as url:
            with pytest.raises(ReplyLost):
                await poster.post_form(url, [("To", "+1")], ("AC1", "tok"), 2.0)
    finally:
        await poster.aclose()
