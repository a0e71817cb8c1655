"""Active health probes of the origin itself and of the edge, for the status route and /metrics.

The origin's probe is in-process (its database answers a query): a request that reaches the status route
already proves the web server is up, and an HTTP call to ourselves would only measure the loopback.
The edge's probe is a real `GET /v1/health`.
"""

from __future__ import annotations

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

    async def run_once(self) -> dict[str, ProbeResult]:
        for name, probe in self._probes.items():
            healthy, latency_ms = await probe()
            self.results[name] = ProbeResult(healthy, round(latency_ms, 1), self._time())
        return dict(self.results)
