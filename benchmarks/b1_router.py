"""Benchmark 1: router overhead: FailoverClient.send_message against the origin versus a direct httpx2 POST of
the same request to the same origin; and in process, over a transport that answers at once, the SDK's own cost."""

from __future__ import annotations

import asyncio

import httpx2

from benchmarks import in_process
from benchmarks.clients import direct_send, sdk_client, sdk_send
from benchmarks.common import set_failover
from benchmarks.framework import Row, RunSettings, Section, Spread, percentile
from benchmarks.stack import BenchStack

GOALS = {"median": 1.03, "p99": 1.05}  # SDK / direct over HTTP
IN_PROCESS_GOAL = 1.3
CHUNK = 10  # alternate the two senders in small chunks, so drift on a shared machine hits both alike
WS_OFF = "bench-router-off"
WS_ON = "bench-router-on"


async def _compare(stack: BenchStack, url: str, workspace: str, count: int) -> tuple[list[float], list[float]]:
    """(SDK latencies, direct latencies) in ms, `count` sequential sends each."""
    token = stack.token(workspace)
    sdk: list[float] = []
    direct: list[float] = []
    async with sdk_client(stack.client_env(url)) as client, httpx2.AsyncClient(timeout=10.0) as http:
        await sdk_send(client, workspace, "warm-up")  # settings cache, connection pools
        await direct_send(http, url, token, workspace, "warm-up")
        while len(sdk) < count:
            for n in range(CHUNK):
                sdk.append(await sdk_send(client, workspace, f"router sdk {len(sdk)} {n}"))
            for n in range(CHUNK):
                direct.append(await direct_send(http, url, token, workspace, f"router direct {len(direct)} {n}"))
    return sdk, direct


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    counts = {WS_OFF: settings.pick(200, 20), WS_ON: settings.pick(30, 10)}
    section = Section("1", "Router overhead: FailoverClient.send_message vs a direct httpx2 POST")
    section.setup = (
        f"Sequential sends to one origin (SQLite): {counts[WS_OFF]} per sender per run with failover off, "
        f"{counts[WS_ON]} with failover on (the origin then claims through the edge ledger, so each send is slower "
        f"and noisier), {settings.repeats} runs; the two senders alternate every {CHUNK} sends. The SDK mints its "
        "own idempotency key and token (one per workspace, reused for half its life); the direct POST sends the "
        f"same body with a fresh key. In process: {settings.pick(15, 3)} turns of {in_process.CHUNK} sends per "
        "sender over one httpx2.MockTransport that answers at once (failover off, setting cached), alternating."
    )
    origin = stack.origin(stack.sqlite_url("router"))
    await asyncio.to_thread(stack.run, origin)
    try:
        await set_failover(stack, origin.url, WS_ON, True)
        for workspace, label in ((WS_OFF, "failover off"), (WS_ON, "failover on")):
            runs = [await _compare(stack, origin.url, workspace, counts[workspace]) for _ in range(settings.repeats)]
            for name, q in (("median", 50.0), ("p99", 99.0)):
                section.add(
                    Row(
                        f"{label}: {name} latency",
                        "ms",
                        Spread(tuple(percentile(sdk, q) for sdk, _ in runs)),
                        Spread(tuple(percentile(direct, q) for _, direct in runs)),
                        "direct httpx2",
                        goal=f"<= {GOALS[name]:.2f}x",
                        max_ratio=GOALS[name],
                    )
                )
    finally:
        await asyncio.to_thread(stack.stop, origin)
    sdk_us, direct_us = await in_process.compare(settings.pick(15, 3))
    section.add(
        Row(
            "in process, failover off: per send",
            "µs",
            Spread(tuple(sdk_us)),
            Spread(tuple(direct_us)),
            "direct httpx2, same MockTransport",
            goal=f"<= {IN_PROCESS_GOAL:.1f}x",
            max_ratio=IN_PROCESS_GOAL,
        )
    )
    section.reading = _reading(section)
    return section


def _reading(section: Section) -> str:
    off, inner = section.rows[0], section.rows[-1]
    extra_ms = off.measured.median - (off.baseline.median if off.baseline else 0.0)
    extra_us = inner.measured.median - (inner.baseline.median if inner.baseline else 0.0)
    return (
        f"SDK / direct: {section.verdicts()}. With failover off the SDK adds {extra_ms:.2f} ms per send at the "
        f"median over HTTP; in process, with the network taken away, its own work (settings cache, key, token "
        f"cache, router, metrics, result) costs {extra_us:.0f} µs a send on top of the direct call's "
        f"{inner.baseline.median if inner.baseline else 0:.0f} µs. With failover on each send waits on the edge "
        "ledger, so both senders are slower and noisier. p99 over a few hundred sends is the slowest few and "
        "moves with whatever else the shared machine is doing."
    )
