"""Session fixtures the contract, end-to-end and fuzz suites share (imported by their conftest.py files)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.contract.kit import Api, Simulator, Tokens
from tests.support.fixtures import Stack

_shared: Stack | None = None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the contract, end-to-end and fuzz suites together (each conftest registers this fixture,
    and pytest would otherwise start one stack per directory)."""
    global _shared
    if _shared is not None:
        yield _shared
        return
    db_url = os.environ.get("SMSFAILOVER_TEST_DATABASE_URL") or None
    _shared = Stack(tmp_path_factory.mktemp("contract-stack"), db_url=db_url)
    _shared.start()
    try:
        yield _shared
    finally:
        _shared.stop()
        _shared = None


@pytest.fixture(scope="session")
def tokens(stack: Stack) -> Tokens:
    return Tokens(stack.jwt_secret)


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
