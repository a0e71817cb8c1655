"""An HTTP proxy in front of the real origin that plays the origin faults benchmarks 2 and 5 need.

pass         forward to the origin, answer what it answered
fail_ratio   answer 502 to that share of requests (seeded dice) without reaching the origin
blackhole    accept the request and never answer (bounded by NEVER_S, far beyond any client timeout)
slow_after   forward (the origin sends the SMS), then hold the answer for hold_s
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web

Mode = Literal["pass", "fail_ratio", "blackhole", "slow_after"]
NEVER_S = 120.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"})


@dataclass
class ProxyPlan:
    mode: Mode = "pass"
    ratio: float = 0.0
    hold_s: float = 0.0


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 7) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = ProxyPlan()
        self.injected = 0
        self._dice = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, shutdown_timeout=1.0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128))

    async def stop(self) -> None:
        """The server first (handlers still held are cancelled after a second), then the upstream session."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        plan = self.plan
        if plan.mode == "blackhole":
            self.injected += 1
            await asyncio.sleep(NEVER_S)
            return web.Response(status=504, text="held past every client timeout (injected by the benchmark)")
        if plan.mode == "fail_ratio" and self._dice.random() < plan.ratio:
            self.injected += 1
            return web.Response(status=502, text="bad gateway (injected by the benchmark)")
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            status = upstream.status
        if plan.mode == "slow_after":
            self.injected += 1
            await asyncio.sleep(plan.hold_s)
        return web.Response(status=status, body=payload, headers=out_headers)
