"""A circuit breaker as a pure state machine: no I/O, no sleeping, time from an injected clock.

    closed --(trip policy says so)--> open --(open duration over)--> half_open
    half_open --(the one probe succeeds)--> closed
    half_open --(the one probe fails)--> open

Callers ask `try_acquire()` before each call to the guarded endpoint and report the outcome with
`record_success()` / `record_failure()` on the permission they got. In half-open exactly one probe is
admitted at a time; everybody else is told to skip the endpoint. A probe whose result never comes back
(its caller was cancelled) stops blocking after `probe_timeout_s`: the next caller becomes the probe.

Every permission carries the breaker's *epoch*, which changes at each state change, so a late answer from
before a transition (a slow call admitted while closed, a probe that timed out) cannot move the machine.

What trips the breaker and for how long it stays open are policies (`TripPolicy`, `OpenDurationPolicy`), so
failure-rate, slow-call or exponential-back-off behaviour can be added without touching the state machine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from smsfailover.core.clock import Clock


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    ALLOWED = "allowed"  # closed: call the endpoint
    PROBE = "probe"  # half-open: this caller is the one probe
    REJECTED = "rejected"  # open, or another probe is in flight: skip the endpoint


@dataclass(frozen=True, slots=True)
class Permission:
    admission: Admission
    epoch: int
    issued_at: float

    @property
    def allowed(self) -> bool:
        return self.admission is not Admission.REJECTED


@dataclass(frozen=True, slots=True)
class StateChange:
    old: BreakerState
    new: BreakerState
    at: float
    reason: str


class TripPolicy(Protocol):
    """Decides, from outcomes seen while closed, when the breaker opens."""

    def record(self, *, ok: bool, duration_s: float | None, now: float) -> None: ...
    def should_trip(self, now: float) -> bool: ...
    def reset(self) -> None: ...


class OpenDurationPolicy(Protocol):
    """How long the breaker stays open; `trips` counts opens since it last closed (1 for the first)."""

    def open_duration_s(self, trips: int) -> float: ...


class ConsecutiveFailures:
    """The default trip policy: N failures in a row."""

    def __init__(self, threshold: int = 3) -> None:
        if threshold < 1:
            raise ValueError("the failure threshold must be at least 1")
        self.threshold = threshold
        self._failures = 0

    def record(self, *, ok: bool, duration_s: float | None, now: float) -> None:
        self._failures = 0 if ok else self._failures + 1

    def should_trip(self, now: float) -> bool:
        return self._failures >= self.threshold

    def reset(self) -> None:
        self._failures = 0


class FixedOpenDuration:
    """The default open duration: the same every time."""

    def __init__(self, seconds: float = 30.0) -> None:
        if seconds < 0:
            raise ValueError("the open duration cannot be negative")
        self.seconds = seconds

    def open_duration_s(self, trips: int) -> float:
        return self.seconds


class ExponentialOpenDuration:
    """Each re-open without a close in between doubles the open time, up to a cap (a dead origin is probed
    less and less often; a flapping one is not hammered every `base_s`)."""

    def __init__(self, base_s: float = 30.0, cap_s: float = 300.0, factor: float = 2.0) -> None:
        if base_s < 0 or cap_s < base_s or factor < 1:
            raise ValueError("need 0 <= base_s <= cap_s and factor >= 1")
        self.base_s = base_s
        self.cap_s = cap_s
        self.factor = factor

    def open_duration_s(self, trips: int) -> float:
        exponent = min(max(trips, 1) - 1, 64)  # bounded: the cap is reached long before
        return float(min(self.cap_s, self.base_s * self.factor**exponent))


class FailureRateWindow:
    """Trips when, over the last `window_s`, at least `min_calls` calls were seen and the failure ratio is at
    least `failure_ratio`: catches an origin that fails every other call, which never makes N in a row."""

    def __init__(self, *, window_s: float = 60.0, min_calls: int = 10, failure_ratio: float = 0.5) -> None:
        if window_s <= 0 or min_calls < 1 or not 0 < failure_ratio <= 1:
            raise ValueError("need window_s > 0, min_calls >= 1 and 0 < failure_ratio <= 1")
        self.window_s = window_s
        self.min_calls = min_calls
        self.failure_ratio = failure_ratio
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0

    def record(self, *, ok: bool, duration_s: float | None, now: float) -> None:
        self._calls.append((now, ok))
        self._failures += 0 if ok else 1
        self._expire(now)

    def should_trip(self, now: float) -> bool:
        self._expire(now)
        total = len(self._calls)
        return total >= self.min_calls and self._failures / total >= self.failure_ratio

    def reset(self) -> None:
        self._calls.clear()
        self._failures = 0

    def _expire(self, now: float) -> None:
        while self._calls and self._calls[0][0] <= now - self.window_s:
            _, ok = self._calls.popleft()
            self._failures -= 0 if ok else 1


class AnyOf:
    """Trips when any of its policies would: the consecutive count beside a rate window."""

    def __init__(self, policies: Sequence[TripPolicy]) -> None:
        self.policies = tuple(policies)

    def record(self, *, ok: bool, duration_s: float | None, now: float) -> None:
        for policy in self.policies:
            policy.record(ok=ok, duration_s=duration_s, now=now)

    def should_trip(self, now: float) -> bool:
        return any(policy.should_trip(now) for policy in self.policies)

    def reset(self) -> None:
        for policy in self.policies:
            policy.reset()


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Every breaker knob in one value (configuration, registry key); the defaults are the seed's breaker."""

    failures: int = 3
    open_s: float = 30.0
    open_max_s: float | None = None  # None: a fixed open time; else doubling up to this cap
    slow_call_s: float | None = None  # a success slower than this counts as a failure
    rate_window_s: float | None = None  # None: no failure-rate window
    rate_min_calls: int = 10
    failure_ratio: float = 0.5

    def trip_policy(self) -> TripPolicy:
        consecutive = ConsecutiveFailures(self.failures)
        if self.rate_window_s is None:
            return consecutive
        rate = FailureRateWindow(
            window_s=self.rate_window_s, min_calls=self.rate_min_calls, failure_ratio=self.failure_ratio
        )
        return AnyOf([consecutive, rate])

    def open_duration(self) -> OpenDurationPolicy:
        if self.open_max_s is None or self.open_max_s <= self.open_s:
            return FixedOpenDuration(self.open_s)
        return ExponentialOpenDuration(self.open_s, self.open_max_s)

    def build(self, clock: Clock, *, name: str = "") -> CircuitBreaker:
        return CircuitBreaker(
            clock,
            trip_policy=self.trip_policy(),
            open_duration=self.open_duration(),
            slow_call_s=self.slow_call_s,
            name=name,
        )


