"""Periodic background tasks with a clean start and stop (driven by the app's lifespan).

Each task is a coroutine function run every `interval_s`; a round that raises is logged and counted, and the
next round runs as usual, so one bad answer from the edge cannot stop the outbox or the sync for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smsfailover.core.log import log_event

Round = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PeriodicTask:
    name: str
    interval_s: float
    run_once: Round
    wake: asyncio.Event | None = None  # set it to run the next round now instead of after interval_s


class BackgroundTasks:
    def __init__(self, on_error: Callable[[str], None] | None = None) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._wakes: list[asyncio.Event] = []
        self._stopping = asyncio.Event()
        self._on_error = on_error

    def start(self, tasks: list[PeriodicTask]) -> None:
        self._stopping.clear()
        for spec in tasks:
            self._tasks.append(asyncio.create_task(self._loop(spec), name=f"smsfailover:{spec.name}"))

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Ask every loop to finish its current round; cancel whatever is still running after timeout_s."""
        self._stopping.set()
        for event in self._wakes:
            event.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _loop(self, spec: PeriodicTask) -> None:
        wake = spec.wake or asyncio.Event()
        self._wakes.append(wake)
        while not self._stopping.is_set():
            wake.clear()
            try:
                await spec.run_once()
            except Exception as exc:  # a failed round is reported and retried, never fatal to the loop
                log_event("background_round_failed", level=logging.WARNING, task=spec.name, error=type(exc).__name__)
                if self._on_error is not None:
                    self._on_error(spec.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=spec.interval_s)
