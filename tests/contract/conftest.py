"""The contract suite runs every shared test twice, against the real origin and the real edge host.

The processes (origin, edge host, provider simulator) come from the session-scoped stack of tests/support.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.fixtures import edge_api, origin_api, sim, stack, tokens
from tests.contract.kit import Api, EnabledEdgeApi, Simulator, Tokens
from tests.support.fixtures import Stack

__all__ = ["edge_api", "origin_api", "sim", "stack", "tokens"]  # shared fixtures, registered here


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/contract/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def enabled_edge_api(stack: Stack, tokens: Tokens) -> Iterator[EnabledEdgeApi]:
    api = EnabledEdgeApi(stack.edge_url, tokens)
    yield api
    api.close()


@pytest.fixture(params=["origin", "edge"])
def api(request: pytest.FixtureRequest, origin_api: Api, enabled_edge_api: EnabledEdgeApi) -> Api:
    """Each endpoint as a caller of its workspace sees it: at the edge, a workspace with failover enabled."""
    return origin_api if request.param == "origin" else enabled_edge_api


@pytest.fixture(autouse=True)
def _healthy_stack(stack: Stack, sim: Simulator) -> Iterator[None]:
    """The stack is shared by the session: start from no faults and every process up, and leave it so."""
    stack.ensure_running()
    sim.clear_faults()
    yield
    sim.clear_faults()
