"""The idempotency ledger: one logical message reaches the provider at most once (DESIGN.md).

    claim ──▶ CLAIMED (lease) ──complete──▶ COMPLETED   replayed to every later caller with the same key
                     │ └──────release────▶ RELEASED    nothing was sent; the next claim may take the key
                     └── lease runs out ─▶ (unknown)   never re-claimed: a reported unknown beats a double SMS
                                                       ... unless the call never began: not sent, final (NotSent)

The call-began mark (issue 15): just before the provider call the sender writes `call_began_at` on its claim, a write
the store refuses once the lease has passed (`mark_call_began`). No mark, lease over: the call cannot begin any more,
so the key is certainly unsent. Only the ledger of the endpoint that sends (`owner`) holds the mark: another
ledger's copy of the claim says nothing about it, and its expired claim stays unknown.

The store does one thing atomically (`try_claim`: insert, or take over a RELEASED row); every decision after that
is made here, from the stored record and the clock (expiry is computed, never trusted to the store).
Claims are fenced: completing or releasing names the claim's message id, and the store changes the row only while
it still holds that claim, so a late or retried release can never free another attempt's claim (DESIGN.md rule 3).
A completed record keeps the response body without the message content (`ledger_body`): a replay needs the body and
the fingerprint, and the replaying request brings the content back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal, Protocol

from smsfailover.core.clock import Clock
from smsfailover.core.ids import new_message_id

LedgerMode = Literal["edge", "local"]
RETENTION_S = 24 * 3600.0
# `call_began_at` of a claim written before the mark existed: whether its call began is not known (never NotSent).
CALL_BEGAN_UNRECORDED = -1.0


# The body fields a ledger record never keeps. A replay is answered only for a request whose fingerprint (to, content,
# media_urls) equals the record's, so that request holds the same content; and 422 idempotency_key_reused needs only
# the fingerprint. Keeping the text would only keep customer content for the ledger's whole retention.
UNKEPT_FIELDS = frozenset({"content"})


def ledger_body(message: Mapping[str, object]) -> dict[str, object]:
    """What a ledger record keeps of a response body: all of it but the message content (UNKEPT_FIELDS)."""
    return {name: value for name, value in message.items() if name not in UNKEPT_FIELDS}


def is_not_sent(message: Mapping[str, object]) -> bool:
    """Whether a completion's message settles its claim `failed` with the reason `not_sent`: such a completion applies
    only while the claim has no call-began mark (LedgerStore.complete), a guard at write time, since a mark may commit
    between the resolution's read of the claim and its write."""
    error = message.get("error")
    return message.get("status") == "failed" and isinstance(error, Mapping) and error.get("code") == "not_sent"


class LedgerState(StrEnum):
    CLAIMED = "claimed"
    COMPLETED = "completed"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    workspace_id: str
    key: str
    fingerprint: str
    state: LedgerState
    endpoint: str  # who claimed: "origin" or "edge"
    lease_expires_at: float
    created_at: float
    updated_at: float
    message: dict[str, object] | None = None  # the stored response body (ledger_body: no content), once completed
    message_id: str = ""  # minted at claim time, so even an unknown outcome has an id
    call_began_at: float | None = None  # the sender's mark just before its provider call (None: not begun)

    def is_expired(self, now: float) -> bool:
        return self.state is LedgerState.CLAIMED and now >= self.lease_expires_at

    def to_json(self) -> dict[str, object]:
        """The record as the edge's service ledger routes carry it (times in epoch seconds)."""
        return {
            "workspace_id": self.workspace_id,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "state": self.state.value,
            "endpoint": self.endpoint,
            "lease_expires_at": self.lease_expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message": self.message,
            "message_id": self.message_id,
            "call_began_at": self.call_began_at,
        }


class LedgerStore(Protocol):
    async def try_claim(self, record: LedgerRecord) -> bool:
        """Insert `record`, or take over a RELEASED row with the same key; False if any other row exists."""
        ...

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None: ...

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        """Claimed by `message_id` -> COMPLETED with `ledger_body(message)`; any other row is left as it is. A
        `not_sent` message (is_not_sent) completes only a claim without a call-began mark."""
        ...

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        """Claimed by `message_id` -> RELEASED; any other row is left as it is."""
        ...

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        """Claimed by `message_id` with its lease live at `now` -> `call_began_at = now`; True if written. The one
        write that may precede a provider call: refused once the lease has passed, so no call can begin then."""
        ...

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        """Store another ledger's record of a key here (the edge's answer is final, DESIGN.md rules 1-2).

        Written when the key is new here, the row here is RELEASED, or the row is this same attempt (its message
        id) or the claim named by `replacing` while its call has not begun (no mark: a claim whose call may have
        begun is never replaced); a COMPLETED row of the same attempt never goes back to CLAIMED.
        The record's message is kept as `ledger_body` keeps it. True if written."""
        ...

    async def purge(self, older_than: float) -> int: ...


