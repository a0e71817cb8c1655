"""Concurrent edge-ledger operations of one origin process share one request (`POST /v1/ledger/batch`).

A claim never waits for a timer: when fewer than `max_in_flight` batches are on the wire, whatever is queued goes
on the event loop's next turn (an idle origin sends each claim alone, as before; the turn lets callers that woke
together, e.g. on the previous batch's answer, join one batch instead of the first going alone). Claims that
arrive while the wire is full queue and leave together in the next batch. Completions are off the send's path
(origin_ledger.py), so they are `lazy`: they ride along with the next claim's batch, or leave on their own after
`lazy_s` when no claim comes. The edge runs a batch as one D1 transaction per shard and answers each operation
separately (docs/scaling.md).

A request that fails fails every operation in it with the same EdgeUnavailable. A claim waits for its answer only
within its claim budget (origin_ledger.py); a claim given up before its batch left is dropped from it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from smsfailover.express_shim.edge_client import ERROR, EdgeClient, EdgeUnavailable

MAX_BATCH = 128  # operations per request (the edge takes up to 256)
MAX_IN_FLIGHT = 1  # batches on the wire at once: the next one fills while one is answered
LAZY_S = 0.02  # the longest a lazy operation waits for a claim to ride along with

Pending = tuple[dict[str, object], "asyncio.Future[dict[str, Any]]", bool]  # (operation, its answer, lazy)


class LedgerBatcher:
    def __init__(
        self,
        edge: EdgeClient,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
        lazy_s: float = LAZY_S,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._edge = edge
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._lazy_s = lazy_s
        self._on_batch = on_batch
        self._queue: deque[Pending] = deque()
        self._urgent = 0  # queued operations that may not wait (claims)
        self._lazy_due = False  # a lazy operation has waited lazy_s
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight = 0
        self._dispatch_soon: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, op: dict[str, object], *, lazy: bool = False) -> dict[str, Any]:
        """The edge's answer to this one operation; EdgeUnavailable if its request or the operation failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._queue.append((op, future, lazy))
        if lazy:
            if self._timer is None:
                self._timer = loop.call_later(self._lazy_s, self._lazy_expired)
        else:
            self._urgent += 1
        self._schedule()
        result = await future
        if "error" in result:
            error = result["error"] if isinstance(result["error"], dict) else {}
            raise EdgeUnavailable(
                f"POST /v1/ledger/batch: {op.get('op')} answered {result.get('status')} {error.get('code')}", ERROR
            )
        return result

    def _schedule(self) -> None:
        if self._dispatch_soon is None:
            self._dispatch_soon = asyncio.get_running_loop().call_soon(self._dispatch)

    def _lazy_expired(self) -> None:
        self._timer = None
        self._lazy_due = bool(self._queue)
        self._dispatch()

    def _dispatch(self) -> None:
        self._dispatch_soon = None
        while self._queue and self._in_flight < self._max_in_flight and (self._urgent or self._lazy_due):
            taken = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            self._urgent -= sum(1 for *_, lazy in taken if not lazy)
            if not self._queue:  # every lazy operation left with this batch
                self._lazy_due = False
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            # a cancelled caller's operation is dropped: it never reached the edge
            batch = [(op, future) for op, future, _lazy in taken if not future.done()]
            if not batch:
                continue
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[dict[str, object], asyncio.Future[dict[str, Any]]]]) -> None:
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
            for _, future in batch:  # cancelled mid-request: every caller still gets an answer
                if not future.done():
                    future.set_exception(EdgeUnavailable("POST /v1/ledger/batch: cancelled", ERROR))
            self._in_flight -= 1
            self._schedule()
