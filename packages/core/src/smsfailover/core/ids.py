"""Message ids (`msg_` + a ULID) and RFC 3339 timestamps."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_s: float, randomness: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds, then 80 random bits, in Crockford base32 (26 characters, sortable)."""
    value = (int(now_s * 1000) & ((1 << 48) - 1)) << 80
    value |= secrets.randbits(80) if randomness is None else randomness & ((1 << 80) - 1)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_message_id(now_s: float) -> str:
    return "msg_" + ulid(now_s)


def rfc3339(epoch_s: float) -> str:
    """`2026-11-23T20:47:51.123Z`: UTC, millisecond precision."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    """The inverse of rfc3339(): epoch seconds. ValueError for anything else."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 time needs a zone")
    return moment.timestamp()
