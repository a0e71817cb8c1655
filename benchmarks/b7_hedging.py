"""Benchmark 7: hedging (issue 8) against an origin with a slow tail: p99 send latency with hedging against the
fixed 2 s timeout, and the extra load hedging sends to the edge.

The slow tail is a proxy in front of the real origin that holds a seeded share of requests before forwarding
them (the origin is slow to start on them: a GC pause, a cold connection, a lock). Without hedging those sends
wait it out (they stay under the 2 s timeout, so the breaker and failover never help); with hedging the edge
attempt starts at the origin's p95 (at least 250 ms) and usually wins.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

from aiohttp import web
from smsfailover.core.router import ORIGIN

from benchmarks.clients import sdk_client, sdk_send
from benchmarks.common import set_failover
from benchmarks.fault_proxy import FaultProxy
from benchmarks.framework import Row, RunSettings, Section, Spread, fmt, percentile
from benchmarks.stack import BenchStack

WS = "bench-hedging"
SLOW_SHARE = 0.05  # 5 % of origin requests are slow: a tail p99 sees, p95 does not
SLOW_HOLD_S = 1.2  # under the 2 s origin timeout: plain failover never starts
WARM_UP = 30  # sends that build the client's origin p95 before measuring


class SlowTailProxy(FaultProxy):
    """Holds SLOW_SHARE of requests (seeded dice) for SLOW_HOLD_S before forwarding them to the origin."""

    def __init__(self, upstream: str, *, seed: int = 11) -> None:
        super().__init__(upstream, seed=seed)
        self.tail_dice = random.Random(seed)
        self.slow = 0
        self.enabled = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.enabled and request.method == "POST" and self.tail_dice.random() < SLOW_SHARE:
            self.slow += 1
            await asyncio.sleep(SLOW_HOLD_S)
        try:
            return await super()._handle(request)
        except ConnectionResetError:  # the client cancelled the outrun origin attempt: expected under hedging
            return web.Response(status=499, text="client closed the request")


@dataclass
class RunFigures:
    latencies: list[float] = field(default_factory=list)
    hedges: int = 0
    edge_wins: int = 0
    hedged_ms: list[float] = field(default_factory=list)
    origin_p95_ms: float | None = None


async def _run_once(stack: BenchStack, proxy: SlowTailProxy, count: int, *, hedging: bool) -> RunFigures:
    figures = RunFigures()
    proxy.enabled = False
    async with sdk_client(stack.client_env(proxy.url), hedging=hedging, hedge_budget_ratio=0.1) as client:
        for n in range(WARM_UP):
            await sdk_send(client, WS, f"hedge warm-up {'on' if hedging else 'off'} {n} {time.time_ns()}")
        figures.origin_p95_ms = client.router.metrics.for_endpoint(ORIGIN).stats().p95_ms
        proxy.enabled = True
        proxy.tail_dice.seed(11)  # both modes meet the same slow requests, in the same places
        for n in range(count):
            started = time.perf_counter()
            result = await client.send_message(
                to="+16266635938", content=f"hedge {'on' if hedging else 'off'} {n} {time.time_ns()}", workspace_id=WS
            )
            elapsed = (time.perf_counter() - started) * 1000
            figures.latencies.append(elapsed)
            if hedging and any(a[1] == "cancelled" or a[0] == "edge" for a in result.attempts):
                figures.hedged_ms.append(elapsed)
                figures.edge_wins += result.endpoint == "edge"
        figures.hedges = client.router.hedge_budget.spent
    return figures


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    count = settings.pick(120, 40)  # make bench must finish within 10 minutes on 2 cores
    section = Section("7", "Hedging against a slow-tailed origin (issue 8)")
    section.setup = (
        f"Failover on. A proxy in front of the real origin holds {SLOW_SHARE:.0%} of send requests (seeded) for "
        f"{SLOW_HOLD_S} s before forwarding them: under the 2 s origin timeout, so plain failover never starts. "
        f"Per run a fresh client warms up with {WARM_UP} sends, then sends {count} messages one after another, "
        f"with SMSFAILOVER_HEDGING=1 (hedge at the origin's p95, at least 250 ms; budget 10 % of sends) and "
        f"without (the fixed 2 s timeout); {settings.repeats} runs. Provider calls are counted for duplicates."
    )
    origin = stack.origin(stack.sqlite_url("hedging"))
    await asyncio.to_thread(stack.run, origin)
    proxy = SlowTailProxy(origin.url)
    await proxy.start()
    try:
        await set_failover(stack, origin.url, WS, True)
        plain: list[list[float]] = []
        hedged: list[list[float]] = []
        hedges: list[int] = []
        before = await asyncio.to_thread(stack.provider_count)
        for _ in range(settings.repeats):
            plain.append((await _run_once(stack, proxy, count, hedging=False)).latencies)
            figures = await _run_once(stack, proxy, count, hedging=True)
            hedged.append(figures.latencies)
            hedges.append(figures.hedges)
            median_hedged = fmt(statistics.median(figures.hedged_ms)) if figures.hedged_ms else "-"
            section.notes.append(
                f"hedged run: origin p95 after warm-up {figures.origin_p95_ms} ms; {figures.hedges} hedges, "
                f"{figures.edge_wins} won by the edge; hedged sends took {median_hedged} ms (median)"
            )
        bodies = await asyncio.to_thread(stack.provider_bodies)
        sent = len(bodies) - before
        doubled = sorted({b for b in bodies[before:] if bodies.count(b) > 1})
        if doubled:
            section.notes.append(f"sent twice: {', '.join(repr(b) for b in doubled[:5])}")
        expected = settings.repeats * 2 * (count + WARM_UP)
        for label, q in (("p50", 50.0), ("p99", 99.0)):
            section.add(
                Row(
                    f"{label} send latency, hedging on",
                    "ms",
                    Spread(tuple(percentile(run, q) for run in hedged)),
                    Spread(tuple(percentile(run, q) for run in plain)),
                    "fixed 2 s timeout",
                    goal="<= 1.00x" if label == "p99" else "",
                    max_ratio=1.0 if label == "p99" else None,
                )
            )
        section.add(
            Row(
                "extra edge requests from hedging",
                "% of sends",
                Spread(tuple(100.0 * h / count for h in hedges)),
                goal="<= 10 % + burst",
            )
        )
        section.notes.append(
            f"provider calls {sent} for {expected} logical messages ({sent - expected} duplicates); "
            f"slow origin requests held by the proxy: {proxy.slow}"
        )
        p99_on = Spread(tuple(percentile(run, 99.0) for run in hedged)).median
        p99_off = Spread(tuple(percentile(run, 99.0) for run in plain)).median
        section.reading = (
            f"With hedging the p99 is {fmt(p99_on)} ms against {fmt(p99_off)} ms with the fixed timeout: the slow "
            f"sends stop waiting out the origin's tail once the edge starts at the origin's p95. The cost is "
            f"{fmt(Spread(tuple(100.0 * h / count for h in hedges)).median)} % more requests to the edge (capped by "
            f"the 10 % budget), and the shared ledger kept the provider at {sent - expected} duplicates."
        )
    finally:
        await proxy.stop()
        await asyncio.to_thread(stack.stop, origin)
    return section
