"""Benchmark 5: a broadcast through the CLI with bounded concurrency while the origin fails 10 % of requests."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import set_failover
from benchmarks.fault_proxy import FaultProxy, ProxyPlan
from benchmarks.framework import Row, RunSettings, Section, Spread
from benchmarks.stack import BenchStack

WS_FAILOVER = "bench-broadcast"
WS_PLAIN = "bench-broadcast-plain"
CONCURRENCY = 32  # as benchmark 3: enough concurrent sends for the origin's ledger batches to fill
FAIL_RATIO = 0.10
BREAKER_OPEN_S = 5.0
TIMEOUT_S = 900.0
# BENCH_BROADCAST_MESSAGES overrides the size (BENCH_QUICK=1 runs 60).
DEFAULT_MESSAGES = 10_000


@dataclass(frozen=True, slots=True)
class BroadcastRun:
    wall_s: float
    peak_rss_mb: float
    exit_code: int
    summary: dict[str, object]
    received: int
    duplicates: int

    @property
    def per_second(self) -> float:
        return int(str(self.summary.get("sent", 0))) / self.wall_s if self.wall_s else 0.0


def _write_csv(path: Path, run_id: str, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "content"])
        for n in range(count):
            writer.writerow(["+16266635938", f"broadcast {run_id} row {n}"])


def _run_cli(env: dict[str, str], argv: list[str]) -> tuple[float, float, int, str]:
    """Run the CLI; (wall seconds, peak RSS in MB of that process alone, exit code, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode, out


async def broadcast(stack: BenchStack, origin_url: str, workspace: str, count: int) -> BroadcastRun:
    run_id = uuid.uuid4().hex[:10]
    path = stack.base / f"broadcast-{run_id}.csv"
    _write_csv(path, run_id, count)
    env = {**stack.client_env(origin_url), "SMSFAILOVER_BREAKER_OPEN_S": str(BREAKER_OPEN_S)}
    argv = [sys.executable, "-m", "smsfailover.core.cli", "broadcast", "--workspace", workspace, "--csv", str(path)]
    argv += ["--concurrency", str(CONCURRENCY), "--broadcast-id", run_id, "--json"]
    wall, rss, code, out = await asyncio.to_thread(_run_cli, env, argv)
    try:
        summary = json.loads(out)
    except json.JSONDecodeError:
        summary = {"error": out[-500:]}
    bodies = Counter(b for b in await asyncio.to_thread(stack.provider_bodies) if f"broadcast {run_id} " in b)
    duplicates = sum(n - 1 for n in bodies.values())
    return BroadcastRun(wall, rss, code, summary, sum(bodies.values()), duplicates)


def _failed(run: BroadcastRun) -> int:
    failed = run.summary.get("failed", [])
    return len(failed) if isinstance(failed, list) else 0


def _describe(name: str, run: BroadcastRun) -> str:
    s = run.summary
    failed = s.get("failed", [])
    unknown = s.get("unknown", [])
    return (
        f"{name}: exit {run.exit_code}, sent {s.get('sent')} by endpoint {s.get('by_endpoint')}, "
        f"failed {len(failed) if isinstance(failed, list) else failed}, "
        f"unknown {len(unknown) if isinstance(unknown, list) else unknown}; "
        f"the provider received {run.received}, duplicates {run.duplicates}; wall {run.wall_s:.1f} s, "
        f"peak RSS {run.peak_rss_mb:.0f} MB"
    )


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    count = settings.pick(int(os.environ.get("BENCH_BROADCAST_MESSAGES", DEFAULT_MESSAGES)), 60)
    section = Section("5", f"Broadcast: {count:,} messages through the CLI, origin failing 10 %")
    section.setup = (
        f"`smsfailover broadcast --concurrency {CONCURRENCY}` (a separate process) over a {count:,}-row CSV; failover "
        f"on; a proxy in front of the real origin answers 502 to {FAIL_RATIO:.0%} of requests (seeded dice), "
        f"which the router fails over to the edge; breaker open time {BREAKER_OPEN_S:.0f} s instead of 30 s so an "
        "opening does not dominate a short run. One run (a long benchmark). Baseline: the same broadcast, same "
        "size, failover off and no faults (the origin's own ledger): what a broadcast costs without this system."
    )
    origin = stack.origin(stack.sqlite_url("broadcast"))
    await asyncio.to_thread(stack.run, origin)
    proxy = FaultProxy(origin.url)
    await proxy.start()
    try:
        plain = await broadcast(stack, origin.url, WS_PLAIN, count)
        await set_failover(stack, origin.url, WS_FAILOVER, True)
        proxy.plan = ProxyPlan(mode="fail_ratio", ratio=FAIL_RATIO)
        faulty = await broadcast(stack, proxy.url, WS_FAILOVER, count)
    finally:
        await proxy.stop()
        await asyncio.to_thread(stack.stop, origin)
    section.add(
        Row(
            "wall time",
            "s",
            Spread((faulty.wall_s,)),
            Spread((plain.wall_s,)),
            "failover off, no faults",
            goal="<= 1.5x",
            max_ratio=1.5,
        )
    )
    section.add(
        Row(
            "messages per second",
            "msg/s",
            Spread((faulty.per_second,)),
            Spread((plain.per_second,)),
            "failover off, no faults",
            better="higher",
        )
    )
    section.add(
        Row(
            "peak memory of the CLI",
            "MB",
            Spread((faulty.peak_rss_mb,)),
            Spread((plain.peak_rss_mb,)),
            "failover off, no faults",
        )
    )
    section.add(Row("duplicates at the provider", "messages", Spread((float(faulty.duplicates),)), goal="0"))
    section.notes += [_describe("failover on, 10 % origin 502s", faulty), _describe("baseline", plain)]
    section.notes.append(f"the proxy injected {proxy.injected} origin failures")
    by_endpoint = faulty.summary.get("by_endpoint", {})
    edge_sent = by_endpoint.get("edge", 0) if isinstance(by_endpoint, dict) else 0
    section.reading = (
        f"Duplicates: {faulty.duplicates} (must be 0) over {faulty.received:,} provider messages for {count:,} rows; "
        f"{_failed(faulty)} rows failed (both the origin and the edge attempt failed; the CLI reports them and a "
        "re-run of the same broadcast id sends only those). "
        f"The proxy failed {proxy.injected} origin requests; the edge sent {edge_sent} messages, more than that "
        "because each time three failures came in a row the breaker opened and sent everything to the edge for "
        f"{BREAKER_OPEN_S:.0f} s. With failover on the broadcast ran at {faulty.per_second:,.0f} msg/s against "
        f"{plain.per_second:,.0f} without ({faulty.wall_s / plain.wall_s if plain.wall_s else 0:.2f}x the wall "
        "time, goal 1.5x): every origin send also claims and completes its key in the edge ledger (batched with "
        "the other concurrent sends, benchmark 4), and every edge send is a Pyodide request on this host's one "
        "edge instance. Peak memory is the CLI process alone: it schedules one task per row up front, so it grows "
        "with the CSV."
    )
    return section
