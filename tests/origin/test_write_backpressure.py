"""The SQLite write bound through the real origin app (uvicorn in the test's loop): a send refused at the bound is
`503 storage_busy` with Retry-After and leaves nothing behind; a send taken before the queue filled still settles.

The writer is held up the way production meets it: another connection holds the database's write lock, so the
writer thread waits in busy_timeout and nothing commits until the test lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import jwt
import pytest
from smsfailover.core.ledger import LedgerState
from smsfailover.core.provider import HttpReply
from smsfailover.express_shim.app import create_app
from smsfailover.express_shim.config import ConfigError, OriginConfig
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.storage.base import Database, StorageBusy
from smsfailover.express_shim.storage.sqlite import SqliteDatabase
from starlette.applications import Starlette

from tests.origin.fake_edge import FakeEdgeState, fake_edge
from tests.origin.harness import new_key, new_workspace
from tests.origin.servers import free_port, serve

BOUND = 4
FILLER = "CREATE TABLE IF NOT EXISTS filler (n INTEGER)"


@dataclass
class GatedPoster:
    """The provider seam: counts every call and, while `gate` is clear, holds the answer (a call in flight)."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        self.calls.append(dict(fields).get("Body", ""))
        await self.gate.wait()
        sid = "SM" + uuid.uuid4().hex
        return HttpReply(201, json.dumps({"sid": sid, "status": "queued", "num_segments": "1"}).encode())


@dataclass
class BusyOrigin:
    app: Starlette
    http: httpx2.AsyncClient
    secret: str
    db_path: str
    poster: GatedPoster
    edge: FakeEdgeState

    @property
    def services(self) -> OriginServices:
        services: OriginServices = self.app.state.services
        return services

    @property
    def db(self) -> SqliteDatabase:
        db = self.services.db
        assert isinstance(db, SqliteDatabase)
        return db

    def auth(self, ws: str) -> dict[str, str]:
        token = jwt.encode({"workspace_id": ws, "exp": int(time.time() + 3600)}, self.secret, "HS256")
        return {"Authorization": f"Bearer {token}"}

    async def send(self, ws: str, key: str, content: str) -> httpx2.Response:
        body = {"to": "+16266635938", "workspace_id": ws, "content": content}
        return await self.http.post("/v1/messages", json=body, headers={**self.auth(ws), "Idempotency-Key": key})


@contextlib.asynccontextmanager
async def busy_origin(tmp_path: Path) -> AsyncIterator[BusyOrigin]:
    secrets = DevSecrets.generate()
    edge_state = FakeEdgeState()
    poster = GatedPoster()
    db_path = str(tmp_path / "origin.db")

    async def open_db() -> Database:
        return SqliteDatabase(db_path, max_pending_writes=BOUND)

    async with serve(fake_edge(edge_state)) as edge_url:
        port = free_port()
        config = OriginConfig(
            jwt_secret=secrets.jwt_secret,
            env="test",
            origin_url=f"http://127.0.0.1:{port}",
            edge_url=edge_url,
            provider_url="http://127.0.0.1:9",  # the poster below answers instead
            twilio_account_sid=secrets.twilio_account_sid,
            twilio_auth_token=secrets.twilio_auth_token,
            from_number=secrets.from_number,
            edge_timeout_s=2.0,
            background=False,  # no background writes: the test owns the queue
        )
        app = create_app(config, open_db=open_db, poster=poster)
        async with serve(app, port) as url, httpx2.AsyncClient(base_url=url, timeout=15) as http:
            yield BusyOrigin(app, http, secrets.jwt_secret, db_path, poster, edge_state)


@contextlib.contextmanager
def write_lock_held(path: str) -> Iterator[None]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def filled(origin: BusyOrigin) -> list[asyncio.Task[None]]:
    """Queue writes of other work (outside any request's scope) until the queue is at its bound."""
    db, loop = origin.db, asyncio.get_running_loop()
    missing = db.max_pending_writes - db.pending_writes
    fillers = [loop.create_task(db.script(FILLER), context=contextvars.Context()) for _ in range(missing)]
    await until(lambda: db.pending_writes == db.max_pending_writes, "the queue at its bound")
    return fillers


