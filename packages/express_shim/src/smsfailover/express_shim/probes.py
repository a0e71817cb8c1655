"""Active health probes of the origin itself and of the edge, for the status route and /metrics.

The origin's probe is in-process (its database answers a query): a request that reaches the status route
already proves the web server is up, and an HTTP call to ourselves would only measure the loopback.
The edge's probe is a real `GET /v1/health`.

A background round probes every few seconds. The settings page's live poll also asks for results no older than
a second (`refresh`), so an endpoint that stops answering is shown down by the first poll that begins after it
stopped, not after the next round. One probe per endpoint is in flight at a time in a process, shared by every
poll that wants it (and by the round), so ten open pages cost what one does: at most one probe per endpoint and
second. A poll waits for that probe only a short while; a probe slower than that (an edge that accepts
connections and never answers) finishes in the background and its result is there for the next poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    latency_ms: float | None
    checked_at: float | None  # epoch seconds; None before the first probe

    @classmethod
    def never(cls) -> ProbeResult:
        return cls(False, None, None)


Probe = Callable[[], Awaitable[tuple[bool, float]]]


async def timed(check: Callable[[], Awaitable[object]]) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        await check()
    except Exception:  # any failure of the check is "down"; the type is not the probe's business
        return False, (time.perf_counter() - started) * 1000
    return True, (time.perf_counter() - started) * 1000


class HealthProbes:
    def __init__(self, probes: dict[str, Probe], wall_clock: Callable[[], float]) -> None:
        self._probes = probes
        self._time = wall_clock
        self.results: dict[str, ProbeResult] = {name: ProbeResult.never() for name in probes}
        self._in_flight: dict[str, asyncio.Future[ProbeResult]] = {}

    async def run_once(self) -> dict[str, ProbeResult]:
        for name in self._probes:
            await self._probe(name)
        return dict(self.results)

    async def refresh(self, *, max_age_s: float, wait_s: float) -> None:
        """Probe again each endpoint whose last result is older than max_age_s (or missing), waiting at most
        wait_s for those probes; one that takes longer goes on and records its result when it ends."""
        now = self._time()
        stale = [
            self._probe(name)
            for name, result in self.results.items()
            if result.checked_at is None or now - result.checked_at >= max_age_s
        ]
        if stale:
            await asyncio.wait(stale, timeout=wait_s)  # never cancels them: other polls may be waiting too

    def cancel(self) -> None:
        """Stop the probes still in flight (at shutdown: one a poll started may still wait for its answer)."""
        for running in list(self._in_flight.values()):
            running.cancel()

    def _probe(self, name: str) -> asyncio.Future[ProbeResult]:
        """The probe of `name` in flight, or a new one."""
        running = self._in_flight.get(name)
        if running is None:
            running = self._in_flight[name] = asyncio.ensure_future(self._run(name))
            running.add_done_callback(lambda _: self._in_flight.pop(name, None))
        return running

    async def _run(self, name: str) -> ProbeResult:
        started = time.perf_counter()
        try:
            healthy, latency_ms = await self._probes[name]()
        except Exception:  # a probe that fails is "down", like a check that fails inside it
            healthy, latency_ms = False, (time.perf_counter() - started) * 1000
        result = self.results[name] = ProbeResult(healthy, round(latency_ms, 1), self._time())
        return result
