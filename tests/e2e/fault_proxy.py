"""A small HTTP proxy in front of the real origin that injects the origin faults the chaos test needs.

The origin behind it is real; the proxy only decides what the client sees: the origin's own answer, a 5xx
without reaching the origin, or the origin's answer held back past the client's timeout ("sent, then slow").
One request per connection keeps it simple; httpx2 clients handle `Connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from enum import StrEnum

import httpx2

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}


class Fault(StrEnum):
    NONE = "none"
    ERROR_502 = "error_502"  # a gateway error; the origin never sees the request
    SLOW_AFTER = "slow_after"  # the origin handles the request; its answer is held for hold_s


@dataclass
class ProxyState:
    fault: Fault = Fault.NONE
    hold_s: float = 0.0
    rate: float = 1.0  # the share of requests the fault hits (seeded dice)
    sends_only: bool = False  # the fault hits POST /v1/messages only (settings reads pass untouched)
    forwarded: int = 0
    injected: int = 0
    dice: random.Random = field(default_factory=lambda: random.Random(11))


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.state = ProxyState()
        self._server: asyncio.Server | None = None
        self._http = httpx2.AsyncClient(timeout=30.0)
        self.url = ""

    def set(self, fault: Fault, *, hold_s: float = 0.0, rate: float = 1.0, sends_only: bool = False) -> None:
        self.state.fault = fault
        self.state.hold_s = hold_s
        self.state.rate = rate
        self.state.sends_only = sends_only

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        await self._http.aclose()

    def _fault_for(self, method: str, target: str) -> Fault:
        return self.state.fault if _hits(self.state, method, target) else Fault.NONE

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            method, target, headers = _parse_head(head)
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            status, out_headers, out_body = await self._answer(method, target, headers, body)
            writer.write(_render(status, out_headers, out_body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        fault, hold_s = self._fault_for(method, target), self.state.hold_s
        if fault is Fault.ERROR_502:
            self.state.injected += 1
            return 502, [("content-type", "text/plain")], b"bad gateway (injected)"
        forward = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        try:
            reply = await self._http.request(method, self.upstream + target, headers=forward, content=body)
        except httpx2.TransportError:
            return 502, [("content-type", "text/plain")], b"origin unreachable"
        self.state.forwarded += 1
        if fault is Fault.SLOW_AFTER:
            self.state.injected += 1
            await asyncio.sleep(hold_s)  # the fault itself: the answer arrives after the client gave up
        out = [(k, v) for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP]
        return reply.status_code, out, reply.content


def _hits(state: ProxyState, method: str, target: str) -> bool:
    if state.sends_only and (method != "POST" or target.split("?")[0] != "/v1/messages"):
        return False
    return state.rate >= 1.0 or state.dice.random() < state.rate


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _render(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {httpx2.codes.get_reason_phrase(status)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body
