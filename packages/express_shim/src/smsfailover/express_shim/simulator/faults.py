"""Injected faults: a plan set through `POST /_sim/faults`, and seeded dice that decide each request.

A plan (every field optional; `{}` or `DELETE /_sim/faults` clears):
    seed                  int; the dice restart from it whenever a plan is set, so a run is reproducible
    latency_ms            ms, or [low, high] drawn uniformly: every Twilio API answer is that late; a create
                          is recorded first (the provider has the message; only its answer is slow)
    slow_after_accept_ms  the same, for creates only, added to latency_ms
    status                an HTTP status (400..599) to answer with instead of doing anything; nothing recorded
    reject_code           a Twilio error code (e.g. 21610) to refuse creates with, HTTP 400; nothing recorded
    rate                  0..1, the share of requests `status` / `reject_code` hit (default 1)
    error_rate            0..1, the share of requests answered 500 (20500) when no `status` is given
    outage                "reset" (the connection is reset, no answer) or "503" (every request 503, 20503)
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

Outage = Literal["reset", "503"]
FIELDS = frozenset(
    {"seed", "latency_ms", "slow_after_accept_ms", "status", "reject_code", "rate", "error_rate", "outage"}
)


class FaultPlanError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Delay:
    low_ms: float
    high_ms: float


@dataclass(frozen=True, slots=True)
class FaultPlan:
    seed: int = 0
    latency: Delay | None = None
    slow_after_accept: Delay | None = None
    status: int | None = None
    reject_code: int | None = None
    rate: float = 1.0
    outage: Outage | None = None

    def describe(self) -> dict[str, object]:
        return asdict(self)


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultPlanError(field, f"{field} must be a non-negative number")
    return float(value)


def _delay(field: str, value: object) -> Delay | None:
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != 2:
            raise FaultPlanError(field, f"{field} must be a number or [low, high]")
        low, high = _number(field, value[0]), _number(field, value[1])
        if low > high:
            raise FaultPlanError(field, f"{field}: low must not exceed high")
        return Delay(low, high)
    fixed = _number(field, value)
    return Delay(fixed, fixed)


def _share(field: str, value: object) -> float:
    share = _number(field, value)
    if share > 1:
        raise FaultPlanError(field, f"{field} must be between 0 and 1")
    return share


def _int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultPlanError(field, f"{field} must be an integer from {low} to {high}")
    return value


def parse_plan(raw: Mapping[str, object]) -> FaultPlan:
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise FaultPlanError(unknown[0], f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(FIELDS))}")
    status = None if raw.get("status") is None else _int("status", raw["status"], 400, 599)
    reject = None if raw.get("reject_code") is None else _int("reject_code", raw["reject_code"], 10000, 99999)
    rate = 1.0 if raw.get("rate") is None else _share("rate", raw["rate"])
    if raw.get("error_rate") is not None:
        if status is not None or raw.get("rate") is not None:
            raise FaultPlanError("error_rate", "give either error_rate, or status with rate")
        status, rate = 500, _share("error_rate", raw["error_rate"])
    outage = raw.get("outage")
    if outage is not None and outage not in ("reset", "503"):
        raise FaultPlanError("outage", 'outage must be "reset" or "503"')
    seed = 0 if raw.get("seed") is None else _int("seed", raw["seed"], -(2**63), 2**63 - 1)
    return FaultPlan(
        seed=seed,
        latency=_delay("latency_ms", raw.get("latency_ms")),
        slow_after_accept=_delay("slow_after_accept_ms", raw.get("slow_after_accept_ms")),
        status=status,
        reject_code=reject,
        rate=rate,
        outage="503" if outage == "503" else ("reset" if outage == "reset" else None),
    )


class FaultDice:
    """The plan in force and one seeded generator: the same requests in the same order meet the same
    faults."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.set(plan or FaultPlan())

    def set(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._random = random.Random(plan.seed)

    def hits(self) -> bool:
        """Whether this request meets the plan's status / reject fault."""
        if self.plan.status is None and self.plan.reject_code is None:
            return False
        return self.plan.rate >= 1 or self._random.random() < self.plan.rate

    def delay_s(self, *, create: bool) -> float:
        total = self._draw(self.plan.latency)
        if create:
            total += self._draw(self.plan.slow_after_accept)
        return total / 1000

    def _draw(self, delay: Delay | None) -> float:
        if delay is None:
            return 0.0
        if delay.low_ms == delay.high_ms:
            return delay.low_ms
        return self._random.uniform(delay.low_ms, delay.high_ms)
