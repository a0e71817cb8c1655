"""`python -m benchmarks [NUMBER ...]`: run the benchmarks (all, or the numbered ones), print the table and write
docs/BENCHMARKS.md (or BENCH_OUTPUT). BENCH_QUICK=1: a short smoke run of the same code."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from smsfailover.express_shim.processes import repo_root

from benchmarks import b1_router, b2_failover, b3_throughput, b4_ledger, b5_broadcast, b6_pyodide, b7_hedging
from benchmarks.framework import RunSettings, Section
from benchmarks.report import markdown, print_table, write
from benchmarks.stack import BenchStack

Benchmark = Callable[[BenchStack, RunSettings], Awaitable[Section]]
BENCHMARKS: dict[str, Benchmark] = {
    "1": b1_router.run,
    "2": b2_failover.run,
    "3": b3_throughput.run,
    "4": b4_ledger.run,
    "5": b5_broadcast.run,
    "6": b6_pyodide.run,
    "7": b7_hedging.run,
}


async def _one(number: str, bench: Benchmark, stack: BenchStack, settings: RunSettings) -> Section:
    started = time.perf_counter()
    print(f"== benchmark {number} ...", flush=True)
    try:
        section = await bench(stack, settings)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        section = Section(number, f"benchmark {number}", error=f"{type(exc).__name__}: {exc}")
    if not await asyncio.to_thread(stack.edge_d1_ok):  # the edge host has no failure mode of its own: say so if it did
        section.notes.append("the edge host's D1 no longer answered after this benchmark")
    section.elapsed_s = time.perf_counter() - started
    print(f"   done in {section.elapsed_s:.0f} s", flush=True)
    return section


async def _run_all(selected: list[str], stack: BenchStack, settings: RunSettings) -> list[Section]:
    return [await _one(number, BENCHMARKS[number], stack, settings) for number in selected]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    selected = [a for a in args if a in BENCHMARKS] or list(BENCHMARKS)
    settings = RunSettings.from_env()
    logging.getLogger("smsfailover").setLevel(logging.ERROR)  # the SDK's failover warnings are expected here
    output = Path(os.environ.get("BENCH_OUTPUT") or repo_root() / "docs" / "BENCHMARKS.md")
    base = Path(tempfile.mkdtemp(prefix="smsfailover-bench-"))
    stack = BenchStack(base)
    started = time.perf_counter()
    try:
        stack.start()
        sections = asyncio.run(_run_all(selected, stack, settings))
    finally:
        stack.stop_all()
    total_s = time.perf_counter() - started
    print_table(sections)
    write(output, markdown(sections, settings, total_s))
    print(f"wrote {output} ({total_s:.0f} s)", flush=True)
    failed = [s.number for s in sections if s.error]
    if failed:
        print(f"benchmarks that did not complete: {', '.join(failed)}; logs kept in {stack.logs}", flush=True)
        return 1
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
