"""Benchmark 7 (slot): hedging (issue 8) against a slow-tailed origin: p99 with hedging vs a fixed timeout, and
the extra load hedging adds. Fills in once the router has hedging; until then it says so and measures nothing."""

from __future__ import annotations

import dataclasses

from smsfailover.core.config import ClientConfig

from benchmarks.framework import RunSettings, Section
from benchmarks.stack import BenchStack


def hedging_available() -> bool:
    """Issue 8 adds a hedge delay to the client configuration; its benchmark waits for that."""
    return any("hedg" in f.name for f in dataclasses.fields(ClientConfig))


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    section = Section("7", "Hedging against a slow-tailed origin (issue 8)")
    if not hedging_available():
        section.reading = (
            "Not measured: hedging (issue 8) has not landed in the router yet. This slot will compare p99 latency "
            "with hedging against the fixed 2 s timeout, with an origin whose answers have a slow tail (a few per "
            "cent held past the hedge delay), and count the extra requests hedging sends to the edge."
        )
        return section
    section.reading = "Hedging has landed, but its benchmark has not been written yet: run it once it is."
    return section
