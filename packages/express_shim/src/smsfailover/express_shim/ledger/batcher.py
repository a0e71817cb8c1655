"""Concurrent edge-ledger operations of one origin process share one request (`POST /v1/ledger/batch`).

An operation never waits for a timer: when fewer than `max_in_flight` batches are on the wire, whatever is queued
goes at once (an idle origin sends each claim alone, as before); operations that arrive while the wire is full
queue and leave together in the next batch. The edge runs a batch as one D1 transaction per shard and answers
each operation separately (docs/scaling.md).

A request that fails fails every operation in it with the same EdgeUnavailable, so the failure detector counts it
once (detector.py), as one observation of the edge, however many claims rode on it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from smsfailover.express_shim.edge_client import ERROR, EdgeClient, EdgeUnavailable

MAX_BATCH = 128  # operations per request (the edge takes up to 256)
MAX_IN_FLIGHT = 2  # batches on the wire at once: the next one fills while one is answered

Pending = tuple[dict[str, object], "asyncio.Future[dict[str, Any]]"]


class LedgerBatcher:
    def __init__(
        self,
        edge: EdgeClient,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._edge = edge
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._on_batch = on_batch
        self._queue: deque[Pending] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, op: dict[str, object]) -> dict[str, Any]:
        """The edge's answer to this one operation; EdgeUnavailable if its request or the operation failed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        self._dispatch()
        result = await future
        if "error" in result:
            error = result["error"] if isinstance(result["error"], dict) else {}
            raise EdgeUnavailable(
                f"POST /v1/ledger/batch: {op.get('op')} answered {result.get('status')} {error.get('code')}", ERROR
            )
        return result

    def _dispatch(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            batch = [(op, future) for op, future in batch if not future.done()]  # a cancelled caller's op is dropped
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Pending]) -> None:
        try:
            if self._on_batch is not None:
                self._on_batch(len(batch))
            results = await self._edge.ledger_batch([op for op, _ in batch])
        except EdgeUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        except Exception as exc:  # never leave a caller waiting
            failure = EdgeUnavailable(f"POST /v1/ledger/batch: {type(exc).__name__}", ERROR)
            failure.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._dispatch()
