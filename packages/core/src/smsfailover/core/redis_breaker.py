"""RedisBreakerStore: one breaker per origin URL for a whole fleet of sender processes.

Every transition is one Lua script (atomic in Redis, on Redis's own clock, so process clocks never disagree):

    hash  <prefix><origin_url>         state (closed|open), failures, trips, open_until (ms, Redis TIME)
    key   <prefix><origin_url>:probe   the one half-open probe fleet-wide: SET NX PX <probe timeout>, owner token

The consecutive count, the slow-call rule and the exponential open time apply fleet-wide; a failure-rate window
stays per process (it needs every call's time, too chatty for a shared store).

A lost Redis must never stop sends: every operation has a short timeout, and on any Redis error the process
falls back to its own CircuitBreaker (logged once, `breaker.shared_lost`), tries Redis again at most every
`retry_s`, and when Redis answers again re-joins the shared state (`breaker.shared_restored`); if its own breaker
opened meanwhile it tells the fleet (force-open for the remaining time), so what it learned is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from smsfailover.core.breaker import Admission, BreakerPolicy, BreakerState, CircuitBreaker
from smsfailover.core.breaker_store import LocalBreakerStore, StorePermission
from smsfailover.core.clock import Clock
from smsfailover.core.log import log_event

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_PREFIX = "smsfailover:breaker:"

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS: hash, probe. ARGV: probe_ttl_ms, token. -> {admission}
_ACQUIRE = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return 'allowed' end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now < open_until then return 'rejected' end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return 'probe' end
return 'rejected'
"""
)

# Opens the breaker: trips + 1, open time base * 2^(trips-1) capped. Shared by the scripts below.
_OPEN = """
local function open_breaker(now, base_ms, cap_ms)
  local trips = redis.call('HINCRBY', KEYS[1], 'trips', 1)
  local duration = math.min(cap_ms, base_ms * math.pow(2, math.min(trips - 1, 40)))
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + math.floor(duration))
  redis.call('DEL', KEYS[2])
  return 'opened'
end
"""

# KEYS: hash, probe. ARGV: threshold, base_ms, cap_ms, is_probe, token.
_FAILURE = (
    _NOW
    + _OPEN
    + """
if ARGV[4] == '1' then
  if redis.call('GET', KEYS[2]) ~= ARGV[5] then return 'stale' end
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
  return open_breaker(now, tonumber(ARGV[2]), tonumber(ARGV[3]))
end
if redis.call('HGET', KEYS[1], 'state') == 'open' then return 'stale' end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then return open_breaker(now, tonumber(ARGV[2]), tonumber(ARGV[3])) end
return 'counted'
"""
)

# KEYS: hash, probe. ARGV: is_probe, token.
_SUCCESS = """
if ARGV[1] == '1' then
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'stale' end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'trips', 0, 'open_until', 0)
  return 'closed'
end
if redis.call('HGET', KEYS[1], 'state') == 'open' then return 'stale' end
redis.call('HSET', KEYS[1], 'failures', 0)
return 'counted'
"""

# KEYS: hash, probe. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) return 1 end
return 0
"""

# KEYS: hash, probe. ARGV: seconds_ms (or '' for the policy's next open time), base_ms, cap_ms.
_FORCE_OPEN = (
    _NOW
    + _OPEN
    + """
if ARGV[1] == '' then return open_breaker(now, tonumber(ARGV[2]), tonumber(ARGV[3])) end
redis.call('HINCRBY', KEYS[1], 'trips', 1)
redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', now + tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
return 'opened'
"""
)

# KEYS: hash, probe. -> {state, failures, remaining_ms, probe_out}
_SNAPSHOT = (
    _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local remaining = 0
if state == 'open' then
  remaining = math.max(0, tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') - now)
  if remaining == 0 then state = 'half_open' end
end
return {state, failures, remaining}
"""
)

_RESET = """
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'trips', 0, 'open_until', 0)
return 'closed'
"""


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def redis_client(url: str) -> Redis:
    """A Redis client (with its own connection pool) with the short timeouts a send path can afford."""
    from redis.asyncio import Redis

    return Redis.from_url(url, decode_responses=True, socket_timeout=0.25, socket_connect_timeout=0.25)


