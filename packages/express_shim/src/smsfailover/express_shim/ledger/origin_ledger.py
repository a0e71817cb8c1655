"""The ledger one origin send claims its key in (DESIGN.md, "Ledger authority" rules 1, 2 and 5).

    1. the origin's own SQL ledger, always first      a key it has seen is answered from its record: replay, 409,
                                                       unknown, key reused (whatever the setting or the edge)
    2. the edge ledger, while the edge may accept     taken there: the edge's record is kept here and answered;
       sends for the workspace (switch not `off`)     it is never sent. Claimed there: ledger "edge"
    3. no answer from the edge (timeout, 5xx, 401)    503 ledger_unavailable, nothing sent; this attempt's claim
                                                       is released here and, once it can be, there
    4. the edge definitely unreachable (detector)      sent on the local ledger alone, ledger "local", queued
                                                       for reconcile: the one declared exception

Completions and releases go here first, then to the edge; one the edge did not take is queued (queue.py). A
completion reaches the edge after the send has answered (EdgeCompletions): only the claim is on the send's path.
Until it lands, a retry at the edge finds the origin's live claim and is told 409 (in progress, retry), never a
second send; then it is answered with the replay. A retry at the origin is answered from the origin's own record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ledger import (
    CALL_BEGAN_UNRECORDED,
    Claimed,
    ClaimOutcome,
    IdempotencyLedger,
    InProgress,
    LedgerRecord,
    LedgerStore,
)
from smsfailover.core.ledger import Unknown as UnknownOutcome
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import EdgeUnavailable
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector
from smsfailover.express_shim.ledger.queue import PUSH, RELEASE, EdgeLedgerQueue
from smsfailover.express_shim.ledger.remote_store import EdgeLedger

Sleep = Callable[[float], Awaitable[None]]
CONNECT_RETRY_S = (0.1, 0.2)  # a refused connection is retried (the edge never saw it) so the detector can decide


class EdgeCompletions:
    """Edge completions in flight after their sends answered; drained (bounded) when the process stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, step: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


@dataclass(frozen=True, slots=True)
class LedgerParts:
    """What every OriginLedger of one process shares."""

    local: LedgerStore
    edge: EdgeLedger
    detector: EdgeLedgerDetector
    queue: EdgeLedgerQueue
    clock: Clock
    lease_s: float
    on_degraded_claim: Callable[[], None]
    on_unavailable: Callable[[str], None]
    sleep: Sleep = asyncio.sleep
    completions: EdgeCompletions = field(default_factory=EdgeCompletions)


