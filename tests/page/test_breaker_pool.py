"""The origin reaches the shared breaker through one Redis client per process: status calls and actions reuse one
connection of its pool (seen from the real Redis on 127.0.0.1:6379, by a client name of the test's own), the
client is made at first use and closed at the app's shutdown."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis
from smsfailover.core.redis_breaker import DEFAULT_PREFIX
from smsfailover.express_shim.app import create_app
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.shared_breaker import REDIS_URL_ENV
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.sqlite import SqliteDatabase

from tests.page.conftest import PageOrigin

REDIS_PORT = 6379


def _redis_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


# Outside CI a machine without Redis skips these; in CI a skip is a failure (tests/conftest.py).
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not _redis_listening(), reason=f"Redis is not listening on 127.0.0.1:{REDIS_PORT}"),
]


@pytest.fixture
def client_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """The origin's Redis URL, with a client name Redis then lists each of the origin's connections under."""
    name = "origin-pool-" + uuid.uuid4().hex[:12]
    monkeypatch.setenv(REDIS_URL_ENV, f"redis://127.0.0.1:{REDIS_PORT}/0?client_name={name}")
    return name


async def _connection_ids(name: str) -> list[str]:
    redis = Redis(port=REDIS_PORT, decode_responses=True)
    try:
        clients = await redis.client_list()
    finally:
        await redis.aclose()
    return sorted(str(c["id"]) for c in clients if c.get("name") == name)


async def _forget(origin_url: str) -> None:
    redis = Redis(port=REDIS_PORT)
    try:
        await redis.delete(DEFAULT_PREFIX + origin_url, DEFAULT_PREFIX + origin_url + ":probe")
    finally:
        await redis.aclose()


async def test_status_calls_and_actions_reuse_one_connection(page_origin: PageOrigin, client_name: str) -> None:
    ws = "ws_pool"
    headers = {"authorization": f"Bearer {page_origin.token(ws)}"}
    try:
        async with page_origin.client() as http:
            first = await http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["breaker"]["reachable"] is True
            after_first = await _connection_ids(client_name)
            assert len(after_first) == 1  # kept open in the pool, not closed after the call
            second = await http.get(f"/v1/workspaces/{ws}/sms-failover/status", headers=headers)
            assert second.json()["breaker"]["state"] == "closed"
        await page_origin.services.breaker.steer("reset")
        assert await _connection_ids(client_name) == after_first  # the same connection, not a new one
        assert page_origin.services.breaker.clients_made == 1
    finally:
        await _forget(page_origin.url)


async def test_the_client_is_made_at_first_use_and_closed_at_shutdown(tmp_path: Path, client_name: str) -> None:
    async def open_db() -> Database:
        return SqliteDatabase(str(tmp_path / "origin.db"))

    origin_url = "http://origin-pool.test/" + uuid.uuid4().hex
    app = create_app(
        OriginConfig(jwt_secret="x" * 32, env="test", origin_url=origin_url, background=False), open_db=open_db
    )
    try:
        async with app.router.lifespan_context(app):
            services: OriginServices = app.state.services
            assert (services.breaker.clients_made, services.breaker.connected) == (0, False)  # lazily
            assert await _connection_ids(client_name) == []
            for _ in range(3):
                breaker = await services.breaker.status()
                assert breaker is not None
                assert breaker["reachable"] is True
            assert (services.breaker.clients_made, services.breaker.connected) == (1, True)
            assert len(await _connection_ids(client_name)) == 1
        assert services.breaker.connected is False  # closed with the app
    finally:
        await _forget(origin_url)