Listener = Callable[[StateChange], None]


class CircuitBreaker:
    def __init__(
        self,
        clock: Clock,
        *,
        failure_threshold: int = 3,
        open_s: float = 30.0,
        probe_timeout_s: float = 30.0,
        trip_policy: TripPolicy | None = None,
        open_duration: OpenDurationPolicy | None = None,
        slow_call_s: float | None = None,
        name: str = "",
    ) -> None:
        self.name = name
        self._slow_call_s = slow_call_s
        self._clock = clock
        self._trip = trip_policy if trip_policy is not None else ConsecutiveFailures(failure_threshold)
        self._open_duration = open_duration if open_duration is not None else FixedOpenDuration(open_s)
        self._probe_timeout_s = probe_timeout_s
        self._listeners: list[Listener] = []
        self._state = BreakerState.CLOSED
        self._epoch = 0
        self._consecutive_failures = 0
        self._trips = 0
        self._open_until = 0.0
        self._probe_deadline: float | None = None  # set while a probe is out

    # -- observation -----------------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The state as a caller would find it now: an open breaker whose time is up reads as half-open."""
        if self._state is BreakerState.OPEN and self._clock.monotonic() >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def remaining_open_s(self) -> float:
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock.monotonic())

    def snapshot(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutive_failures": self._consecutive_failures,
            "remaining_open_s": round(self.remaining_open_s, 3),
        }

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    # -- the protocol callers follow -------------------------------------------------------------------------

    def try_acquire(self) -> Permission:
        now = self._clock.monotonic()
        if self._state is BreakerState.OPEN:
            if now < self._open_until:
                return Permission(Admission.REJECTED, self._epoch, now)
            self._transition(BreakerState.HALF_OPEN, now, "open period over")
        if self._state is BreakerState.HALF_OPEN:
            if self._probe_deadline is not None and now < self._probe_deadline:
                return Permission(Admission.REJECTED, self._epoch, now)
            if self._probe_deadline is not None:
                # The previous probe never reported: forget it (its late answer belongs to an old epoch).
                self._epoch += 1
            self._probe_deadline = now + self._probe_timeout_s
            return Permission(Admission.PROBE, self._epoch, now)
        return Permission(Admission.ALLOWED, self._epoch, now)

    def record_success(self, permission: Permission) -> None:
        if not self._is_current(permission):
            return
        now = self._clock.monotonic()
        if self._slow_call_s is not None and now - permission.issued_at > self._slow_call_s:
            self.record_failure(permission)  # answered, but too slowly to keep sending there
            return
        self._consecutive_failures = 0
        if permission.admission is Admission.PROBE:
            self._close(now, "probe succeeded")
            return
        self._trip.record(ok=True, duration_s=now - permission.issued_at, now=now)

    def record_failure(self, permission: Permission) -> None:
        if not self._is_current(permission):
            return
        now = self._clock.monotonic()
        self._consecutive_failures += 1
        if permission.admission is Admission.PROBE:
            self._open(now, "probe failed")
            return
        self._trip.record(ok=False, duration_s=now - permission.issued_at, now=now)
        if self._trip.should_trip(now):
            self._open(now, "trip policy")

    def release(self, permission: Permission) -> None:
        """No verdict (e.g. a 4xx says nothing about health): free the probe slot, count nothing."""
        if self._is_current(permission) and permission.admission is Admission.PROBE:
            self._probe_deadline = None

    # -- operator actions ------------------------------------------------------------------------------------

    def reset(self) -> None:
        self._consecutive_failures = 0
        self._close(self._clock.monotonic(), "reset")

    def force_open(self, seconds: float | None = None) -> None:
        now = self._clock.monotonic()
        self._trips += 1
        duration = seconds if seconds is not None else self._open_duration.open_duration_s(self._trips)
        self._open_until = now + duration
        self._transition(BreakerState.OPEN, now, "forced open")

    # -- internals -------------------------------------------------------------------------------------------

    def _is_current(self, permission: Permission) -> bool:
        return permission.admission is not Admission.REJECTED and permission.epoch == self._epoch

    def _open(self, now: float, reason: str) -> None:
        self._trips += 1
        self._open_until = now + self._open_duration.open_duration_s(self._trips)
        self._transition(BreakerState.OPEN, now, reason)

    def _close(self, now: float, reason: str) -> None:
        self._trips = 0
        self._trip.reset()
        self._transition(BreakerState.CLOSED, now, reason)

    def _transition(self, new: BreakerState, now: float, reason: str) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        self._probe_deadline = None
        if old is new:
            return
        change = StateChange(old, new, now, reason)
        for listener in list(self._listeners):
            listener(change)
