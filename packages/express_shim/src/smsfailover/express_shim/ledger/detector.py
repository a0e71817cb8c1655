"""When the origin's sends go on its local ledger alone (degraded mode), and when that ends (DESIGN.md, "Ledger
authority" rule 5, revised).

    edge ──(no origin process completed an authenticated ledger round trip for longer than `budget_s`)──▶ local
    local ──(a round trip succeeded again, and every key of the local window was pushed to the edge)──▶ edge

A request never moves the state: a request whose edge claim fails answers 503 `ledger_unavailable` and its key
waits for the edge (origin_ledger.py). Only the liveness round (liveness.py), which runs apart from requests, decides,
from the last round trip that *any* origin process completed: each process shares its own through the database, so a
short blip, a slow shard or one sick process never sends a workspace's keys to the local ledger. Every kind of
failure counts the same (refused, timeouts, resets, 5xx, the edge's typed "store unavailable"): a real edge or D1
outage answers 5xx and times out, it does not refuse connections.

A 401/403 from the edge ledger is a configuration fault: kept here for status, page and logs (loud), and it counts
as no round trip like any other failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import AUTH, EdgeUnavailable

REACHABLE, UNREACHABLE = "reachable", "unreachable"
NOT_ANSWERING = "not_answering"  # this process's last edge-ledger call failed; sends answer 503 and fail over
DEFAULT_BUDGET_S = 7.0  # the client's origin timeout + edge timeout (2 s + 5 s)


@dataclass(frozen=True, slots=True)
class DetectorSnapshot:
    state: str
    since: float | None  # epoch seconds of the last change; None before any
    reason: str | None  # why the state is what it is (the last failure while degraded)
    config_fault: str | None  # the last 401/403 from the edge ledger, until a round trip succeeds


class EdgeLedgerDetector:
    def __init__(
        self,
        clock: Clock,
        *,
        budget_s: float = DEFAULT_BUDGET_S,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._clock = clock
        self.budget_s = budget_s
        self._on_change = on_change
        self._started = clock.time()  # a process that never reached the edge has waited since it started
        self._last_ok: float | None = None  # this process's last authenticated round trip (epoch seconds)
        self._answering = True
        self._last_failure: str | None = None
        self._unreachable = False
        self._since: float | None = None
        self._reason: str | None = None
        self._config_fault: str | None = None

    @property
    def unreachable(self) -> bool:
        """Degraded mode: sends of workspaces the edge guards go on the local ledger alone."""
        return self._unreachable

    @property
    def last_ok(self) -> float | None:
        return self._last_ok

    def failed(self, exc: EdgeUnavailable) -> None:
        """Any failed edge-ledger call: remembered for status; it moves nothing by itself."""
        self._answering = False
        self._last_failure = exc.reason
        if exc.kind == AUTH:
            self.config_fault(exc.reason)

    def config_fault(self, reason: str) -> None:
        if self._config_fault is None:
            log_event("edge_ledger_auth_refused", level=logging.ERROR, reason=reason)
        self._config_fault = reason

    def success(self) -> None:
        """An authenticated round trip to the edge ledger answered."""
        self._last_ok = self._clock.time()
        self._answering = True
        self._config_fault = None

    def outage(self, shared_ok: float | None) -> bool:
        """Rule 5's sustained outage: neither any origin process (`shared_ok`, from the database) nor this one has
        reached the edge ledger for longer than the failover budget, counted from this process's start at most."""
        latest = max(x for x in (shared_ok, self._last_ok, self._started) if x is not None)
        return self._clock.time() - latest > self.budget_s

    def enter(self) -> None:
        if not self._unreachable:
            self._change(True, self._last_failure or "no ledger round trip")

    def leave(self) -> None:
        if self._unreachable:
            self._change(False, None)

    def snapshot(self) -> DetectorSnapshot:
        state = UNREACHABLE if self._unreachable else REACHABLE if self._answering else NOT_ANSWERING
        return DetectorSnapshot(state, self._since, self._reason, self._config_fault)

    def _change(self, unreachable: bool, reason: str | None) -> None:
        self._unreachable, self._reason, self._since = unreachable, reason, self._clock.time()
        if unreachable:
            log_event("edge_ledger_unreachable", level=logging.WARNING, reason=reason, budget_s=self.budget_s)
        else:
            log_event("edge_ledger_reachable_again")
        if self._on_change is not None:
            self._on_change(not unreachable)
