"""Benchmark 2: failover reaction (failover on): origin refusing connections, accepting and never answering,
and slow after sending. Latency of each of the first sends, then p50/p99 once the breaker is open, against
direct sends to the edge."""

from __future__ import annotations

import asyncio
import statistics

from smsfailover.express_shim.processes import free_port

from benchmarks.clients import direct_sends, sdk_client, sdk_send
from benchmarks.common import set_failover
from benchmarks.fault_proxy import FaultProxy, ProxyPlan
from benchmarks.framework import Row, RunSettings, Section, Spread, fmt, percentile
from benchmarks.stack import BenchStack

WS = "bench-failover"
FIRST_SENDS = 5  # 3 failures open the breaker; the 4th and 5th show the open breaker
SLOW_HOLD_S = 3.0  # past the 2 s origin timeout
ORIGIN_TIMEOUT_MS = 2000.0  # the client's default, which these runs use
FIRST_SEND_GOAL = 1.1  # the first send against a black-holed origin, over one origin timeout


async def _scenario(stack: BenchStack, origin_url: str, count: int) -> tuple[list[float], list[float], list[str]]:
    """(first sends' latencies, latencies after the breaker opened, the endpoints of the first sends)."""
    first: list[float] = []
    endpoints: list[str] = []
    after: list[float] = []
    async with sdk_client(stack.client_env(origin_url)) as client:
        for n in range(FIRST_SENDS):
            result = await client.send_message(to="+16266635938", content=f"reaction {n}", workspace_id=WS)
            first.append(result.latency_ms)
            endpoints.append(result.endpoint)
        for n in range(count):
            after.append(await sdk_send(client, WS, f"after open {n}"))
    return first, after, endpoints


async def _direct_edge(stack: BenchStack, count: int) -> list[float]:
    return await direct_sends(stack.edge.url, stack.token(WS), WS, count, "direct edge")


def _first_send_row(name: str, first_sends: list[float]) -> Row:
    """A fresh client's first send: the setting is read beside the origin attempt, so one origin timeout."""
    return Row(
        f"{name}: first send of a fresh client",
        "ms",
        Spread(tuple(first_sends)),
        Spread(tuple(ORIGIN_TIMEOUT_MS for _ in first_sends)),
        "the origin timeout",
        goal=f"<= {FIRST_SEND_GOAL:.1f}x",
        max_ratio=FIRST_SEND_GOAL,
    )


def _first_sends_summary(first_by_scenario: dict[str, list[list[float]]]) -> str:
    """Per scenario, the median over runs of each of the first sends' latencies."""
    parts = []
    for name, runs in first_by_scenario.items():
        medians = [statistics.median(run[i] for run in runs) for i in range(FIRST_SENDS)]
        parts.append(f"{name} " + " / ".join(f"{fmt(ms)}" for ms in medians) + " ms")
    return "; ".join(parts)


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    count = settings.pick(25, 6)
    section = Section("2", "Failover reaction: first sends, then the open breaker vs direct-to-edge")
    section.setup = (
        f"Failover on; default client settings (origin timeout 2 s, breaker after 3 failures, open 30 s). Per "
        f"scenario a fresh client sends {FIRST_SENDS} messages (their latencies listed below), then {count} more "
        f"once the breaker is open (p50/p99 per run, {settings.repeats} runs). Baseline: {count} direct httpx2 "
        "POSTs to the edge right after each run. Faults: refused = a closed port; blackhole = a proxy that "
        "accepts and never answers; "
        f"slow after sending = a proxy that forwards to the real origin (which sends) and holds the answer "
        f"{SLOW_HOLD_S:.0f} s."
    )
    first_by_scenario: dict[str, list[list[float]]] = {}
    origin = stack.origin(stack.sqlite_url("failover"))
    await asyncio.to_thread(stack.run, origin)
    proxy = FaultProxy(origin.url)
    await proxy.start()
    try:
        await set_failover(stack, origin.url, WS, True)
        scenarios = {
            "refused": (f"http://127.0.0.1:{free_port()}", ProxyPlan()),
            "blackhole": (proxy.url, ProxyPlan(mode="blackhole")),
            "slow after sending": (proxy.url, ProxyPlan(mode="slow_after", hold_s=SLOW_HOLD_S)),
        }
        for name, (url, plan) in scenarios.items():
            proxy.plan = plan
            runs = []
            direct = []
            for _ in range(settings.repeats):  # the baseline right after each run: the same machine load
                runs.append(await _scenario(stack, url, count))
                direct.append(await _direct_edge(stack, count))
            for label, q in (("p50", 50.0), ("p99", 99.0)):
                section.add(
                    Row(
                        f"{name}: {label} once open",
                        "ms",
                        Spread(tuple(percentile(after, q) for _, after, _ in runs)),
                        Spread(tuple(percentile(d, q) for d in direct)),
                        "direct to edge",
                        goal="<= 1.10x",
                        max_ratio=1.10,
                    )
                )
            first_by_scenario[name] = [first for first, _, _ in runs]
            if name == "blackhole":
                section.add(_first_send_row(name, [first[0] for first, _, _ in runs]))
            for first, _, endpoints in runs:
                sends = ", ".join(f"{fmt(ms)} ms ({endpoint})" for ms, endpoint in zip(first, endpoints, strict=True))
                section.notes.append(f"{name}: first sends {sends}")
    finally:
        proxy.plan = ProxyPlan()
        await proxy.stop()
        await asyncio.to_thread(stack.stop, origin)
    section.reading = (
        "The first three sends pay the fault, then the breaker opens and sends go straight to the edge: "
        f"{_first_sends_summary(first_by_scenario)}. The first send of each fresh client reads the workspace "
        "setting beside its origin attempt (the edge mirror only once the origin's read failed), so against a "
        "black-holed origin it pays one origin timeout, not one for the setting and another for the send. "
        "Verdicts (the once-open rows against direct-to-edge, the first send against the origin timeout): "
        f"{section.verdicts()}. In the slow-after-sending case the origin did send; the client's "
        "retry at the edge finds the key claimed in the shared ledger and gets the origin's message once it "
        "completes (the endpoint stays `origin`), so the provider sees each message once."
    )
    return section
