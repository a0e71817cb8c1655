"""Structured log events on the `smsfailover` logger.

Each event is one record whose message reads `event key=value ...` and whose `extra` carries `event` and
`fields` for JSON formatters. Never a token, secret or message content: fields with such names are refused
here, so a careless call site cannot leak them.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("smsfailover")

_FORBIDDEN = frozenset({"token", "secret", "content", "message", "body", "authorization", "jwt", "password"})

LogValue = str | int | float | bool | None


def log_event(event: str, *, level: int = logging.INFO, **fields: LogValue) -> None:
    leaked = _FORBIDDEN.intersection(fields)
    if leaked:
        raise ValueError(f"log field(s) {sorted(leaked)} may carry secrets or content and are not logged")
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{name}={_format(value)}" for name, value in fields.items())])
    logger.log(level, text, extra={"event": event, "fields": dict(fields)})


def _format(value: LogValue) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return repr(text) if (" " in text or not text) else text
