"""Session fixtures the contract, end-to-end and fuzz suites share (imported by their conftest.py files)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.kit import Api, Simulator, Tokens
from tests.support.fixtures import Stack, stack

__all__ = ["edge_api", "origin_api", "sim", "stack", "tokens"]


@pytest.fixture(scope="session")
def tokens(stack: Stack) -> Tokens:
    return Tokens(stack.jwt_secret, stack.secrets.service_key)


@pytest.fixture(scope="session")
def origin_api(stack: Stack, tokens: Tokens) -> Iterator[Api]:
    api = Api("origin", stack.origin_url, tokens)
    yield api
    api.close()


@pytest.fixture(scope="session")
def edge_api(stack: Stack, tokens: Tokens) -> Iterator[Api]:
    api = Api("edge", stack.edge_url, tokens)
    yield api
    api.close()


@pytest.fixture(scope="session")
def sim(stack: Stack) -> Iterator[Simulator]:
    simulator = Simulator(stack.simulator_url)
    yield simulator
    simulator.close()
