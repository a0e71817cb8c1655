"""The origin's aiohttp provider poster over real 127.0.0.1 sockets: the reply, and core's two failure outcomes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

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
