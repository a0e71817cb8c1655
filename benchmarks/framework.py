"""The small benchmark framework: repeated measurements, min/median/max, a ratio against a same-run baseline."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Better = Literal["lower", "higher"]


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How hard to push: the full run (`make bench`) or a quick smoke run (BENCH_QUICK=1)."""

    quick: bool
    repeats: int

    @classmethod
    def from_env(cls) -> RunSettings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        return cls(quick=quick, repeats=1 if quick else 3)

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: with few samples p99 is simply the slowest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over repeated runs."""

    values: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")

    def text(self) -> str:
        if not self.values:
            return "-"
        if len(self.values) == 1:
            return fmt(self.values[0])
        return f"{fmt(self.min)} / {fmt(self.median)} / {fmt(self.max)}"


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass(frozen=True, slots=True)
class Row:
    """A measured figure and, when it has one, the same-run baseline it is read against."""

    case: str
    unit: str
    measured: Spread
    baseline: Spread | None = None
    baseline_case: str = ""
    better: Better = "lower"
    goal: str = ""
    max_ratio: float | None = None  # the goal as a ratio ceiling, when it is one
    min_ratio: float | None = None  # the goal as a ratio floor (throughput goals), when it is one

    @property
    def verdict(self) -> str:
        """'1.02x, goal met' / '1.18x, goal missed' / '1.02x' (no goal)."""
        ratio = self.ratio
        if ratio is None:
            return "-"
        if self.min_ratio is not None:
            return f"{ratio:.2f}x, goal {'met' if ratio >= self.min_ratio else 'missed'}"
        if self.max_ratio is None:
            return f"{ratio:.2f}x"
        return f"{ratio:.2f}x, goal {'met' if ratio <= self.max_ratio else 'missed'}"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.values or not self.measured.values:
            return None
        base = self.baseline.median
        return self.measured.median / base if base else None


@dataclass(slots=True)
class Section:
    """One benchmark's results: its rows, what was run (counts, repeats) and a short reading."""

    number: str
    title: str
    setup: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reading: str = ""
    error: str = ""
    elapsed_s: float = 0.0

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def verdicts(self) -> str:
        return "; ".join(f"{row.case} {row.verdict}" for row in self.rows if row.ratio is not None)


class Stopwatch:
    """Wall time in milliseconds of a `with` block."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.ms = 0.0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.ms = (time.perf_counter() - self.started) * 1000
