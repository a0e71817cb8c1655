"""End-to-end tests: the SDK and the CLI against the real origin, edge host and provider simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from smsfailover.core import FailoverClient

from tests.contract.fixtures import edge_api, origin_api, sim, stack, tokens
from tests.contract.kit import Api, Simulator, Tokens, json_body, new_workspace, poll
from tests.support.edge_link import PASS
from tests.support.fixtures import Stack

__all__ = ["edge_api", "origin_api", "sim", "stack", "tokens"]  # shared fixtures, registered here


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _clean_stack(stack: Stack, sim: Simulator, edge_api: Api) -> Iterator[None]:
    """Whatever a test broke (faults, a stopped process), the next test starts healthy; and the edge host's D1
    still answers after every test, load tests included (it has no failure mode of its own: host/d1.mjs)."""
    stack.ensure_running()
    stack.set_edge_link(PASS)
    sim.clear_faults()
    yield
    sim.clear_faults()
    stack.set_edge_link(PASS)
    stack.ensure_running()
    probe = new_workspace("d1probe")
    reply = edge_api.ws_get(probe, f"/v1/workspaces/{probe}/settings")
    assert reply.status_code == 200, f"the edge's D1 stopped answering during this test: {reply.text}"


def enable_failover(origin_api: Api, edge_api: Api, ws: str) -> None:
    """Turn failover on at the origin and wait until the edge mirror has it (an outbox drains it)."""
    resp = origin_api.http.patch(
        f"/v1/workspaces/{ws}/settings",
        json={"sms_failover_enabled": True},
        headers={"Authorization": f"Bearer {origin_api.tokens.workspace(ws)}"},
    )
    assert resp.status_code == 200, resp.text

    def mirrored() -> bool | None:
        body = json_body(edge_api.ws_get(ws, f"/v1/workspaces/{ws}/settings"))
        return True if body.get("sms_failover_enabled") is True else None

    poll(mirrored, timeout_s=15, interval_s=0.1, what="the edge settings mirror")


@pytest.fixture
def failover_ws(origin_api: Api, edge_api: Api) -> str:
    ws = new_workspace("e2e")
    enable_failover(origin_api, edge_api, ws)
    return ws


ClientFactory = Callable[..., FailoverClient]


@pytest.fixture
async def make_client(stack: Stack, tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ClientFactory]:
    """FailoverClient.from_env() over the real stack; keyword arguments override SMSFAILOVER_* variables."""
    clients: list[FailoverClient] = []

    def factory(*, workspace_id: str, **env: str) -> FailoverClient:
        base = {
            "SMSFAILOVER_ORIGIN_URL": stack.origin_url,
            "SMSFAILOVER_EDGE_URL": stack.edge_url,
            "SMSFAILOVER_TOKEN": tokens.workspace(workspace_id),
            "SMSFAILOVER_JWT_SECRET": stack.jwt_secret,
            "SMSFAILOVER_SETTINGS_TTL_S": "0.5",
        }
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, value)
        client = FailoverClient.from_env()
        client.reset_circuit_breaker()  # breakers are per process and origin URL: start each test closed
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
