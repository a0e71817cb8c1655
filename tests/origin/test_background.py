"""Background rounds: a failing round is counted and the loop goes on; stop() ends every loop."""

from __future__ import annotations

import asyncio

from smsfailover.express_shim.background import BackgroundTasks, PeriodicTask


async def test_a_failing_round_does_not_stop_the_loop_and_stop_ends_it() -> None:
    rounds: list[int] = []
    errors: list[str] = []
    enough = asyncio.Event()

    async def flaky() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        if len(rounds) >= 3:
            enough.set()

    tasks = BackgroundTasks(on_error=errors.append)
    tasks.start([PeriodicTask("flaky", 0.0, flaky)])
    await asyncio.wait_for(enough.wait(), timeout=5)
    await tasks.stop(timeout_s=5)
    count = len(rounds)
    await asyncio.sleep(0)  # one loop turn: nothing runs any more

    assert errors == ["flaky"]
    assert len(rounds) == count >= 3


async def test_stop_cancels_a_round_that_does_not_finish() -> None:
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    tasks = BackgroundTasks()
    tasks.start([PeriodicTask("stuck", 1.0, stuck)])
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(tasks.stop(timeout_s=0.05), timeout=5)


async def test_wake_runs_the_next_round_without_waiting_for_the_interval() -> None:
    wake = asyncio.Event()
    rounds = 0
    first, second = asyncio.Event(), asyncio.Event()

    async def count() -> None:
        nonlocal rounds
        rounds += 1
        (first if rounds == 1 else second).set()

    tasks = BackgroundTasks()
    tasks.start([PeriodicTask("woken", 3600.0, count, wake=wake)])
    try:
        await asyncio.wait_for(first.wait(), timeout=5)
        wake.set()
        await asyncio.wait_for(second.wait(), timeout=5)
    finally:
        await tasks.stop(timeout_s=5)
    assert rounds == 2