class OriginLedger(IdempotencyLedger):
    """One request's view: `mode` says which ledger guarded its claim ("edge" or "local")."""

    def __init__(self, parts: LedgerParts, *, edge_may_accept: bool) -> None:
        super().__init__(parts.local, parts.clock, lease_s=parts.lease_s, mode="local", owner="origin")
        self._parts = parts
        self._edge_may_accept = edge_may_accept

    @property
    def standalone(self) -> bool:
        """Only the origin's own ledger: while the edge may accept sends, its claim comes between ours and the
        message row, and its completion after ours, so neither step can share our transaction."""
        return not self._edge_may_accept

    # -- claim --------------------------------------------------------------------------------------------------

    async def claim(self, workspace_id: str, key: str, fingerprint: str, endpoint: str) -> ClaimOutcome:
        record = self.new_claim(workspace_id, key, fingerprint, endpoint)
        outcome = await self.claim_record(record)  # rule 1: the origin's own record first
        if not self._edge_may_accept:
            return outcome
        if not isinstance(outcome, Claimed):
            return await self._refreshed(outcome, fingerprint)
        return await self._claim_at_edge(record)

    async def _claim_at_edge(self, record: LedgerRecord) -> ClaimOutcome:
        parts = self._parts
        if parts.detector.unreachable:
            return await self._degraded(record)
        try:
            claimed, held = await self._edge_claim(record)
        except EdgeUnavailable as exc:
            if exc.definitely_unreachable and parts.detector.unreachable:
                return await self._degraded(record)
            return await self._no_answer(record, exc)
        self.mode = "edge"
        if claimed:
            return Claimed(record)
        # Taken at the edge: its answer is final (rule 2). Keep its record in place of our claim and answer from it.
        await self.store.adopt(held, replacing=record.message_id)
        return await self._judged_as_kept(held, record.fingerprint)

    async def _edge_claim(self, record: LedgerRecord) -> tuple[bool, LedgerRecord]:
        """The edge claim; a refused connection is retried (never seen there) until the detector has decided."""
        parts = self._parts
        for pause in (*CONNECT_RETRY_S, None):
            try:
                answer = await parts.edge.claim(record)
            except EdgeUnavailable as exc:
                self._parts.detector.failed(exc)
                if not exc.definitely_unreachable or parts.detector.unreachable or pause is None:
                    raise
                await parts.sleep(pause)
                continue
            parts.detector.success()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _degraded(self, record: LedgerRecord) -> ClaimOutcome:
        """Rule 5: the edge is definitely unreachable; send on the local claim, queued for reconcile."""
        parts = self._parts
        self.mode = "local"
        await parts.queue.add(record, PUSH, "degraded", _ms(parts.clock.time()))
        parts.on_degraded_claim()
        log_event("degraded_local_claim", level=logging.WARNING, workspace_id=record.workspace_id)
        return Claimed(record)

    async def _no_answer(self, record: LedgerRecord, exc: EdgeUnavailable) -> ClaimOutcome:
        """The claim may or may not have landed at the edge: send nothing, free the key here now and there later."""
        parts = self._parts
        await self.store.release(record.workspace_id, record.key, parts.clock.time(), message_id=record.message_id)
        await parts.queue.add(record, RELEASE, exc.kind, _ms(parts.clock.time()))
        parts.on_unavailable(exc.kind)
        log_event("ledger_unavailable", level=logging.WARNING, workspace_id=record.workspace_id, reason=exc.reason)
        raise ApiError(
            503,
            "ledger_unavailable",
            "The shared idempotency ledger did not answer in time; nothing was sent. "
            "Retry with the same Idempotency-Key (the edge holds the same ledger).",
            headers={"Retry-After": "1"},
        )

    async def _refreshed(self, outcome: ClaimOutcome, fingerprint: str) -> ClaimOutcome:
        """A key another attempt holds and that is not final here: the edge may know its outcome by now.

        Asking cannot send anything; any failure to answer leaves the origin's own answer as it was."""
        if not isinstance(outcome, InProgress | UnknownOutcome) or self._parts.detector.unreachable:
            return outcome
        current = outcome.record
        try:
            held = await self._parts.edge.get(current.workspace_id, current.key)
        except EdgeUnavailable:
            return outcome  # a read never feeds the detector (rule 5)
        if held is None or held.message_id != current.message_id:
            return outcome
        if replace(held, call_began_at=current.call_began_at) == current:  # the edge knows no more than we do
            return outcome
        await self.store.adopt(held)
        return await self._judged_as_kept(held, fingerprint)

    async def _judged_as_kept(self, held: LedgerRecord, fingerprint: str) -> ClaimOutcome:
        """Judge the edge's record as this ledger now keeps it: the edge's copy of an origin claim carries no
        call-began mark (only the sender's own ledger has one), so judged alone it would look like a call that never
        began (NotSent) while the mark says the call did begin."""
        kept = await self.store.get(held.workspace_id, held.key)
        if kept is None or kept.message_id != held.message_id:
            kept = replace(held, call_began_at=CALL_BEGAN_UNRECORDED)
        return self.judge(kept, fingerprint)

    # -- lookup, complete, release ------------------------------------------------------------------------------

    async def lookup(self, workspace_id: str, key: str) -> ClaimOutcome | None:
        own = await super().lookup(workspace_id, key)
        if not self._edge_may_accept or self._parts.detector.unreachable:
            return own
        if own is not None:
            return await self._refreshed(own, own.record.fingerprint)
        try:
            held = await self._parts.edge.get(workspace_id, key)
        except EdgeUnavailable:
            return None  # a lookup never changes which ledger guards a send (rule 5)
        if held is None or not await self.store.adopt(held):
            return None
        return await super().lookup(workspace_id, key)

    async def complete(self, claim: LedgerRecord, message: dict[str, object]) -> None:
        await super().complete(claim, message)  # the origin's own record first
        if self.mode != "edge":
            return  # a degraded claim is already queued for reconcile
        self._parts.completions.start(self._complete_at_edge(claim, message))

    async def _complete_at_edge(self, claim: LedgerRecord, message: dict[str, object]) -> None:
        parts = self._parts
        try:
            try:
                await parts.edge.complete(claim, message, parts.clock.time())
            except EdgeUnavailable as exc:
                parts.detector.failed(exc)
                await parts.queue.add(claim, PUSH, "complete_unacknowledged", _ms(parts.clock.time()))
        except Exception as exc:  # a background step (the queue's write included): logged, never silently lost
            log_event("edge_complete_failed", level=logging.ERROR, error=type(exc).__name__)

    async def release(self, claim: LedgerRecord) -> None:
        parts = self._parts
        if claim.is_expired(parts.clock.time()):
            return  # see IdempotencyLedger.release
        await super().release(claim)
        if self.mode != "edge":
            return
        try:
            await parts.edge.release(claim.workspace_id, claim.key, claim.message_id, parts.clock.time())
        except EdgeUnavailable as exc:
            self._parts.detector.failed(exc)
            await parts.queue.add(claim, RELEASE, "release_unacknowledged", _ms(parts.clock.time()))


class LedgerSelection:
    """Builds each request's OriginLedger from the workspace's switch state."""

    def __init__(self, parts: LedgerParts, edge_may_accept: Callable[[str], Awaitable[bool]]) -> None:
        self.parts = parts
        self._edge_may_accept = edge_may_accept

    @property
    def detector(self) -> EdgeLedgerDetector:
        return self.parts.detector

    async def ledger_for(self, workspace_id: str) -> IdempotencyLedger:
        return OriginLedger(self.parts, edge_may_accept=await self._edge_may_accept(workspace_id))


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
