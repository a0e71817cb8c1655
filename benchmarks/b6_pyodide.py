"""Benchmark 6: the edge under Pyodide: import time of core, and per-request time of the worker on the local host."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time

import httpx2
from smsfailover.express_shim.processes import repo_root

from benchmarks.common import auth, new_key, send_body, set_failover
from benchmarks.framework import Row, RunSettings, Section, Spread, percentile
from benchmarks.stack import BenchStack

IMPORTS = "import smsfailover.core.messages_api, smsfailover.core.sql, smsfailover.core.router, smsfailover.core.auth"
WS = "bench-edge"  # failover enabled: the edge sends only for such workspaces
ORIGIN_WS = "bench-edge-baseline"  # failover off: the origin's own send path, the baseline
IMPORT_ROW = "import core (the worker's modules)"


def _pyodide_import(stack: BenchStack) -> dict[str, float]:
    node = shutil.which("node") or "node"
    script = repo_root() / "benchmarks" / "pyodide_import.mjs"
    pyodide = repo_root() / "node_modules" / "pyodide"
    done = subprocess.run(  # noqa: S603 (our own script)
        [node, str(script), str(pyodide), str(stack.python_modules)],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cpython_import() -> float:
    code = f"import time; t = time.perf_counter(); {IMPORTS}; print((time.perf_counter() - t) * 1000)"
    done = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return float(done.stdout.strip())


async def _per_request(url: str, token: str, count: int, ws: str = WS) -> tuple[list[float], list[float]]:
    """Sequential requests: (health latencies, send latencies) in ms."""
    health: list[float] = []
    sends: list[float] = []
    async with httpx2.AsyncClient(timeout=10.0) as http:
        await http.get(url + "/v1/health")  # warm the connection
        for n in range(count):
            started = time.perf_counter()
            await http.get(url + "/v1/health")
            health.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            reply = await http.post(
                url + "/v1/messages", json=send_body(ws, f"edge bench {n}"), headers=auth(token, new_key())
            )
            sends.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 201:
                raise RuntimeError(f"{url} answered {reply.status_code} to a send: {reply.text[:200]}")
    return health, sends


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    count = settings.pick(60, 8)
    section = Section("6", "Edge under Pyodide: import time of core, per-request time of the worker")
    section.setup = (
        "Import: a fresh npm pyodide (Python 3.14, Node) per run imports the modules the worker uses from the vendored "
        f"`python_modules/`; baseline: the same imports in a fresh CPython {sys.version.split()[0]}. Per request: "
        f"{count} sequential `GET /v1/health` and `POST /v1/messages` (fresh key) to the local edge host, median "
        f"per run, {settings.repeats} runs; baseline: the same requests to the origin (SQLite, failover off)."
    )
    imports = [await asyncio.to_thread(_pyodide_import, stack) for _ in range(settings.repeats)]
    cpython = [await asyncio.to_thread(_cpython_import) for _ in range(settings.repeats)]
    section.add(Row("loadPyodide()", "ms", Spread(tuple(r["load_pyodide_ms"] for r in imports))))
    section.add(
        Row(IMPORT_ROW, "ms", Spread(tuple(r["import_core_ms"] for r in imports)), Spread(tuple(cpython)), "CPython")
    )
    origin = stack.origin(stack.sqlite_url("edge-baseline"))
    await asyncio.to_thread(stack.run, origin)
    token, origin_token = stack.token(WS), stack.token(ORIGIN_WS)
    edge_runs = []
    origin_runs = []
    try:
        await set_failover(stack, origin.url, WS, True)
        for _ in range(settings.repeats):
            edge_runs.append(await _per_request(stack.edge.url, token, count))
            origin_runs.append(await _per_request(origin.url, origin_token, count, ORIGIN_WS))
    finally:
        await asyncio.to_thread(stack.stop, origin)
    for index, name in ((0, "GET /v1/health"), (1, "POST /v1/messages")):
        for label, q in (("median", 50.0), ("p99", 99.0)):
            goal = index == 1 and label == "median"  # the goal: an edge send within 6x the origin's
            section.add(
                Row(
                    f"{name}, {label}",
                    "ms",
                    Spread(tuple(percentile(r[index], q) for r in edge_runs)),
                    Spread(tuple(percentile(r[index], q) for r in origin_runs)),
                    "origin",
                    goal="<= 6x" if goal else "",
                    max_ratio=6.0 if goal else None,
                )
            )
    rows = {row.case: row for row in section.rows}
    send = rows["POST /v1/messages, median"]
    core = rows[IMPORT_ROW]
    section.reading = (
        f"Under Pyodide the worker's imports of core take {core.measured.median:,.0f} ms "
        f"({(core.ratio or 0):.1f}x CPython), on top of about "
        f"{rows['loadPyodide()'].measured.median / 1000:.1f} s to load Pyodide itself; workerd snapshots the "
        "initialised runtime, so in production this is paid at deploy, not per request, but it is the cold start "
        f"here. A send through the local edge host takes {send.measured.median:,.0f} ms at the median, "
        f"{(send.ratio or 0):.1f}x the origin's (goal 6x): two D1 round trips (the claim with the message row; "
        "the row update with the completion) around the provider call, each a request into Miniflare's D1 of "
        "about 2 ms here, plus the host's crossing from Node into Pyodide."
    )
    return section
