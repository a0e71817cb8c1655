"""One real edge host (npm pyodide + Miniflare D1) per test session of tests/edge, and a fake provider."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from .fake_provider import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeProvider
from .host_process import EdgeHostProcess, vendor
from .tokens import service_key_for


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def python_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """core as it is now, vendored for these hosts only (the repository's python_modules/ is left alone)."""
    target = tmp_path_factory.mktemp("vendored") / "python_modules"
    vendor(target)
    return target


@pytest.fixture(scope="session")
def edge_host(
    tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider, jwt_secret: str, python_modules: Path
) -> Iterator[EdgeHostProcess]:
    persist: Path = tmp_path_factory.mktemp("edge-d1")
    host = EdgeHostProcess.start(
        persist=persist,
        python_modules=python_modules,
        vendor_first=False,
        env={
            "SMSFAILOVER_ENV": "test",
            "SMSFAILOVER_JWT_SECRET": jwt_secret,
            "SMSFAILOVER_SERVICE_KEY": service_key_for(jwt_secret),
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SMSFAILOVER_FROM": FROM,
            "SMSFAILOVER_PROVIDER_URL": provider.url,
            "SMSFAILOVER_RATE_LIMIT": "1000",
            "SMSFAILOVER_LEASE_S": "30",
            "SMSFAILOVER_PROVIDER_TIMEOUT_S": "1",
        },
    )
    yield host
    assert host.stop() == 0, "\n".join(host.log)


@pytest.fixture(scope="session")
def http(edge_host: EdgeHostProcess) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=edge_host.url, timeout=15.0) as client:
        yield client
