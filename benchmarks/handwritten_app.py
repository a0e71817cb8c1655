"""The fair baseline of benchmark 3: the send path a user would write by hand without this system.

    python -m benchmarks.handwritten_app --port P     (SMSFAILOVER_DATABASE_URL, SMSFAILOVER_PROVIDER_URL, ...)

A Starlette endpoint served like the origin (one uvicorn process) that parses the JSON body, inserts the message
into SQLite and commits (WAL, synchronous FULL: the origin's ledger settings, storage/sqlite.py), POSTs it to the
provider as the origin does (Twilio's Messages API form with Basic auth, over aiohttp, keep-alive) and answers 201.
No idempotency, no ledger, no failover: what the system's guarantees cost is read against this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.bare_app import serve

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, to_number TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL
)
"""
_INSERT = "INSERT INTO messages (id, to_number, content, created_at) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class Provider:
    url: str
    auth: str  # the Basic Authorization header
    from_number: str
    status_callback: str | None

    @classmethod
    def from_env(cls) -> Provider:
        sid, token = os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"]
        base = os.environ["SMSFAILOVER_PROVIDER_URL"].rstrip("/")
        return cls(
            url=f"{base}/2010-04-01/Accounts/{sid}/Messages.json",
            auth=aiohttp.BasicAuth(sid, token).encode(),
            from_number=os.environ["SMSFAILOVER_FROM"],
            status_callback=os.environ.get("SMSFAILOVER_STATUS_CALLBACK_URL") or None,
        )

    def form(self, to: str, body: str) -> bytes:
        fields = [("To", to), ("From", self.from_number), ("Body", body)]
        if self.status_callback:
            fields.append(("StatusCallback", self.status_callback))
        return urlencode(fields).encode()


class Database:
    """One sqlite3 connection on one thread: what aiosqlite does, without the dependency. sqlite3 blocks, so it stays
    off the event loop, and one thread serializes the writes (SQLite takes one writer at a time anyway); each send
    commits its own row, as a hand-written endpoint would."""

    def __init__(self, path: str) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")  # as the origin: a committed row survives a power cut
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    async def insert(self, *row: object) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._insert, row)

    def _insert(self, row: tuple[object, ...]) -> None:
        self._conn.execute(_INSERT, row)
        self._conn.commit()

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._conn.close()


async def send(request: Request) -> JSONResponse:
    state = request.app.state
    body = json.loads(await request.body())
    to, content = str(body["to"]), str(body["content"])
    message_id = f"msg_{uuid.uuid4().hex}"
    await state.db.insert(message_id, to, content, int(time.time() * 1000))
    provider: Provider = state.provider
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": provider.auth}
    async with state.http.post(provider.url, data=provider.form(to, content), headers=headers) as reply:
        answer = await reply.json(content_type=None)
    if reply.status >= 300:
        return JSONResponse({"id": message_id, "status": "failed", "error": answer}, status_code=502)
    return JSONResponse({"id": message_id, "to": to, "status": "queued", "sid": answer.get("sid")}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = os.environ["SMSFAILOVER_DATABASE_URL"]
    app.state.db = Database(url.removeprefix("sqlite:///"))
    app.state.provider = Provider.from_env()
    # The origin's AiohttpPoster pool size and provider timeout, so both keep as many connections and wait as long.
    connector, timeout = aiohttp.TCPConnector(limit=64), aiohttp.ClientTimeout(total=10.0)
    app.state.http = aiohttp.ClientSession(connector=connector, timeout=timeout)
    try:
        yield
    finally:
        await app.state.http.close()
        app.state.db.close()


app = Starlette(
    routes=[Route("/v1/messages", send, methods=["POST"]), Route("/v1/health", health)],
    lifespan=lifespan,
)


def main() -> None:
    serve(app, "python -m benchmarks.handwritten_app")


if __name__ == "__main__":
    main()
