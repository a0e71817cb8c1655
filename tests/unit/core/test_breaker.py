from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from smsfailover.core.breaker import (
    Admission,
    BreakerState,
    CircuitBreaker,
    ConsecutiveFailures,
    FixedOpenDuration,
    Permission,
    StateChange,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def _state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.try_acquire())


def test_starts_closed_and_admits_calls() -> None:
    breaker = CircuitBreaker(FakeClock())
    permission = breaker.try_acquire()
    assert permission.admission is Admission.ALLOWED
    assert permission.allowed
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.remaining_open_s == 0.0


def test_opens_after_three_consecutive_failures_for_thirty_seconds() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock)
    _fail(breaker, 2)
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2
    _fail(breaker, 1)
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.remaining_open_s == pytest.approx(30.0)
    rejected = breaker.try_acquire()
    assert rejected.admission is Admission.REJECTED
    assert not rejected.allowed
    clock.now += 29.9
    assert breaker.try_acquire().admission is Admission.REJECTED


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(FakeClock())
    _fail(breaker, 2)
    breaker.record_success(breaker.try_acquire())
    _fail(breaker, 2)
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_half_open_admits_exactly_one_probe_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=1, open_s=5)
    _fail(breaker, 1)
    clock.now += 5
    assert _state(breaker) is BreakerState.HALF_OPEN
    probe = breaker.try_acquire()
    assert probe.admission is Admission.PROBE
    assert breaker.try_acquire().admission is Admission.REJECTED
    breaker.record_success(probe)
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.try_acquire().admission is Admission.ALLOWED


def test_a_failed_probe_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=2, open_s=5)
    _fail(breaker, 2)
    clock.now += 5
    probe = breaker.try_acquire()
    breaker.record_failure(probe)
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.remaining_open_s == pytest.approx(5.0)
    assert breaker.consecutive_failures == 3


def test_a_probe_that_never_reports_times_out_and_its_late_answer_is_ignored() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=1, open_s=1, probe_timeout_s=10)
    _fail(breaker, 1)
    clock.now += 1
    lost = breaker.try_acquire()
    assert lost.admission is Admission.PROBE
    clock.now += 9.9
    assert breaker.try_acquire().admission is Admission.REJECTED
    clock.now += 0.1
    second = breaker.try_acquire()
    assert second.admission is Admission.PROBE
    breaker.record_success(lost)  # stale: must not close the breaker
    assert _state(breaker) is BreakerState.HALF_OPEN
    breaker.record_success(second)
    assert _state(breaker) is BreakerState.CLOSED


def test_late_answers_from_before_a_transition_are_ignored() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=1, open_s=5)
    slow = breaker.try_acquire()
    _fail(breaker, 1)
    breaker.record_success(slow)
    assert _state(breaker) is BreakerState.OPEN
    breaker.record_failure(breaker.try_acquire())  # a rejected permission reports nothing
    assert breaker.consecutive_failures == 1


def test_release_frees_the_probe_slot_without_counting() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=1, open_s=1)
    _fail(breaker, 1)
    clock.now += 1
    probe = breaker.try_acquire()
    breaker.release(probe)
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.consecutive_failures == 1
    assert breaker.try_acquire().admission is Admission.PROBE


def test_reset_and_force_open_emit_events() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, name="http://origin")
    events: list[StateChange] = []
    breaker.add_listener(events.append)
    breaker.force_open()
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.remaining_open_s == pytest.approx(30.0)
    breaker.force_open(seconds=2)
    assert breaker.remaining_open_s == pytest.approx(2.0)
    breaker.reset()
    assert _state(breaker) is BreakerState.CLOSED
    assert [(e.old, e.new, e.reason) for e in events] == [
        (BreakerState.CLOSED, BreakerState.OPEN, "forced open"),
        (BreakerState.OPEN, BreakerState.CLOSED, "reset"),
    ]
    breaker.remove_listener(events.append)
    breaker.force_open()
    assert len(events) == 2


def test_snapshot_reports_the_contract_fields() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failure_threshold=1, open_s=10)
    _fail(breaker, 1)
    clock.now += 4
    assert breaker.snapshot() == {"state": "open", "consecutive_failures": 1, "remaining_open_s": 6.0}
    clock.now += 6
    assert breaker.snapshot()["state"] == "half_open"


class SlowCallPolicy:
    """A custom trip policy: one call slower than a limit trips the breaker (shows the seam works)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.slow = False

    def record(self, *, ok: bool, duration_s: float | None, now: float) -> None:
        self.slow = self.slow or (duration_s is not None and duration_s > self.limit_s)

    def should_trip(self, now: float) -> bool:
        return self.slow

    def reset(self) -> None:
        self.slow = False


class DoublingOpenDuration:
    def open_duration_s(self, trips: int) -> float:
        return 2.0**trips


def test_policies_are_pluggable() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, trip_policy=SlowCallPolicy(1.0), open_duration=DoublingOpenDuration())
    permission = breaker.try_acquire()
    clock.now += 2
    breaker.record_failure(permission)
    assert breaker.remaining_open_s == pytest.approx(2.0)
    clock.now += 2
    breaker.record_failure(breaker.try_acquire())
    assert breaker.remaining_open_s == pytest.approx(4.0)


def test_policy_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ConsecutiveFailures(0)
    with pytest.raises(ValueError, match="negative"):
        FixedOpenDuration(-1)


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings of callers: never two live probes, never an admitted call while open."""

    @initialize(threshold=st.integers(1, 4), open_s=st.floats(0.5, 10), probe_timeout_s=st.floats(0.5, 10))
    def start(self, threshold: int, open_s: float, probe_timeout_s: float) -> None:
        self.clock = FakeClock()
        self.probe_timeout_s = probe_timeout_s
        self.breaker = CircuitBreaker(
            self.clock, failure_threshold=threshold, open_s=open_s, probe_timeout_s=probe_timeout_s
        )
        self.held: list[Permission] = []

    @rule()
    def acquire(self) -> None:
        was_open = self.breaker.remaining_open_s > 0
        permission = self.breaker.try_acquire()
        if was_open:
            assert not permission.allowed, "an open breaker admitted a call"
        if permission.allowed:
            self.held.append(permission)

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(0, 100), ok=st.booleans())
    def report(self, index: int, ok: bool) -> None:
        permission = self.held.pop(index % len(self.held))
        if ok:
            self.breaker.record_success(permission)
        else:
            self.breaker.record_failure(permission)

    @rule(seconds=st.floats(0, 15))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def reset(self) -> None:
        self.breaker.reset()

    @invariant()
    def at_most_one_live_probe(self) -> None:
        live = [
            p
            for p in self.held
            if p.admission is Admission.PROBE
            and self.clock.now < p.issued_at + self.probe_timeout_s
            and p.epoch == self.breaker._epoch
        ]
        assert len(live) <= 1

    @invariant()
    def open_means_no_admission_recorded_state(self) -> None:
        if self.breaker.state is BreakerState.CLOSED:
            assert self.breaker.remaining_open_s == 0.0


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