class InMemoryLedgerStore:
    """A process-local store: for tests, and for callers that need no durability."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], LedgerRecord] = {}

    async def try_claim(self, record: LedgerRecord) -> bool:
        current = self._rows.get((record.workspace_id, record.key))
        if current is not None and current.state is not LedgerState.RELEASED:
            return False
        self._rows[(record.workspace_id, record.key)] = record
        return True

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        return self._rows.get((workspace_id, key))

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        current = self._rows.get((workspace_id, key))
        if current is None or current.state is not LedgerState.CLAIMED or current.message_id != message_id:
            return
        if is_not_sent(message) and current.call_began_at is not None:
            return  # the call began (or may have): never settled as not sent
        self._rows[(workspace_id, key)] = replace(
            current, state=LedgerState.COMPLETED, message=ledger_body(message), updated_at=now
        )

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        current = self._rows.get((workspace_id, key))
        if current is not None and current.state is LedgerState.CLAIMED and current.message_id == message_id:
            self._rows[(workspace_id, key)] = replace(current, state=LedgerState.RELEASED, updated_at=now)

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
        current = self._rows.get((workspace_id, key))
        if current is None or current.message_id != message_id or current.is_expired(now):
            return False
        if current.state is not LedgerState.CLAIMED:
            return False
        self._rows[(workspace_id, key)] = replace(current, call_began_at=now)
        return True

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        current = self._rows.get((record.workspace_id, record.key))
        if current is not None and not may_adopt(current, record, replacing):
            return False
        kept = None if record.message is None else ledger_body(record.message)
        mark = record.call_began_at if record.call_began_at is not None else CALL_BEGAN_UNRECORDED
        if current is not None and current.message_id == record.message_id and current.call_began_at is not None:
            mark = current.call_began_at  # this ledger's own mark outlives another ledger's copy of the claim
        self._rows[(record.workspace_id, record.key)] = replace(record, message=kept, call_began_at=mark)
        return True

    async def purge(self, older_than: float) -> int:
        old = [k for k, r in self._rows.items() if r.created_at < older_than]
        for k in old:
            del self._rows[k]
        return len(old)


def may_adopt(current: LedgerRecord, incoming: LedgerRecord, replacing: str = "") -> bool:
    """The rule of LedgerStore.adopt, for stores that decide in Python (the SQL store says it in SQL)."""
    if current.state is LedgerState.RELEASED:
        return True
    if replacing and current.message_id == replacing:
        return current.state is LedgerState.CLAIMED and current.call_began_at is None
    if current.message_id != incoming.message_id:
        return False
    return not (current.state is LedgerState.COMPLETED and incoming.state is not LedgerState.COMPLETED)


@dataclass(frozen=True, slots=True)
class Claimed:
    """This caller owns the key: send, then complete() or release()."""

    record: LedgerRecord


@dataclass(frozen=True, slots=True)
class Replay:
    """Already sent: answer with the stored message."""

    record: LedgerRecord
    message: dict[str, object]


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another attempt holds the key and its lease is live: ask the caller to come back."""

    record: LedgerRecord
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A claim whose lease ran out without completion: it may or may not have been sent."""

    record: LedgerRecord


@dataclass(frozen=True, slots=True)
class NotSent:
    """A claim whose lease ran out before its provider call began (no call-began mark in the sender's ledger): the
    message certainly did not go out. Final for the key, never sent automatically (CONTRACT §1.8)."""

    record: LedgerRecord


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was used for a different payload."""

    record: LedgerRecord


ClaimOutcome = Claimed | Replay | InProgress | Unknown | NotSent | KeyReused


class LedgerUnavailable(Exception):
    """The ledger's store could not be reached or answered nonsense."""


class LedgerMoved(Exception):
    """A standalone claim was refused because the ledger it assumed no longer guards the workspace's keys (the
    origin's failover switch moved between the setting's read and the claim's commit): nothing was written; ask
    `ledger_for` again."""


class IdempotencyLedger:
    def __init__(
        self,
        store: LedgerStore,
        clock: Clock,
        *,
        lease_s: float = 30.0,
        mode: LedgerMode = "edge",
        owner: str | None = None,
    ) -> None:
        """`owner`: the endpoint whose sends this ledger marks ("origin", "edge"), so whose expired, unmarked claims
        are NotSent; None for a ledger that holds no marks (every expired claim is Unknown)."""
        self.store = store
        self.mode: LedgerMode = mode
        self.owner = owner
        self._clock = clock
        self._lease_s = lease_s

    @property
    def standalone(self) -> bool:
        """Whether every step (claim, complete, release) is one write to `store` and nothing else. Then an endpoint
        may run a step in one transaction with its own writes (MessageApi's begin and settle); a ledger that also
        asks another one between the steps (the origin's, while the edge may accept sends) says False."""
        return True

    async def claim(self, workspace_id: str, key: str, fingerprint: str, endpoint: str) -> ClaimOutcome:
        return await self.claim_record(self.new_claim(workspace_id, key, fingerprint, endpoint))

    def new_claim(self, workspace_id: str, key: str, fingerprint: str, endpoint: str) -> LedgerRecord:
        """A fresh claim with its lease and message id (the fencing token every later step names)."""
        now = self._clock.time()
        return LedgerRecord(
            workspace_id=workspace_id,
            key=key,
            fingerprint=fingerprint,
            state=LedgerState.CLAIMED,
            endpoint=endpoint,
            lease_expires_at=now + self._lease_s,
            created_at=now,
            updated_at=now,
            message=None,
            message_id=new_message_id(now),
        )

    async def claim_record(self, record: LedgerRecord) -> ClaimOutcome:
        workspace_id, key, fingerprint = record.workspace_id, record.key, record.fingerprint
        for _ in range(2):  # a second round only if the row vanished between claim and read (a purge)
            if await self.store.try_claim(record):
                return Claimed(record)
            existing = await self.store.get(workspace_id, key)
            if existing is not None and existing.state is not LedgerState.RELEASED:
                return self.judge(existing, fingerprint)
        raise LedgerUnavailable("the ledger neither took the claim nor showed the row holding the key")

    async def lookup(self, workspace_id: str, key: str) -> ClaimOutcome | None:
        """What a later caller with this key would get, without claiming (GET ?idempotency_key=)."""
        existing = await self.store.get(workspace_id, key)
        if existing is None or existing.state is LedgerState.RELEASED:
            return None
        return self.judge(existing, existing.fingerprint)

    def judge(self, existing: LedgerRecord, fingerprint: str) -> ClaimOutcome:
        now = self._clock.time()
        if existing.fingerprint != fingerprint:
            return KeyReused(existing)
        if existing.state is LedgerState.COMPLETED and existing.message is not None:
            return Replay(existing, existing.message)
        if existing.is_expired(now):
            return NotSent(existing) if self.never_began(existing) else Unknown(existing)
        return InProgress(existing, retry_after_s=max(1, min(5, math.ceil(existing.lease_expires_at - now))))

    async def complete(self, claim: LedgerRecord, message: dict[str, object]) -> None:
        await self.store.complete(
            claim.workspace_id, claim.key, message, self._clock.time(), message_id=claim.message_id
        )

    async def confirm_not_sent(self, record: LedgerRecord) -> ClaimOutcome:
        """Before settling `not_sent` a claim of ours that never began: NotSent when this ledger alone decides; a
        ledger that shares the key with another (the origin's, while the edge may accept sends) asks it first."""
        return NotSent(record)

    def never_began(self, record: LedgerRecord) -> bool:
        """Whether this ledger knows the record's provider call never began: its own send, no mark."""
        return record.endpoint == self.owner and record.call_began_at is None

    async def mark_call_began(self, claim: LedgerRecord) -> bool:
        """The mark just before the provider call; False: the lease has passed (or the claim is gone): do not call."""
        return await self.store.mark_call_began(
            claim.workspace_id, claim.key, self._clock.time(), message_id=claim.message_id
        )

    async def release(self, claim: LedgerRecord) -> None:
        """Free the key (nothing was sent), when `may_release` allows it."""
        now = self._clock.time()
        if self.may_release(claim, now):
            await self.store.release(claim.workspace_id, claim.key, now, message_id=claim.message_id)

    @staticmethod
    def may_release(claim: LedgerRecord, now: float) -> bool:
        """Not once the lease has run out: by then another caller may have been told "unknown" and sent again under
        a new key, so freeing this key could let the message out twice."""
        return not claim.is_expired(now)

    async def purge(self, retention_s: float = RETENTION_S) -> int:
        return await self.store.purge(self._clock.time() - max(retention_s, RETENTION_S))
