"""Why a router sent a message to the edge: a fixed vocabulary, carried in one request header.

The router knows the cause of each failover (its classification of the origin's answer, the breaker, a hedge), so it
names it on the edge POST (`X-Smsfailover-Failover-Reason`); the edge stores it with the message it sends, the
sync copies it to the origin, and the settings page lists the workspace's last failovers with their reasons.
A send with no failover carries no header (the origin attempt's request is unchanged).

    timeout               the origin gave no answer within its timeout (it may still have sent: the ledger decides)
    connection_refused    the router could not connect to the origin (refused, DNS, connect timeout)
    connection_lost       the connection broke after the request went out
    server_error_5xx      a 5xx from the origin other than the ones below
    gateway_error         502/504: a gateway in front of the origin lost its answer
    ledger_unavailable    503 ledger_unavailable: the origin could not reach the shared ledger in time
    provider_unavailable  503 provider_unavailable: the origin's provider failed (the edge may reach it)
    storage_unavailable   503 storage_unavailable: the origin could not record the message
    storage_busy          503 storage_busy: the origin's write queue was full
    breaker_open          the circuit breaker skipped the origin (open, or half-open with its probe elsewhere)
    hedge                 the origin was slower than usual and the edge was started beside it
    other                 any other value a caller sent: what reaches a store is always one of these words

Whatever arrives is checked against this list and never stored as given: an unknown value becomes `other`, an
absent or empty one None. Pure Python (the edge imports it under Pyodide).
"""

from __future__ import annotations

HEADER = "X-Smsfailover-Failover-Reason"
HEADER_LOWER = HEADER.lower()  # how ApiRequest and the Worker's bridge spell header names

TIMEOUT = "timeout"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_LOST = "connection_lost"
SERVER_ERROR = "server_error_5xx"
GATEWAY_ERROR = "gateway_error"
LEDGER_UNAVAILABLE = "ledger_unavailable"
PROVIDER_UNAVAILABLE = "provider_unavailable"
STORAGE_UNAVAILABLE = "storage_unavailable"
STORAGE_BUSY = "storage_busy"
BREAKER_OPEN = "breaker_open"
HEDGE = "hedge"
OTHER = "other"

# A 5xx whose error code names its cause precisely: the code is the reason.
CODED_5XX = frozenset({LEDGER_UNAVAILABLE, PROVIDER_UNAVAILABLE, STORAGE_UNAVAILABLE, STORAGE_BUSY})
REASONS = frozenset(
    {TIMEOUT, CONNECTION_REFUSED, CONNECTION_LOST, SERVER_ERROR, GATEWAY_ERROR, BREAKER_OPEN, HEDGE, OTHER} | CODED_5XX
)


def parse(raw: object) -> str | None:
    """The reason a header (or a synced row) gives: one of REASONS, `other` for anything else, None when absent."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().lower()
    if not value:
        return None
    return value if value in REASONS else OTHER


def of_server_error(error_code: str | None) -> str:
    """The reason for a 5xx (not 502/504) with this error code."""
    if error_code is not None and error_code in CODED_5XX:
        return error_code
    return SERVER_ERROR
