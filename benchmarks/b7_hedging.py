"""Benchmark 7: hedging against an origin with a slow tail: p99 send latency with hedging against what it can
reach (the hedge delay plus the edge's own p99) and against the fixed 2 s timeout, and the extra load hedging
sends to the edge.

The slow tail is a proxy in front of the real origin that holds a seeded share of requests before forwarding
them (the origin is slow to start on them: a GC pause, a cold connection, a lock). Without hedging those sends
wait it out (they stay under the 2 s timeout, so the breaker and failover never help); with hedging the edge
attempt starts at the hedge delay, max(origin p95, 2 x origin p50, 20 ms), and should win.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx2
from aiohttp import web
from smsfailover.core import FailoverClient
from smsfailover.core.router import ORIGIN

from benchmarks.clients import direct_sends, sdk_client, sdk_send
from benchmarks.common import set_failover
from benchmarks.fault_proxy import FaultProxy
from benchmarks.framework import Row, RunSettings, Section, Spread, fmt, percentile
from benchmarks.stack import BenchStack

WS = "bench-hedging"
SLOW_SHARE = 0.05  # 5 % of origin requests are slow: a tail p99 sees, p95 does not
SLOW_HOLD_S = 1.2  # under the 2 s origin timeout: plain failover never starts
WARM_UP = 30  # sends that build the client's origin p95 before measuring
EDGE_READY_S = 30.0  # how long to wait for a healthy edge before a run


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
    hedge_delays_ms: list[float] = field(default_factory=list)  # the delay in force at each hedged send
    attempts: Counter[str] = field(default_factory=Counter)  # "endpoint outcome" of every attempt
    ledgers: Counter[str] = field(default_factory=Counter)  # the answers' `ledger`
    origin_p95_ms: float | None = None
    edge_p99_ms: float | None = None  # direct sends to the edge right after the run


async def _edge_ready(stack: BenchStack) -> None:
    """The edge and its ledger answer before a run: a hedge against a broken edge measures nothing."""
    deadline = time.monotonic() + EDGE_READY_S
    async with httpx2.AsyncClient(timeout=5.0) as http:
        while time.monotonic() < deadline:
            try:
                reply = await http.get(
                    stack.edge.url + "/v1/ledger/ping", headers={"Authorization": "Bearer " + stack.service_token()}
                )
                if reply.status_code == 200 and reply.json().get("ledger") == "ok":
                    return
            except httpx2.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the edge ledger was not healthy within {EDGE_READY_S:.0f} s before a hedging run")


def _delay_ms(client: FailoverClient) -> float | None:
    delay = client.router.hedge_latency.delay_s(origin_timeout_s=client.router.config.origin_timeout_s)
    return None if delay is None else delay * 1000


async def _run_once(stack: BenchStack, proxy: SlowTailProxy, count: int, *, hedging: bool) -> RunFigures:
    await _edge_ready(stack)
    figures = RunFigures()
    proxy.enabled = False
    mode = "on" if hedging else "off"
    async with sdk_client(stack.client_env(proxy.url), hedging=hedging, hedge_budget_ratio=0.1) as client:
        for n in range(WARM_UP):
            await sdk_send(client, WS, f"hedge warm-up {mode} {n} {time.time_ns()}")
        figures.origin_p95_ms = client.router.metrics.for_endpoint(ORIGIN).stats().p95_ms
        proxy.enabled = True
        proxy.tail_dice.seed(11)  # both modes meet the same slow requests, in the same places
        for n in range(count):
            delay_ms = _delay_ms(client) if hedging else None
            started = time.perf_counter()
            result = await client.send_message(
                to="+16266635938", content=f"hedge {mode} {n} {time.time_ns()}", workspace_id=WS
            )
            elapsed = (time.perf_counter() - started) * 1000
            figures.latencies.append(elapsed)
            figures.attempts.update(f"{a.endpoint} {a.outcome}" for a in result.attempts)
            figures.ledgers[result.ledger or "none"] += 1
            if hedging and any(a.endpoint == "edge" for a in result.attempts):
                figures.hedged_ms.append(elapsed)
                figures.edge_wins += result.endpoint == "edge"
                if delay_ms is not None:
                    figures.hedge_delays_ms.append(delay_ms)
        figures.hedges = client.router.hedge_budget.spent
    proxy.enabled = False
    if hedging:
        edge = await direct_sends(stack.edge.url, stack.token(WS), WS, max(20, count // 2), f"hedge edge {mode}")
        figures.edge_p99_ms = percentile(edge, 99.0)
    return figures


def _reachable_ms(figures: RunFigures) -> float | None:
    """What hedging can reach: the run's median hedge delay plus the edge's own p99."""
    if not figures.hedge_delays_ms or figures.edge_p99_ms is None:
        return None
    return statistics.median(figures.hedge_delays_ms) + figures.edge_p99_ms


def _note(figures: RunFigures) -> str:
    median_hedged = fmt(statistics.median(figures.hedged_ms)) if figures.hedged_ms else "-"
    delay = fmt(statistics.median(figures.hedge_delays_ms)) if figures.hedge_delays_ms else "-"
    attempts = ", ".join(f"{name} {n}" for name, n in sorted(figures.attempts.items()))
    ledgers = ", ".join(f"{name} {n}" for name, n in sorted(figures.ledgers.items()))
    return (
        f"hedged run: origin p95 after warm-up {figures.origin_p95_ms} ms; hedge delay {delay} ms (median); "
        f"{figures.hedges} hedges, {figures.edge_wins} won by the edge; hedged sends took {median_hedged} ms "
        f"(median); edge p99 direct {fmt(figures.edge_p99_ms or float('nan'))} ms; attempts: {attempts}; "
        f"ledger: {ledgers}"
    )


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    count = settings.pick(120, 40)  # make bench must finish within 10 minutes on 2 cores
    section = Section("7", "Hedging against a slow-tailed origin")
    section.setup = (
        f"Failover on. A proxy in front of the real origin holds {SLOW_SHARE:.0%} of send requests (seeded) for "
        f"{SLOW_HOLD_S} s before forwarding them: under the 2 s origin timeout, so plain failover never starts. "
        f"Per run a fresh client warms up with {WARM_UP} sends, then sends {count} messages one after another, "
        "with SMSFAILOVER_HEDGING=1 (hedge delay max(origin p95, 2 x p50, 20 ms); budget 10 % of sends) and "
        f"without (the fixed 2 s timeout); {settings.repeats} runs. Before each run the edge ledger must answer "
        "its ping; after each hedged run, direct sends to the edge give the edge's own p99. Every attempt's "
        "outcome and every answer's `ledger` are counted, and provider calls are counted for duplicates."
    )
    origin = stack.origin(stack.sqlite_url("hedging"))
    await asyncio.to_thread(stack.run, origin)
    proxy = SlowTailProxy(origin.url)
    await proxy.start()
    try:
        await set_failover(stack, origin.url, WS, True)
        plain: list[RunFigures] = []
        hedged: list[RunFigures] = []
        before = await asyncio.to_thread(stack.provider_count)
        for _ in range(settings.repeats):
            plain.append(await _run_once(stack, proxy, count, hedging=False))
            hedged.append(await _run_once(stack, proxy, count, hedging=True))
            section.notes.append(_note(hedged[-1]))
        bodies = await asyncio.to_thread(stack.provider_bodies)
        logical = [b for b in bodies[before:] if b.startswith("hedge ")]
        doubled = sorted({b for b in logical if logical.count(b) > 1})
        if doubled:
            section.notes.append(f"sent twice: {', '.join(repr(b) for b in doubled[:5])}")
        _add_rows(section, plain, hedged, count)
        section.notes.append(
            f"provider calls for the runs' messages: {len(logical)}, {len(doubled)} sent twice; slow origin "
            f"requests held by the proxy: {proxy.slow}"
        )
        section.reading = _reading(plain, hedged, count, len(doubled))
    finally:
        await proxy.stop()
        await asyncio.to_thread(stack.stop, origin)
    return section


def _p99s(runs: list[RunFigures]) -> Spread:
    return Spread(tuple(percentile(run.latencies, 99.0) for run in runs))


def _add_rows(section: Section, plain: list[RunFigures], hedged: list[RunFigures], count: int) -> None:
    reachable = tuple(r for r in (_reachable_ms(run) for run in hedged) if r is not None)
    section.add(
        Row(
            "p99 send latency, hedging on",
            "ms",
            _p99s(hedged),
            Spread(reachable) if reachable else None,
            "median hedge delay + edge p99 (same run)",
            goal="<= 1.00x",
            max_ratio=1.0,
        )
    )
    for label, q in (("p50", 50.0), ("p99", 99.0)):
        section.add(
            Row(
                f"{label} send latency, hedging on",
                "ms",
                Spread(tuple(percentile(run.latencies, q) for run in hedged)),
                Spread(tuple(percentile(run.latencies, q) for run in plain)),
                "fixed 2 s timeout",
            )
        )
    section.add(
        Row(
            "extra edge requests from hedging",
            "% of sends",
            Spread(tuple(100.0 * run.hedges / count for run in hedged)),
            goal="<= 10 % + burst",
        )
    )


def _reading(plain: list[RunFigures], hedged: list[RunFigures], count: int, doubled: int) -> str:
    p99_on, p99_off = _p99s(hedged).median, _p99s(plain).median
    reachable = [r for r in (_reachable_ms(run) for run in hedged) if r is not None]
    edge_failed = sum(
        n
        for run in hedged
        for name, n in run.attempts.items()
        if name.startswith("edge ") and not name.endswith(("sent", "replayed", "cancelled"))
    )
    wins = sum(run.edge_wins for run in hedged)
    hedges = sum(run.hedges for run in hedged)
    cut = "cut" if p99_on < p99_off else "did not cut"
    parts = [
        f"With hedging the p99 is {fmt(p99_on)} ms against {fmt(p99_off)} ms with the fixed timeout: hedging {cut} the "
        f"tail. {hedges} hedges over {len(hedged)} runs, {wins} won by the edge, {edge_failed} edge attempts answered "
        "with neither a send nor a cancellation."
    ]
    if reachable:
        reach = statistics.median(reachable)
        verdict = "within" if p99_on <= reach else "above"
        parts.append(
            f"The p99 is {verdict} what hedging can reach, the hedge delay plus the edge's p99 ({fmt(reach)} ms)."
        )
    else:
        parts.append("No hedge ran, so there is no reachable figure to compare with.")
    extra = statistics.median(100.0 * run.hedges / count for run in hedged)
    parts.append(
        f"Hedging cost {fmt(extra)} % more requests to the edge; {doubled} messages reached the provider twice."
    )
    return " ".join(parts)
