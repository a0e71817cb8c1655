"""The injected clocks."""

from __future__ import annotations

import time

import pytest
from smsfailover.core.clock import ManualClock, SystemClock


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 0.0)
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (102.5, 2.5)
    clock.advance(0)
    assert clock.time() == 102.5


def test_manual_clock_cannot_go_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock.monotonic() == 0.0


def test_system_clock_reads_the_real_clocks() -> None:
    clock = SystemClock()
    before = time.time()
    assert before - 1 <= clock.time() <= time.time() + 1
    first = clock.monotonic()
    assert clock.monotonic() >= first
