from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize
from smsfailover.core.breaker import (
    AnyOf,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    ConsecutiveFailures,
    ExponentialOpenDuration,
    FailureRateWindow,
    FixedOpenDuration,
    Permission,
)
from smsfailover.core.clock import ManualClock
from smsfailover.core.config import ClientConfig
from smsfailover.core.errors import ConfigurationError

from .test_breaker import BreakerMachine, FakeClock


def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.try_acquire())


def test_default_policy_is_the_seeds_breaker() -> None:
    policy = BreakerPolicy()
    assert isinstance(policy.trip_policy(), ConsecutiveFailures)
    duration = policy.open_duration()
    assert isinstance(duration, FixedOpenDuration)
    assert [duration.open_duration_s(n) for n in (1, 2, 5)] == [30.0, 30.0, 30.0]


def test_exponential_open_duration_doubles_up_to_the_cap() -> None:
    duration = ExponentialOpenDuration(30.0, 300.0)
    assert [duration.open_duration_s(n) for n in range(1, 7)] == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    assert duration.open_duration_s(10_000) == 300.0


def test_a_failed_probe_reopens_for_longer_and_a_close_starts_over() -> None:
    clock = ManualClock()
    breaker = BreakerPolicy(failures=1, open_s=10.0, open_max_s=100.0).build(clock)
    _fail(breaker)
    assert breaker.remaining_open_s == 10.0
    clock.advance(10.0)
    _fail(breaker)  # the probe fails
    assert breaker.remaining_open_s == 20.0
    clock.advance(20.0)
    probe = breaker.try_acquire()
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED
    _fail(breaker)
    assert breaker.remaining_open_s == 10.0


def test_slow_successes_count_as_failures() -> None:
    clock = ManualClock()
    breaker = BreakerPolicy(slow_call_s=1.0).build(clock)
    for _ in range(3):
        permission = breaker.try_acquire()
        clock.advance(1.5)
        breaker.record_success(permission)
    assert breaker.state is BreakerState.OPEN


def test_fast_successes_under_the_slow_threshold_keep_it_closed() -> None:
    clock = ManualClock()
    breaker = BreakerPolicy(slow_call_s=1.0).build(clock)
    for _ in range(10):
        permission = breaker.try_acquire()
        clock.advance(0.5)
        breaker.record_success(permission)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_slow_probe_reopens() -> None:
    clock = ManualClock()
    breaker = BreakerPolicy(failures=1, open_s=5.0, slow_call_s=1.0).build(clock)
    _fail(breaker)
    clock.advance(5.0)
    probe = breaker.try_acquire()
    clock.advance(2.0)
    breaker.record_success(probe)
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_window_trips_on_alternating_failures() -> None:
    clock = ManualClock()
    breaker = BreakerPolicy(rate_window_s=60.0, rate_min_calls=10, failure_ratio=0.5).build(clock)
    for index in range(10):
        permission = breaker.try_acquire()
        clock.advance(1.0)
        if index % 2:
            breaker.record_failure(permission)
        else:
            breaker.record_success(permission)
    assert breaker.consecutive_failures < 3
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_window_needs_the_minimum_calls_and_forgets_old_ones() -> None:
    clock = ManualClock()
    window = FailureRateWindow(window_s=10.0, min_calls=4, failure_ratio=0.5)
    for _ in range(3):
        window.record(ok=False, duration_s=0.1, now=clock.monotonic())
    assert not window.should_trip(clock.monotonic())  # 3 calls < 4
    clock.advance(11.0)
    window.record(ok=False, duration_s=0.1, now=clock.monotonic())
    assert not window.should_trip(clock.monotonic())  # the first three left the window
    for _ in range(3):
        window.record(ok=True, duration_s=0.1, now=clock.monotonic())
    assert not window.should_trip(clock.monotonic())  # 1 of 4 failed
    window.record(ok=False, duration_s=0.1, now=clock.monotonic())
    window.record(ok=False, duration_s=0.1, now=clock.monotonic())
    assert window.should_trip(clock.monotonic())  # 3 of 6


def test_any_of_trips_when_one_policy_does_and_resets_all() -> None:
    consecutive = ConsecutiveFailures(2)
    rate = FailureRateWindow(window_s=10.0, min_calls=100, failure_ratio=0.1)
    both = AnyOf([consecutive, rate])
    both.record(ok=False, duration_s=None, now=0.0)
    assert not both.should_trip(0.0)
    both.record(ok=False, duration_s=None, now=0.0)
    assert both.should_trip(0.0)
    both.reset()
    assert not both.should_trip(0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": -1.0}, {"base_s": 10.0, "cap_s": 5.0}, {"factor": 0.5}],
)
def test_exponential_open_duration_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ExponentialOpenDuration(**kwargs)


def test_policies_from_the_environment() -> None:
    config = ClientConfig.from_env(
        {
            "SMSFAILOVER_BREAKER_OPEN_MAX_S": "300",
            "SMSFAILOVER_BREAKER_SLOW_CALL_S": "1.5",
            "SMSFAILOVER_BREAKER_RATE_WINDOW_S": "60",
            "SMSFAILOVER_BREAKER_RATE_MIN_CALLS": "20",
            "SMSFAILOVER_BREAKER_FAILURE_RATIO": "0.25",
        }
    )
    policy = config.router_config().breaker_policy()
    assert policy == BreakerPolicy(
        open_max_s=300.0, slow_call_s=1.5, rate_window_s=60.0, rate_min_calls=20, failure_ratio=0.25
    )


def test_policy_defaults_from_an_empty_environment() -> None:
    assert ClientConfig.from_env({}).router_config().breaker_policy() == BreakerPolicy()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMSFAILOVER_BREAKER_FAILURE_RATIO", "1.5"),
        ("SMSFAILOVER_BREAKER_FAILURE_RATIO", "half"),
        ("SMSFAILOVER_BREAKER_SLOW_CALL_S", "-1"),
        ("SMSFAILOVER_BREAKER_RATE_MIN_CALLS", "0"),
        ("SMSFAILOVER_HEDGING", "maybe"),
    ],
)
def test_bad_policy_variables_are_configuration_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ClientConfig.from_env({name: value})


class PolicyBreakerMachine(BreakerMachine):
    """The same properties (never two live probes, nothing admitted while open) under every policy mix."""

    @initialize(
        threshold=st.integers(1, 4),
        open_s=st.floats(0.5, 10),
        open_max_s=st.none() | st.floats(10, 60),
        slow_call_s=st.none() | st.floats(0.1, 5),
        rate_window_s=st.none() | st.floats(1, 30),
        rate_min_calls=st.integers(1, 5),
        failure_ratio=st.floats(0.1, 1.0),
    )
    def start(  # same name: replaces the parent's rule, so this is the one initializer
        self,
        threshold: int,
        open_s: float,
        open_max_s: float | None,
        slow_call_s: float | None,
        rate_window_s: float | None,
        rate_min_calls: int,
        failure_ratio: float,
    ) -> None:
        self.clock = FakeClock()
        self.probe_timeout_s = 30.0  # BreakerPolicy.build keeps the breaker's default probe timeout
        policy = BreakerPolicy(
            failures=threshold,
            open_s=open_s,
            open_max_s=open_max_s,
            slow_call_s=slow_call_s,
            rate_window_s=rate_window_s,
            rate_min_calls=rate_min_calls,
            failure_ratio=failure_ratio,
        )
        self.breaker = policy.build(self.clock)
        self.held: list[Permission] = []


PolicyBreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPolicyBreakerMachine = PolicyBreakerMachine.TestCase
