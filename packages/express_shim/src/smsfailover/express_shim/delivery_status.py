"""Twilio's message statuses mapped to the contract's, and the one direction a status may move."""

from __future__ import annotations

from smsfailover.core.provider_lookup import contract_status  # one mapping for callbacks and lookups

__all__ = ["TERMINAL", "contract_status", "statuses_that_may_advance_to"]

# queued < sent < delivered; failed and undelivered are terminal. "unknown" (a lost claim outcome) is below
# everything: a callback is the best evidence of what happened.
_RANK = {"unknown": -1, "queued": 0, "sent": 1, "delivered": 2, "failed": 3, "undelivered": 3}
TERMINAL = frozenset({"delivered", "failed", "undelivered"})


def statuses_that_may_advance_to(status: str) -> list[str]:
    """The current statuses from which `status` is a step forward (never back, never out of a final state)."""
    rank = _RANK[status]
    return [s for s, r in _RANK.items() if r < rank and s not in TERMINAL]
