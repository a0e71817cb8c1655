"""The Workers-fetch provider client under real Pyodide when the provider cannot be reached at all."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from .fake_provider import ACCOUNT_SID, AUTH_TOKEN, FROM
from .host_process import EdgeHostProcess
from .tokens import bearer, service_key_for, service_token, workspace_token

pytestmark = [pytest.mark.pyodide, pytest.mark.e2e]


def closed_port() -> int:
    """A port nothing listens on: bound, then released (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def host_without_provider(
    tmp_path_factory: pytest.TempPathFactory, jwt_secret: str, python_modules: Path
) -> Iterator[EdgeHostProcess]:
    host = EdgeHostProcess.start(
        persist=Path(tmp_path_factory.mktemp("edge-d1-no-provider")),
        env={
            "SMSFAILOVER_ENV": "test",
            "SMSFAILOVER_JWT_SECRET": jwt_secret,
            "SMSFAILOVER_SERVICE_KEY": service_key_for(jwt_secret),
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SMSFAILOVER_FROM": FROM,
            "SMSFAILOVER_PROVIDER_URL": f"http://127.0.0.1:{closed_port()}",
        },
        python_modules=python_modules,
        vendor_first=False,
    )
    yield host
    assert host.stop() == 0


def test_a_refused_connection_is_503_and_the_key_stays_free(
    host_without_provider: EdgeHostProcess, jwt_secret: str
) -> None:
    ws, key = f"ws_{uuid.uuid4().hex[:12]}", f"key-{uuid.uuid4()}"
    headers = {**bearer(workspace_token(jwt_secret, ws)), "Idempotency-Key": key}
    body = {"to": "+16266635938", "content": "nobody home", "workspace_id": ws}
    with httpx2.Client(base_url=host_without_provider.url, timeout=30) as http:
        mirror = {"sms_failover_enabled": True, "updated_at": int(time.time() * 1000)}
        put = http.put(f"/v1/settings-mirror/{ws}", json=mirror, headers=bearer(service_token(jwt_secret)))
        assert put.status_code == 200, put.text
        first = http.post("/v1/messages", json=body, headers=headers)
        assert first.status_code == 503, first.text
        assert first.json()["error"]["code"] == "provider_unavailable"
        # Nothing was sent, so the key was released: the same key may try again (and fails the same way).
        again = http.post("/v1/messages", json=body, headers=headers)
        assert again.status_code == 503
