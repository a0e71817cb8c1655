"""A rate limit on the origin's dearest reads: the status route and the settings page's live poll.

Per workspace, one token bucket for each of the two: SMSFAILOVER_STATUS_RATE_LIMIT calls a second (default 5),
in bursts of up to twice that. The page polls every 2.5 s, 0.4 calls a second per open tab, so ten tabs on one
workspace polling in step, or a dozen spread out, stay under it; a script polling status in a tight loop gets
`429 rate_limited` with Retry-After, in the contract's error envelope. Separate buckets, so a script hammering the
API cannot blank an operator's page (and the reverse). The limit is taken after the caller is authenticated:
nobody without the workspace's token or session can spend its budget.
"""

from __future__ import annotations

from collections.abc import Callable

from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ratelimit import TokenBucketLimiter

STATUS = "status"
LIVE = "live"


class ReadLimiter:
    def __init__(self, *, rate: float, clock: Clock, on_refused: Callable[[], None] | None = None) -> None:
        self.rate = rate
        self._buckets = TokenBucketLimiter(rate=rate, burst=2 * rate, clock=clock)
        self._on_refused = on_refused

    def check(self, route: str, workspace_id: str) -> None:
        """Take one call of this route for this workspace, or raise 429 rate_limited with Retry-After."""
        wait_s = self._buckets.acquire(f"{route}:{workspace_id}")
        if wait_s <= 0:
            return
        if self._on_refused is not None:
            self._on_refused()
        retry_after = self._buckets.retry_after_header(wait_s)
        raise ApiError(
            429,
            "rate_limited",
            f"Too many {route} reads for this workspace (at most {self.rate:g} a second); retry after {retry_after} s.",
            headers={"Retry-After": retry_after},
        )
