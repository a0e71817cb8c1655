"""BreakerStore: where the origin's breaker state lives. In this process (the default), or shared by a fleet.

The router talks to a store, not to a CircuitBreaker: `acquire()` before an origin call, `record()` after it,
`release()` when a call ends without a verdict. `LocalBreakerStore` is the in-process CircuitBreaker of the
seed; `smsfailover.core.redis_breaker.RedisBreakerStore` keeps the same state in Redis for every process that
sends to the same origin URL (imported only when configured: never under Pyodide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from smsfailover.core.breaker import Admission, CircuitBreaker, Permission


@dataclass(frozen=True, slots=True)
class StorePermission:
    admission: Admission
    issued_at: float  # monotonic seconds, for the slow-call rule
    local: Permission | None = None  # granted by the in-process breaker (the default, or the Redis fallback)
    token: str = ""  # the shared probe's owner token (Redis)

    @property
    def allowed(self) -> bool:
        return self.admission is not Admission.REJECTED


class BreakerStore(Protocol):
    shared: bool  # True: the state is shared by a fleet (status reports it)

    async def acquire(self) -> StorePermission: ...
    async def record(self, permission: StorePermission, *, healthy: bool) -> None: ...
    def release(self, permission: StorePermission) -> None:
        """No verdict (a 4xx, an outrun hedge, a cancelled call): free a probe slot. Never blocks."""
        ...

    async def snapshot(self) -> dict[str, object]: ...  # {"state", "consecutive_failures", "remaining_open_s"}
    async def reset(self) -> None: ...
    async def force_open(self, seconds: float | None = None) -> None: ...


class LocalBreakerStore:
    """The process's own CircuitBreaker behind the store seam."""

    shared = False

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def acquire(self) -> StorePermission:
        return self.acquire_now()

    def acquire_now(self) -> StorePermission:
        permission = self.breaker.try_acquire()
        return StorePermission(permission.admission, permission.issued_at, local=permission)

    async def record(self, permission: StorePermission, *, healthy: bool) -> None:
        self.record_now(permission, healthy=healthy)

    def record_now(self, permission: StorePermission, *, healthy: bool) -> None:
        if permission.local is None:
            return
        if healthy:
            self.breaker.record_success(permission.local)
        else:
            self.breaker.record_failure(permission.local)

    def release(self, permission: StorePermission) -> None:
        if permission.local is not None:
            self.breaker.release(permission.local)

    async def snapshot(self) -> dict[str, object]:
        return self.breaker.snapshot()

    async def reset(self) -> None:
        self.breaker.reset()

    async def force_open(self, seconds: float | None = None) -> None:
        self.breaker.force_open(seconds)
