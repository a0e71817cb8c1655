"""When the edge ledger is "definitely unreachable" (DESIGN.md, "Ledger authority" rule 5), and when that ends.

    reachable ──(`failures` connection-level failures within `window_s`, no success between)──▶ unreachable
    unreachable ──(an authenticated ledger round trip succeeds: a ping, a claim, a reconcile)──▶ reachable

Only failures after which the edge cannot have seen the request count (EdgeUnavailable.kind "unreachable":
refused, reset before the request was written, connect timeout, DNS or TLS). A read timeout, a 5xx, a lookup or
a wait for a pooled connection never counts, so slowness never moves a workspace's keys to the local ledger.
A 401/403 is a configuration fault: it is kept here for status and logs, and never makes the edge "unreachable".
One failed request counts once, however many operations shared it (batcher.py hands each the same exception).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from smsfailover.core.clock import Clock
from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import AUTH, EdgeUnavailable

REACHABLE, UNREACHABLE = "reachable", "unreachable"


@dataclass(frozen=True, slots=True)
class DetectorSnapshot:
    state: str
    since: float | None  # epoch seconds of the last change; None before any
    reason: str | None
    config_fault: str | None  # the last 401/403 from the edge ledger, until a round trip succeeds


class EdgeLedgerDetector:
    def __init__(
        self,
        clock: Clock,
        *,
        failures: int = 3,
        window_s: float = 5.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._clock = clock
        self._failures = failures
        self._window_s = window_s
        self._on_change = on_change
        self._recent: list[tuple[float, object]] = []  # definite failures since the last success: (time, what)
        self._unreachable = False
        self._since: float | None = None
        self._reason: str | None = None
        self._config_fault: str | None = None

    @property
    def unreachable(self) -> bool:
        return self._unreachable

    def definite_failure(self, reason: str, cause: object) -> bool:
        """A connection-level failure (`cause`: the failed request's exception, counted once); True if the edge
        ledger is now (or already was) unreachable."""
        now = self._clock.monotonic()
        if any(seen is cause for _, seen in self._recent):
            return self._unreachable
        self._recent = [(t, seen) for t, seen in self._recent if now - t < self._window_s] + [(now, cause)]
        if not self._unreachable and len(self._recent) >= self._failures:
            self._change(True, reason)
        return self._unreachable

    def failed(self, exc: EdgeUnavailable) -> None:
        """Any failed edge-ledger call: only its kind decides whether it counts."""
        if exc.definitely_unreachable:
            self.definite_failure(exc.reason, exc)
        elif exc.kind == AUTH:
            self.config_fault(exc.reason)

    def config_fault(self, reason: str) -> None:
        if self._config_fault is None:
            log_event("edge_ledger_auth_refused", level=logging.ERROR, reason=reason)
        self._config_fault = reason

    def success(self) -> None:
        """An authenticated round trip to the edge ledger answered."""
        self._recent.clear()
        self._config_fault = None
        if self._unreachable:
            self._change(False, None)

    def snapshot(self) -> DetectorSnapshot:
        state = UNREACHABLE if self._unreachable else REACHABLE
        return DetectorSnapshot(state, self._since, self._reason, self._config_fault)

    def _change(self, unreachable: bool, reason: str | None) -> None:
        self._unreachable, self._reason, self._since = unreachable, reason, self._clock.time()
        if unreachable:
            log_event("edge_ledger_unreachable", level=logging.WARNING, reason=reason)
        else:
            log_event("edge_ledger_reachable_again")
        if self._on_change is not None:
            self._on_change(not unreachable)
