"""Errors, at two boundaries.

ApiError                  an HTTP answer in the contract's envelope (both endpoints raise it)

SmsFailoverError          everything the SDK raises
 ├── MessageRejected      a 4xx: the request itself was refused (no failover happened)
 ├── SendFailed           every path failed; `attempts` says what each endpoint did
 └── ConfigurationError   bad or missing SMSFAILOVER_* settings, or no usable token
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ApiError(Exception):
    """An error answer: `{"error": {"code", "message", "field"?, ...extra}}` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, object] = dict(extra or {})

    def envelope(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        error.update(self.extra)
        return {"error": error}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r}, field={self.field!r})"


class SmsFailoverError(Exception):
    """Base of every error the SDK raises."""


class MessageRejected(SmsFailoverError):
    """An endpoint refused the message (a 4xx): fix the request; retrying the same one will not help."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        field: str | None = None,
        attempts: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.field = field
        self.attempts = tuple(attempts)


class SendFailed(SmsFailoverError):
    """No endpoint sent, and none can have: every attempt failed before reaching a sender. `attempts` lists each."""

    def __init__(self, message: str, *, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class ConfigurationError(SmsFailoverError):
    """The SMSFAILOVER_* configuration is missing or invalid."""
