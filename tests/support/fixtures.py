"""Fixtures over real processes, for other suites' conftest.py files to import:

    from tests.support.fixtures import simulator, stack  # noqa: F401 (registers the fixtures)

`stack` (session): the provider simulator, the edge host and the origin, wired to each other, on ephemeral
ports; its origin uses SQLite in a temporary directory, or SMSFAILOVER_TEST_DATABASE_URL when set (a
PostgreSQL URL). `simulator` (session): a simulator on its own, for tests that need nothing else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.processes import (
    ManagedProcess,
    ProcessSpec,
    edge_spec,
    free_port,
    origin_spec,
    repo_root,
    simulator_spec,
    vendor_worker_modules,
)

from tests.support.edge_link import PASS
from tests.support.servers import launch


class Stack:
    """The three processes of `make dev`, on ephemeral ports; stop, kill and start each one by name."""

    def __init__(self, base_dir: Path, *, db_url: str | None = None) -> None:
        self.secrets = DevSecrets.generate()
        self.log_dir = base_dir / "logs"
        self.db_url = db_url or f"sqlite:///{base_dir / 'origin.db'}"
        sim_port, edge_port, origin_port = free_port(), free_port(), free_port()
        self.env = self.secrets.environment(
            provider_url=f"http://127.0.0.1:{sim_port}",
            origin_url=f"http://127.0.0.1:{origin_port}",
            edge_url=f"http://127.0.0.1:{edge_port}",
        )
        # Load tests measure the ledger and failover, not the per-workspace limiter (its own tests set it low).
        self.env["SMSFAILOVER_RATE_LIMIT"] = "5000"
        self.env["SMSFAILOVER_STATUS_RATE_LIMIT"] = "1000"  # tests poll status; the limit's own: test_read_limits
        # The edge ledger on three D1 shards (docs/scaling.md), so every end-to-end test crosses shards.
        self.env["SMSFAILOVER_D1_SHARDS"] = "DB,DB_1,DB_2"
        self.simulator = launch(simulator_spec(self.env, sim_port), self.log_dir, start=False)
        # The edge loads core from its own vendored copy, made fresh at start(): the core under test.
        self.python_modules = base_dir / "python_modules"
        edge = edge_spec(self.env, edge_port, base_dir / "edge", python_modules=self.python_modules)
        self.edge = launch(edge, self.log_dir, start=False)
        # The origin reaches the edge through a link whose weather a test can set (edge_link.py); clients go direct.
        self.link_state = base_dir / "edge-link-state"
        self.set_edge_link(PASS)
        link_port = free_port()
        self.link = launch(edge_link_spec(link_port, edge_port, self.link_state), self.log_dir, start=False)
        origin_env = {**self.env, "SMSFAILOVER_EDGE_URL": f"http://127.0.0.1:{link_port}"}
        self.origin = launch(origin_spec(origin_env, origin_port, self.db_url), self.log_dir, start=False)

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        return (self.simulator, self.edge, self.link, self.origin)  # start order: what each one calls comes first

    def set_edge_link(self, state: str) -> None:
        """The weather between the origin and the edge: pass, blip or down (edge_link.py); read within 20 ms."""
        self.link_state.write_text(state)

    @property
    def jwt_secret(self) -> str:
        return self.secrets.jwt_secret

    @property
    def simulator_url(self) -> str:
        return self.simulator.url

    @property
    def edge_url(self) -> str:
        return self.edge.url

    @property
    def origin_url(self) -> str:
        return self.origin.url

    def ensure_running(self) -> None:
        """Start whatever a test stopped or killed; a no-op for processes still running."""
        for process in self.processes:
            process.start()

    def start(self) -> None:
        vendor_worker_modules(self.python_modules)
        try:
            self.ensure_running()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def start_origin(self) -> None:
        self.origin.start()

    def stop_origin(self) -> None:
        self.origin.stop()

    def kill_origin(self) -> None:
        self.origin.kill()

    def restart_origin(self) -> None:
        self.origin.restart()

    def start_edge(self) -> None:
        self.edge.start()

    def stop_edge(self) -> None:
        self.edge.stop()

    def kill_edge(self) -> None:
        self.edge.kill()

    def restart_edge(self) -> None:
        self.edge.restart()

    def start_simulator(self) -> None:
        self.simulator.start()

    def stop_simulator(self) -> None:
        self.simulator.stop()


def edge_link_spec(port: int, upstream_port: int, state_file: Path) -> ProcessSpec:
    argv = (
        sys.executable,
        "-m",
        "tests.support.edge_link",
        "--port",
        "{port}",
        "--upstream-port",
        str(upstream_port),
        "--state-file",
        str(state_file),
    )
    return ProcessSpec("edge-link", argv, port, "/v1/health", cwd=repo_root(), ready_timeout_s=60.0)


_shared_stack: Stack | None = None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack per test session, even when several directories' conftest.py files register this fixture
    (pytest would otherwise make one per directory); the first registration to run owns and stops it."""
    global _shared_stack
    if _shared_stack is not None:
        yield _shared_stack
        return
    running = Stack(tmp_path_factory.mktemp("stack"), db_url=os.environ.get("SMSFAILOVER_TEST_DATABASE_URL") or None)
    running.start()
    _shared_stack = running
    try:
        yield running
    finally:
        _shared_stack = None
        running.stop()


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A provider simulator process and the Twilio credentials it accepts."""

    process: ManagedProcess
    secrets: DevSecrets

    @property
    def url(self) -> str:
        return self.process.url


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    """A provider simulator alone, for tests that need nothing else."""
    secrets = DevSecrets.generate()
    env = secrets.environment(provider_url="http://127.0.0.1:0")
    process = launch(simulator_spec(env, free_port()), tmp_path_factory.mktemp("simulator"))
    yield RunningSimulator(process, secrets)
    process.stop()
