"""Write admission: a request is refused at its first write, or not at all.

A database with a bound on pending writes (storage/sqlite.py) refuses a write past it with StorageBusy, before
anything is queued. Refusing a request's *later* write would lose work already accepted: a send whose claim was
taken and whose SMS went out must still settle (or release) its claim, else it reads `unknown`. So each HTTP
request runs in its own WriteAdmission (WriteAdmissionMiddleware): once one of its writes was taken, its later
ones, and those of tasks it starts (they inherit the scope), pass the bound. Work outside a request (background
rounds) has no scope: each of its writes meets the bound, and a refused round is retried at the next one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send


class WriteAdmission:
    """One request's standing with the write bound: `admitted` once a write of it was taken."""

    __slots__ = ("admitted",)

    def __init__(self) -> None:
        self.admitted = False


# A mutable holder rather than a flag in the variable itself: a task the request starts copies the context, and
# must see (and set) the same standing.
_CURRENT: ContextVar[WriteAdmission | None] = ContextVar("smsfailover_write_admission", default=None)


def current_admission() -> WriteAdmission | None:
    return _CURRENT.get()


@contextlib.contextmanager
def admission_scope() -> Iterator[WriteAdmission]:
    """Run a unit of work (one request) under a fresh WriteAdmission."""
    admission = WriteAdmission()
    token = _CURRENT.set(admission)
    try:
        yield admission
    finally:
        _CURRENT.reset(token)


class WriteAdmissionMiddleware:
    """Each HTTP request in its own admission scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with admission_scope():
            await self.app(scope, receive, send)
