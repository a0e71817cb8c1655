"""The ledger one origin send claims its key in (DESIGN.md, "Ledger authority" rules 1, 2 and 5).

    1. the origin's own SQL ledger, always first      a key it has seen is answered from its record: replay, 409,
                                                       unknown, key reused (whatever the setting or the edge)
    2. the edge ledger, while the edge may accept     taken there: the edge's record is kept here and answered;
       sends for the workspace (switch not `off`)     it is never sent. Claimed there: ledger "edge"
    3. no answer from the edge within the claim       503 ledger_unavailable at once, nothing sent; this attempt's
       budget (any failure: refused, timeout, 5xx)    claim stays here (the key waits for the edge's answer and is
                                                       never sent on the local ledger) and is freed there
    4. degraded mode (detector.py: no origin process  sent on the local ledger alone, ledger "local", queued
       reached the edge for the failover budget)      for reconcile: the one declared exception

Completions and releases go here first, then to the edge; one the edge did not take is queued (queue.py). A
completion reaches the edge after the send has answered (EdgeCompletions): only the claim is on the send's path.
Until it lands, a retry at the edge finds the origin's live claim and is told 409 (in progress, retry), never a
second send; then it is answered with the replay. A retry at the origin is answered from the origin's own record.

Truth after a crash (DESIGN.md): an origin claim whose call never began is settled `not_sent` only once the edge
ledger has been asked, by claiming the same attempt there (first writer wins): another attempt's record there takes
the claim's place here; while the edge cannot be asked the key stays unknown.
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
    LedgerState,
    LedgerStore,
    NotSent,
    is_not_sent,
)
from smsfailover.core.ledger import Unknown as UnknownOutcome
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import NO_ANSWER, EdgeUnavailable
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector
from smsfailover.express_shim.ledger.queue import DEGRADED, PUSH, RELEASE, EdgeLedgerQueue
from smsfailover.express_shim.ledger.remote_store import EdgeLedger

Sleep = Callable[[float], Awaitable[None]]
CLAIM_BUDGET_S = 0.4  # an edge claim and its one retry: well under a quarter of the client's 2 s origin timeout
RETRY_PAUSE_S = 0.05  # before the one retry of a claim the edge never saw (a refused connection)


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
    claim_budget_s: float = CLAIM_BUDGET_S


class OriginLedger(IdempotencyLedger):
    """One request's view: `mode` says which ledger guarded its claim ("edge" or "local")."""

    def __init__(self, parts: LedgerParts, *, edge_may_accept: bool) -> None:
        super().__init__(parts.local, parts.clock, lease_s=parts.lease_s, mode="local", owner="origin")
        self._parts = parts
        self._edge_may_accept = edge_may_accept
        self._local_claim = False  # this request claimed on the local ledger alone (degraded): reconcile pushes it

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
            return await self._refreshed(outcome, fingerprint, claiming=True)
        return await self._claim_at_edge(record)

    async def _claim_at_edge(self, record: LedgerRecord) -> ClaimOutcome:
        parts = self._parts
        if parts.detector.unreachable:
            return await self._degraded(record)
        try:
            claimed, held = await self._edge_claim(record)
        except EdgeUnavailable as exc:
            return await self._no_answer(record, exc)
        self.mode = "edge"
        if claimed:
            return Claimed(record)
        # Taken at the edge: its answer is final (rule 2). Keep its record in place of our claim and answer from it.
        await self.store.adopt(held, replacing=record.message_id)
        return await self._judged_as_kept(held, record.fingerprint)

    async def _edge_claim(self, record: LedgerRecord) -> tuple[bool, LedgerRecord]:
        """The edge claim within the claim budget; one retry when the edge never saw the first (refused)."""
        parts = self._parts
        deadline = parts.clock.monotonic() + parts.claim_budget_s
        while True:
            remaining = deadline - parts.clock.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    answer = await parts.edge.claim(record)
            except TimeoutError:
                exc = EdgeUnavailable(f"the edge claim took longer than {parts.claim_budget_s:g} s", NO_ANSWER)
                parts.detector.failed(exc)
                raise exc from None
            except EdgeUnavailable as exc:
                parts.detector.failed(exc)
                if not exc.definitely_unreachable or deadline - parts.clock.monotonic() < 2 * RETRY_PAUSE_S:
                    raise
                await parts.sleep(RETRY_PAUSE_S)
                continue
            parts.detector.success()
            return answer

    async def _degraded(self, record: LedgerRecord) -> ClaimOutcome:
        """Rule 5: no origin process reaches the edge ledger; send on the local claim, queued for reconcile."""
        parts = self._parts
        self.mode = "local"
        self._local_claim = True
        await parts.queue.add(record, PUSH, DEGRADED, _ms(parts.clock.time()))
        parts.on_degraded_claim()
        log_event("degraded_local_claim", level=logging.WARNING, workspace_id=record.workspace_id)
        return Claimed(record)

    async def _no_answer(self, record: LedgerRecord, exc: EdgeUnavailable) -> ClaimOutcome:
        """The claim may or may not have landed at the edge: send nothing. The claim stays here, so the key is never
        sent on the local ledger later (a retry gets 409, then unknown or the edge's record); at the edge it is
        freed now (in the background, queued if that fails too), so the client's failover can send there."""
        parts = self._parts
        parts.completions.start(self._release_at_edge(record, exc.kind))
        parts.on_unavailable(exc.kind)
        log_event("ledger_unavailable", level=logging.WARNING, workspace_id=record.workspace_id, reason=exc.reason)
        raise ApiError(
            503,
            "ledger_unavailable",
            "The shared idempotency ledger did not answer in time; nothing was sent. "
            "Retry with the same Idempotency-Key (the edge holds the same ledger).",
            headers={"Retry-After": "1"},
        )

    async def _release_at_edge(self, record: LedgerRecord, reason: str) -> None:
        parts = self._parts
        try:
            try:
                await parts.edge.release(record.workspace_id, record.key, record.message_id, parts.clock.time())
            except EdgeUnavailable as exc:
                parts.detector.failed(exc)
                await parts.queue.add(record, RELEASE, reason, _ms(parts.clock.time()))
        except Exception as exc:  # a background step (the queue's write included): logged, never silently lost
            log_event("edge_release_failed", level=logging.ERROR, error=type(exc).__name__)

    async def _refreshed(self, outcome: ClaimOutcome, fingerprint: str, *, claiming: bool = False) -> ClaimOutcome:
        """A key another attempt holds and that is not final here: the edge may know its outcome by now.

        Asking cannot send anything; a failure to answer leaves the origin's own answer as it was, except that
        `not_sent` is never answered without the edge's word (confirm_not_sent). `claiming`: a send's retry, which
        may take over a live claim of ours whose call has not begun (_take_over)."""
        if isinstance(outcome, NotSent):
            return await self.confirm_not_sent(outcome.record)
        if not isinstance(outcome, InProgress | UnknownOutcome) or self._parts.detector.unreachable:
            return outcome
        current = outcome.record
        if claiming and isinstance(outcome, InProgress) and self._never_began_here(current):
            return await self._take_over(outcome, fingerprint)
        try:
            held = await self._parts.edge.get(current.workspace_id, current.key)
        except EdgeUnavailable:
            return outcome  # a read never changes which ledger guards a send (rule 5)
        if held is None or held.state is LedgerState.RELEASED:
            return outcome
        if held.message_id != current.message_id:
            # Another attempt holds the key at the edge. Ours never began (no mark): the edge's record is the key's
            # truth (e.g. our claim was committed here, the process died before its edge claim, the client failed
            # over). The store refuses if a mark was written meanwhile.
            if not self._never_began_here(current) or not await self.store.adopt(held, replacing=current.message_id):
                return outcome
            return await self._judged_as_kept(held, fingerprint)
        if replace(held, call_began_at=current.call_began_at) == current:  # the edge knows no more than we do
            return outcome
        await self.store.adopt(held)
        return await self._judged_as_kept(held, fingerprint)

    async def _take_over(self, outcome: InProgress, fingerprint: str) -> ClaimOutcome:
        """A retry of a key whose live claim here has not begun its call (its edge claim got no answer and it was
        answered 503, or it is still on its way to the edge): the retry claims the key at the edge afresh, the one
        place it may be sent from (rule 5). The edge decides: taken there by the earlier claim, it is still in
        flight; by another attempt, that attempt's record is the answer; ours: the fresh claim replaces the earlier
        one here (refused if its call began meanwhile) and is sent."""
        current = outcome.record
        fresh = self.new_claim(current.workspace_id, current.key, fingerprint, current.endpoint)
        try:
            claimed, held = await self._edge_claim(fresh)
        except EdgeUnavailable as exc:
            return await self._no_answer(fresh, exc)
        self.mode = "edge"
        if claimed:
            if await self.store.adopt(fresh, replacing=current.message_id):
                return Claimed(fresh)
            self._parts.completions.start(self._release_at_edge(fresh, "taken_over_here"))
            return outcome
        if held.message_id == current.message_id or not await self.store.adopt(held, replacing=current.message_id):
            return outcome
        return await self._judged_as_kept(held, fingerprint)

    async def confirm_not_sent(self, record: LedgerRecord) -> ClaimOutcome:
        """Truth after a crash: an origin claim of ours whose call never began, lease over, is NotSent only once
        the edge ledger agrees, while the edge may accept sends for the workspace. The same attempt is claimed
        there (first writer wins, so no edge send of the key can begin after this answer): taken, or already ours
        there: NotSent, and its completion goes to the edge too. Another attempt's record there replaces ours
        here and is answered. No answer: unknown, until the edge can be asked."""
        if not self._edge_may_accept:
            return NotSent(record)
        if self._parts.detector.unreachable:
            return UnknownOutcome(record)
        try:
            claimed, held = await self._parts.edge.claim(record)
        except EdgeUnavailable as exc:
            self._parts.detector.failed(exc)
            return UnknownOutcome(record)
        self._parts.detector.success()
        self.mode = "edge"
        if claimed or (held.message_id == record.message_id and held.state is LedgerState.CLAIMED):
            return NotSent(record)
        if not await self.store.adopt(held, replacing=record.message_id):
            return UnknownOutcome(record)  # a mark was written meanwhile: the provider's record decides
        log_event("ledger.adopted_edge_record", workspace_id=record.workspace_id, state=held.state.value)
        return await self._judged_as_kept(held, record.fingerprint)

    def _never_began_here(self, record: LedgerRecord) -> bool:
        return record.state is LedgerState.CLAIMED and self.never_began(record)

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
        if not self._edge_may_accept:
            return own
        if own is not None:
            return await self._refreshed(own, own.record.fingerprint)
        if self._parts.detector.unreachable:
            return None
        try:
            held = await self._parts.edge.get(workspace_id, key)
        except EdgeUnavailable:
            return None  # a lookup never changes which ledger guards a send (rule 5)
        if held is None or not await self.store.adopt(held):
            return None
        return await super().lookup(workspace_id, key)

    async def complete(self, claim: LedgerRecord, message: dict[str, object]) -> None:
        """Here first, then at the edge while it may accept sends: a send's completion, and each resolution made
        here (not_sent, a lookup, a callback, an operator's mark), so the edge answers what the origin knows."""
        await super().complete(claim, message)  # the origin's own record first
        if self._local_claim or not self._edge_may_accept:
            return  # a degraded claim is already queued for reconcile
        if is_not_sent(message) and not await self._completed_here(claim):
            return  # refused here (a mark came first): the edge must not hear not_sent either
        self._parts.completions.start(self._complete_at_edge(claim, message))

    async def _completed_here(self, claim: LedgerRecord) -> bool:
        kept = await self.store.get(claim.workspace_id, claim.key)
        return kept is not None and kept.message_id == claim.message_id and kept.state is LedgerState.COMPLETED

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
