"""tests/support/servers.py's starters on the real origin and edge host: the commands they run work."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from smsfailover.core.auth import issue_token
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.processes import ManagedProcess, vendor_worker_modules

from tests.support.servers import start_edge, start_origin, start_simulator

pytestmark = pytest.mark.e2e

PG_URL = os.environ.get("SMSFAILOVER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def secrets() -> DevSecrets:
    return DevSecrets.generate()


@pytest.fixture
def provider(secrets: DevSecrets, tmp_path: Path) -> Iterator[ManagedProcess]:
    process = start_simulator(secrets.environment(provider_url="http://127.0.0.1:9"), log_dir=tmp_path)
    yield process
    process.stop()


def _health(process: ManagedProcess) -> dict[str, object]:
    reply = httpx2.get(process.url + "/v1/health", timeout=5)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_start_origin_serves_restarts_on_its_url_and_survives_a_kill(
    secrets: DevSecrets, provider: ManagedProcess, tmp_path: Path, database: str
) -> None:
    db_url = f"sqlite:///{tmp_path / 'origin.db'}" if database == "sqlite" else PG_URL
    env = secrets.environment(provider_url=provider.url)
    origin = start_origin(env, db_url, log_dir=tmp_path)
    try:
        assert _health(origin)["endpoint"] == "origin"
        ws = f"harness_{uuid.uuid4().hex[:12]}"
        token = issue_token(secrets.jwt_secret, workspace_id=ws)
        sent = httpx2.post(
            origin.url + "/v1/messages",
            json={"to": "+16266635938", "content": f"harness {ws}", "workspace_id": ws},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": ws},
            timeout=10,
        )
        assert sent.status_code == 201, sent.text

        url = origin.url
        origin.kill()
        with pytest.raises(httpx2.TransportError):
            httpx2.get(url + "/v1/health", timeout=2)
        origin.start()

        assert origin.url == url
        replay = httpx2.get(
            origin.url + "/v1/messages",
            params={"idempotency_key": ws},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert replay.status_code == 200, replay.text  # the database outlived the crash
        assert replay.json()["id"] == sent.json()["id"]
    finally:
        origin.stop()


def test_start_edge_serves_and_restarts(secrets: DevSecrets, provider: ManagedProcess, tmp_path: Path) -> None:
    vendor_worker_modules(tmp_path / "python_modules")
    env = secrets.environment(provider_url=provider.url)
    edge = start_edge(env, tmp_path / "edge", log_dir=tmp_path, python_modules=tmp_path / "python_modules")
    try:
        assert _health(edge)["endpoint"] == "edge"
        first = edge.pid
        edge.restart()
        assert edge.pid != first
        assert _health(edge)["endpoint"] == "edge"
    finally:
        edge.stop()
    assert edge.log_path is not None
    assert "ready" in edge.log_path.read_text()