class RedisBreakerStore:
    shared = True

    def __init__(
        self,
        redis: Redis,
        origin_url: str,
        *,
        policy: BreakerPolicy,
        fallback: CircuitBreaker,
        clock: Clock,
        prefix: str = DEFAULT_PREFIX,
        probe_timeout_s: float = 30.0,
        retry_s: float = 5.0,
        op_timeout_s: float = 0.25,
    ) -> None:
        self._redis = redis
        self._keys = [prefix + origin_url.rstrip("/"), prefix + origin_url.rstrip("/") + ":probe"]
        self._policy = policy
        self._local = LocalBreakerStore(fallback)
        self._clock = clock
        self._probe_ttl_ms = int(probe_timeout_s * 1000)
        self._retry_s = retry_s
        self._op_timeout_s = op_timeout_s
        self._lost_at: float | None = None  # monotonic time Redis was last found unreachable
        self._errors = _redis_errors()
        self._background: set[asyncio.Task[Any]] = set()
        self._scripts = {
            name: redis.register_script(lua)
            for name, lua in (
                ("acquire", _ACQUIRE),
                ("failure", _FAILURE),
                ("success", _SUCCESS),
                ("release", _RELEASE),
                ("force_open", _FORCE_OPEN),
                ("snapshot", _SNAPSHOT),
                ("reset", _RESET),
            )
        }

    @classmethod
    def from_url(
        cls, url: str, origin_url: str, *, policy: BreakerPolicy, fallback: CircuitBreaker, clock: Clock, **kw: Any
    ) -> RedisBreakerStore:
        return cls(redis_client(url), origin_url, policy=policy, fallback=fallback, clock=clock, **kw)

    @property
    def degraded(self) -> bool:
        """True while this process runs on its own breaker because Redis is unreachable."""
        return self._lost_at is not None

    # -- the store protocol ----------------------------------------------------------------------------------

    async def acquire(self) -> StorePermission:
        now = self._clock.monotonic()
        token = secrets.token_hex(8)
        answer = await self._run("acquire", [str(self._probe_ttl_ms), token])
        if answer is None:
            return self._local.acquire_now()
        return StorePermission(Admission(str(answer)), now, token=token)

    async def record(self, permission: StorePermission, *, healthy: bool) -> None:
        if permission.local is not None:  # granted by the fallback: its own breaker keeps the verdict
            self._local.record_now(permission, healthy=healthy)
            return
        slow = self._policy.slow_call_s
        if healthy and slow is not None and self._clock.monotonic() - permission.issued_at > slow:
            healthy = False
        probe = "1" if permission.admission is Admission.PROBE else "0"
        if healthy:
            await self._run("success", [probe, permission.token])
        else:
            await self._run("failure", [str(self._policy.failures), *self._durations_ms(), probe, permission.token])

    def release(self, permission: StorePermission) -> None:
        if permission.local is not None:
            self._local.release(permission)
        elif permission.admission is Admission.PROBE:
            # Never block a cancelled caller: free the slot in the background (its PX expiry is the backstop).
            task = asyncio.ensure_future(self._run("release", [permission.token]))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def snapshot(self) -> dict[str, object]:
        answer = await self._run("snapshot", [])
        if not isinstance(answer, list):
            return {**self._local.breaker.snapshot(), "shared": False}
        state, failures, remaining_ms = answer
        return {
            "state": str(state),
            "consecutive_failures": int(failures),
            "remaining_open_s": round(int(remaining_ms) / 1000, 3),
            "shared": True,
        }

    async def reset(self) -> None:
        self._local.breaker.reset()
        await self._run("reset", [])

    async def force_open(self, seconds: float | None = None) -> None:
        self._local.breaker.force_open(seconds)
        given = "" if seconds is None else str(int(seconds * 1000))
        await self._run("force_open", [given, *self._durations_ms()])

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self._redis.aclose()

    # -- internals -------------------------------------------------------------------------------------------

    def _durations_ms(self) -> list[str]:
        base = self._policy.open_s
        cap = self._policy.open_max_s if self._policy.open_max_s is not None else base
        return [str(int(base * 1000)), str(int(max(cap, base) * 1000))]

    async def _run(self, name: str, args: list[str]) -> Any:
        """Run one script; None when Redis is unreachable (then the caller uses the local breaker)."""
        now = self._clock.monotonic()
        if self._lost_at is not None and now - self._lost_at < self._retry_s:
            return None
        try:
            async with asyncio.timeout(self._op_timeout_s):
                answer = await self._scripts[name](keys=self._keys, args=args)
        except self._errors as exc:
            if self._lost_at is None:
                log_event(
                    "breaker.shared_lost",
                    level=logging.WARNING,
                    key=self._keys[0],
                    error=type(exc).__name__,
                    fallback="process breaker",
                )
            self._lost_at = now
            return None
        if self._lost_at is not None:
            self._lost_at = None
            log_event("breaker.shared_restored", level=logging.WARNING, key=self._keys[0])
            await self._resync()
        return answer

    async def _resync(self) -> None:
        """What this process learned alone goes to the fleet: an open local breaker opens the shared one."""
        local = self._local.breaker
        if local.state is BreakerState.OPEN and local.remaining_open_s > 0:
            remaining_ms = str(int(local.remaining_open_s * 1000))
            await self._run("force_open", [remaining_ms, *self._durations_ms()])
        local.reset()
