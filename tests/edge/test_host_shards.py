"""The local host with the edge ledger on two D1 shards and two Pyodide instances on one port: batches, each shard
healthy in ping, keys spread over both shards, and a changed shard list refused, not served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from smsfailover.core.clock import SystemClock
from smsfailover.core.ledger import IdempotencyLedger, InMemoryLedgerStore

from .host_process import EdgeHostProcess
from .tokens import bearer, service_key_for, service_token


def host_env(jwt_secret: str, shards: str) -> dict[str, str]:
    return {
        "SMSFAILOVER_ENV": "test",
        "SMSFAILOVER_JWT_SECRET": jwt_secret,
        "SMSFAILOVER_SERVICE_KEY": service_key_for(jwt_secret),
        "TWILIO_ACCOUNT_SID": "AC0",
        "TWILIO_AUTH_TOKEN": "t",
        "SMSFAILOVER_FROM": "+15005550006",
        "SMSFAILOVER_D1_SHARDS": shards,
        "SMSFAILOVER_EDGE_INSTANCES": "2",
    }


@pytest.fixture(scope="module")
def persist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-shards")


@pytest.fixture(scope="module")
def sharded(persist: Path, jwt_secret: str, python_modules: Path) -> Iterator[EdgeHostProcess]:
    host = EdgeHostProcess.start(
        persist=persist, env=host_env(jwt_secret, "DB,DB_1"), vendor_first=False, python_modules=python_modules
    )
    yield host
    assert host.stop() == 0, "\n".join(host.log)


def test_two_instances_serve_one_port_over_two_shards(sharded: EdgeHostProcess, jwt_secret: str) -> None:
    assert any("with 2 instances" in line for line in sharded.log)
    service = bearer(service_token(jwt_secret))
    with httpx2.Client(base_url=sharded.url, timeout=15) as http:
        ping = http.get("/v1/ledger/ping", headers=service)
        assert ping.status_code == 200
        assert [(s["binding"], s["ok"]) for s in ping.json()["shards"]] == [("DB", True), ("DB_1", True)]
        ledger = IdempotencyLedger(InMemoryLedgerStore(), SystemClock())
        claims = [ledger.new_claim("ws_sharded", f"key-{i}", "0" * 64, "origin") for i in range(40)]
        ops = [{"op": "claim", "record": c.to_json()} for c in claims]
        answer = http.post("/v1/ledger/batch", json={"ops": ops}, headers=service)
        assert answer.status_code == 200, answer.text
        assert all(r == {"claimed": True} for r in answer.json()["results"])
        again = http.post("/v1/ledger/batch", json={"ops": ops[:3]}, headers=service).json()["results"]
        assert [r["record"]["message_id"] for r in again] == [c.message_id for c in claims[:3]]
        for claim in claims:  # every key readable wherever it hashed, from either instance
            got = http.get(f"/v1/ledger/ws_sharded/{claim.key}", headers=service)
            assert got.json()["message_id"] == claim.message_id


def test_a_changed_shard_list_is_refused(
    sharded: EdgeHostProcess, persist: Path, jwt_secret: str, python_modules: Path
) -> None:
    with httpx2.Client(base_url=sharded.url, timeout=15) as http:
        assert http.get("/v1/ledger/ping", headers=bearer(service_token(jwt_secret))).status_code == 200
    sharded.stop()
    grown = EdgeHostProcess.start(
        persist=persist, env=host_env(jwt_secret, "DB,DB_1,DB_2"), vendor_first=False, python_modules=python_modules
    )
    try:
        with httpx2.Client(base_url=grown.url, timeout=15) as http:
            refused = http.get("/v1/ledger/ping", headers=bearer(service_token(jwt_secret)))
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "not_configured"
            assert "docs/scaling.md" in refused.json()["error"]["message"]
            assert http.get("/v1/health").status_code == 200  # health still answers, so the operator sees why
    finally:
        assert grown.stop() == 0
