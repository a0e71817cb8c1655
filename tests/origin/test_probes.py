"""HealthProbes.refresh: the live poll's fresh probe, at most one per endpoint in flight, bounded in time."""

from __future__ import annotations

import asyncio

from smsfailover.core.clock import ManualClock
from smsfailover.express_shim.probes import HealthProbes


class CountingProbe:
    """A probe that answers `healthy` once `gate` is open (open by default), counting its calls."""

    def __init__(self, healthy: bool = True) -> None:
        self.healthy = healthy
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> tuple[bool, float]:
        self.calls += 1
        await self.gate.wait()
        return self.healthy, 1.0


async def test_only_results_older_than_the_age_are_probed_again() -> None:
    clock = ManualClock()
    origin, edge = CountingProbe(), CountingProbe()
    probes = HealthProbes({"origin": origin, "edge": edge}, clock.time)
    await probes.refresh(max_age_s=1.0, wait_s=1.0)  # never probed: both
    assert (origin.calls, edge.calls) == (1, 1)
    clock.advance(0.5)
    await probes.refresh(max_age_s=1.0, wait_s=1.0)  # fresh enough
    assert (origin.calls, edge.calls) == (1, 1)
    edge.healthy = False
    clock.advance(0.5)
    await probes.refresh(max_age_s=1.0, wait_s=1.0)
    assert (origin.calls, edge.calls) == (2, 2)
    assert probes.results["edge"].healthy is False
    assert probes.results["edge"].checked_at == clock.time()


async def test_concurrent_polls_share_one_probe_per_endpoint() -> None:
    clock = ManualClock()
    edge = CountingProbe()
    edge.gate.clear()
    probes = HealthProbes({"edge": edge}, clock.time)
    polls = [asyncio.ensure_future(probes.refresh(max_age_s=1.0, wait_s=60.0)) for _ in range(10)]
    round_ = asyncio.ensure_future(probes.run_once())
    for _ in range(5):
        await asyncio.sleep(0)  # let every caller reach the probe in flight
    edge.gate.set()
    await asyncio.gather(*polls, round_)
    assert edge.calls == 1
    assert probes.results["edge"].healthy is True


async def test_a_slow_probe_does_not_hold_the_poll_and_lands_for_the_next_one() -> None:
    clock = ManualClock()
    edge = CountingProbe(healthy=False)
    edge.gate.clear()
    probes = HealthProbes({"edge": edge}, clock.time)
    await probes.refresh(max_age_s=1.0, wait_s=0.0)  # answers at once with what is known
    assert probes.results["edge"].checked_at is None
    edge.gate.set()
    await probes.refresh(max_age_s=1.0, wait_s=60.0)  # joins the same probe, now ending
    assert edge.calls == 1
    assert probes.results["edge"].healthy is False


async def test_a_probe_that_raises_is_down_not_an_error() -> None:
    clock = ManualClock()

    async def broken() -> tuple[bool, float]:
        raise RuntimeError("bug")

    probes = HealthProbes({"edge": broken}, clock.time)
    await probes.refresh(max_age_s=1.0, wait_s=1.0)
    assert probes.results["edge"].healthy is False
    assert probes.results["edge"].checked_at == clock.time()
