"""A real origin for tests: the Starlette app under uvicorn on an ephemeral port, with a real SQLite file or a
PostgreSQL schema of its own, the real provider simulator, and the small fake edge (tests/origin/fake_edge.py).

Everything runs in the test's event loop, so a test can also reach the app's services (app.state.services).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import jwt
from smsfailover.express_shim.app import create_app
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.simulator import SimulatorConfig
from smsfailover.express_shim.simulator import create_app as create_simulator
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.postgres import PostgresDatabase
from starlette.applications import Starlette

from tests.origin.fake_edge import FakeEdgeState, fake_edge
from tests.origin.pg import PG_URL, drop_pg_schema, new_pg_schema
from tests.origin.servers import free_port, serve
from tests.support.tcp_switch import TcpSwitch

T = TypeVar("T")
VALID_TO = "+16266635938"


def new_workspace() -> str:
    return "ws_" + uuid.uuid4().hex[:12]


def new_key() -> str:
    return "key-" + uuid.uuid4().hex


@dataclass
class Origin:
    url: str
    app: Starlette
    http: httpx2.AsyncClient
    secrets: DevSecrets
    edge: FakeEdgeState
    sim_url: str
    edge_link: TcpSwitch  # cut() refuses every connection to the edge: definitely unreachable

    @property
    def services(self) -> OriginServices:
        services: OriginServices = self.app.state.services
        return services

    def token(self, ws: str, *, ttl_s: float = 3600) -> str:
        return jwt.encode({"workspace_id": ws, "exp": int(time.time() + ttl_s)}, self.secrets.jwt_secret, "HS256")

    def service_token(self) -> str:
        return jwt.encode({"role": "service", "exp": int(time.time() + 600)}, self.secrets.service_key, "HS256")

    def operator_token(self) -> str:
        return jwt.encode({"role": "operator", "exp": int(time.time() + 600)}, self.secrets.service_key, "HS256")

    def auth(self, ws: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(ws)}"}

    async def send(
        self, ws: str, *, key: str | None = None, content: str | None = None, **extra: Any
    ) -> httpx2.Response:
        body = {"to": VALID_TO, "workspace_id": ws, "content": content or f"hello {uuid.uuid4().hex}", **extra}
        headers = {**self.auth(ws), "Idempotency-Key": key or new_key()}
        return await self.http.post("/v1/messages", json=body, headers=headers)

    async def set_failover(self, ws: str, enabled: bool) -> httpx2.Response:
        return await self.http.patch(
            f"/v1/workspaces/{ws}/settings", json={"sms_failover_enabled": enabled}, headers=self.auth(ws)
        )

    async def switch_state(self, ws: str) -> str:
        return str(
            (await self.http.get(f"/v1/workspaces/{ws}/settings", headers=self.auth(ws))).json()["failover_state"]
        )

    async def enable_failover(self, ws: str) -> None:
        """Turn failover on and wait for the two-phase switch to reach `on` (the edge mirror then says enabled)."""
        assert (await self.set_failover(ws, True)).status_code == 200

        async def on() -> bool | None:
            return True if await self.switch_state(ws) == "on" else None

        await apoll(on, timeout_s=15, what="the failover switch to reach on")

    async def ledger_mode(self) -> str:
        return str((await self.http.get("/v1/health")).json()["ledger"])

    async def wait_for_ledger(self, mode: str) -> None:
        """Until health says the origin uses the `mode` ledger (degraded mode is decided by the liveness round)."""

        async def reached() -> bool | None:
            return True if await self.ledger_mode() == mode else None

        await apoll(reached, timeout_s=15, what=f"the origin's ledger to be {mode}")

    async def sim_received(self, marker: str) -> list[dict[str, Any]]:
        async with httpx2.AsyncClient(base_url=self.sim_url) as sim:
            data = (await sim.get("/_sim/messages")).json()
        items = data.get("messages", data.get("data")) if isinstance(data, dict) else data
        return [m for m in items or [] if marker in str(m.get("body", m.get("Body", "")))]

    async def provider_has(self, content: str) -> str:
        """The simulator takes a message as a lost call would have left it (posted straight to it); its sid."""
        config = self.services.config
        async with httpx2.AsyncClient(base_url=self.sim_url) as sim:
            response = await sim.post(
                f"/2010-04-01/Accounts/{config.twilio_account_sid}/Messages.json",
                data={"To": VALID_TO, "From": config.from_number or "", "Body": content},
                auth=(config.twilio_account_sid, config.twilio_auth_token),
            )
        assert response.status_code == 201, response.text
        return str(response.json()["sid"])

    async def sim_faults(self, **faults: Any) -> None:
        async with httpx2.AsyncClient(base_url=self.sim_url) as sim:
            (await sim.post("/_sim/faults", json=faults)).raise_for_status()


async def apoll(probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 10, what: str = "it") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def database_opener(kind: str, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Database]]]:
    """What create_app(open_db=...) calls: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        from smsfailover.express_shim.storage.sqlite import SqliteDatabase

        async def open_sqlite() -> Database:
            return SqliteDatabase(str(tmp_path / "origin.db"))

        yield open_sqlite
        return
    schema = await new_pg_schema()

    async def open_pg() -> Database:
        return await PostgresDatabase.connect(PG_URL, schema=schema)

    try:
        yield open_pg
    finally:
        await drop_pg_schema(schema)


@contextlib.asynccontextmanager
async def running_origin(
    db_kind: str, tmp_path: Path, edge_state: FakeEdgeState | None = None, **config_overrides: Any
) -> AsyncIterator[Origin]:
    secrets = DevSecrets.generate()
    edge_state = edge_state or FakeEdgeState()
    sim_app = create_simulator(
        SimulatorConfig(secrets.twilio_account_sid, secrets.twilio_auth_token, callback_delay_s=0.01)
    )
    origin_port = free_port()
    origin_url = f"http://127.0.0.1:{origin_port}"
    async with (
        serve(sim_app) as sim_url,
        serve(fake_edge(edge_state)) as edge_url,
        database_opener(db_kind, tmp_path) as open_db,
    ):
        edge_link = TcpSwitch(int(edge_url.rsplit(":", 1)[1]))
        await edge_link.connect()
        edge_url = f"http://127.0.0.1:{edge_link.port}"
        config = OriginConfig(
            jwt_secret=secrets.jwt_secret,
            service_key=secrets.service_key,
            env="test",
            origin_url=origin_url,
            edge_url=edge_url,
            provider_url=sim_url,
            twilio_account_sid=secrets.twilio_account_sid,
            twilio_auth_token=secrets.twilio_auth_token,
            from_number=secrets.from_number,
            edge_timeout_s=0.5,
            outbox_interval_s=0.05,
            sync_interval_s=0.1,
            probe_interval_s=0.1,
            reconcile_interval_s=0.05,  # the liveness round too (ledger/liveness.py)
            ledger_outage_s=0.5,  # degraded mode after 0.5 s without a ledger round trip (7 s in production)
            switch_interval_s=0.05,
            status_rate_limit=1000.0,  # tests poll status every 20 ms; the limit itself: tests/page/test_read_limits.py
        )
        config = dataclasses.replace(config, **config_overrides)
        app = create_app(config, open_db=open_db)
        async with serve(app, origin_port) as url, httpx2.AsyncClient(base_url=url, timeout=15) as http:
            try:
                yield Origin(url, app, http, secrets, edge_state, sim_url, edge_link)
            finally:
                await edge_link.cut()
