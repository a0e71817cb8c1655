"""Whole numbers from clients (query parameters, cursors): ASCII digits only, within bounds.

`str.isdigit()` accepts digits `int()` refuses ("²"), and `int()` refuses strings past 4,300 digits: either would
be a 500 for a client's mistake. Every number a client sends as text passes here first.
"""

from __future__ import annotations

MAX_DIGITS = 19  # a signed 64-bit integer: what SQLite, PostgreSQL and D1 store
MAX_INT64 = 2**63 - 1


def whole_number(raw: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int | None:
    """The number `raw` spells, or None unless it is 1 to 19 ASCII digits within [minimum, maximum]."""
    if not raw or len(raw) > MAX_DIGITS or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if minimum <= value <= maximum else None