@pytest.mark.parametrize("failover", [False, True], ids=["failover_off", "failover_on"])
async def test_a_send_refused_at_the_bound_is_503_storage_busy_and_leaves_no_claim(
    tmp_path: Path, failover: bool
) -> None:
    async with busy_origin(tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        if failover:  # enabling: the origin now claims each new key at the edge too (OriginLedger, not LocalSendSteps)
            patched = await origin.http.patch(
                f"/v1/workspaces/{ws}/settings", json={"sms_failover_enabled": True}, headers=origin.auth(ws)
            )
            assert patched.status_code == 200, patched.text
        with write_lock_held(origin.db_path):
            fillers = await filled(origin)

            refused = await origin.send(ws, key, "refused at the bound")

            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "storage_busy"
            assert set(refused.json()["error"]) == {"code", "message"}
            assert refused.headers["retry-after"] == "1"
            assert origin.poster.calls == []  # nothing reached the provider
            assert await origin.services.local_ledger.get(ws, key) is None  # no claim to hold the key
            assert await origin.services.messages.get_by_key(ws, key) is None
            assert (ws, key) not in origin.edge.ledger
            assert not any(filler.done() for filler in fillers)
        await asyncio.gather(*fillers)  # every write queued before the refusal committed
        assert origin.db.pending_writes == 0


async def test_a_refused_send_is_sent_once_when_retried_after_the_queue_drains(tmp_path: Path) -> None:
    async with busy_origin(tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        with write_lock_held(origin.db_path):
            fillers = await filled(origin)
            assert (await origin.send(ws, key, "retried")).status_code == 503
        await asyncio.gather(*fillers)

        retried = await origin.send(ws, key, "retried")

        assert retried.status_code == 201, retried.text
        assert origin.poster.calls == ["retried"]


async def test_a_send_taken_before_the_queue_filled_still_settles_past_the_bound(tmp_path: Path) -> None:
    """Nothing accepted is lost: the send's claim was taken, so its settle passes a full queue (admission.py)."""
    async with busy_origin(tmp_path) as origin:
        ws, key = new_workspace(), new_key()
        origin.poster.gate.clear()
        sending = asyncio.create_task(origin.send(ws, key, "taken first"))
        await until(lambda: origin.poster.calls == ["taken first"], "the provider call")  # claim and row committed
        with write_lock_held(origin.db_path):
            fillers = await filled(origin)
            with pytest.raises(StorageBusy):  # new work is refused ...
                await asyncio.get_running_loop().create_task(origin.db.script(FILLER), context=contextvars.Context())

            origin.poster.gate.set()  # ... but the answered send's settle is queued past the bound
            await until(lambda: origin.db.pending_writes == BOUND + 1, "the settle queued")
            assert not sending.done()
        sent = await sending
        await asyncio.gather(*fillers)

        assert sent.status_code == 201, sent.text
        record = await origin.services.local_ledger.get(ws, key)
        assert record is not None
        assert record.state is LedgerState.COMPLETED
        row = await origin.services.messages.get_by_key(ws, key)
        assert row is not None
        assert row["status"] == "queued"


def test_the_bound_is_read_from_the_environment() -> None:
    keys = {"SMSFAILOVER_JWT_SECRET": "w" * 32, "SMSFAILOVER_SERVICE_KEY": "s" * 32}
    assert OriginConfig.from_env(keys).sqlite_max_pending_writes == 2048
    config = OriginConfig.from_env({**keys, "SMSFAILOVER_SQLITE_MAX_PENDING_WRITES": "64"})
    assert config.sqlite_max_pending_writes == 64
    for bad in ("0", "-1", "1.5", "many"):
        with pytest.raises(ConfigError, match="SMSFAILOVER_SQLITE_MAX_PENDING_WRITES"):
            OriginConfig.from_env({**keys, "SMSFAILOVER_SQLITE_MAX_PENDING_WRITES": bad})


async def test_the_origin_opens_its_sqlite_database_with_the_configured_bound(tmp_path: Path) -> None:
    config = OriginConfig(
        jwt_secret="w" * 32,
        env="test",
        database_url=f"sqlite:///{tmp_path}/origin.db",
        sqlite_max_pending_writes=7,
        background=False,
    )
    app = create_app(config)
    async with serve(app):
        db = app.state.services.db
        assert isinstance(db, SqliteDatabase)
        assert db.max_pending_writes == 7
