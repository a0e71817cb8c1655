"""The processes the benchmarks run against, on free 127.0.0.1 ports, through the project's process harness
(smsfailover.express_shim.processes): the provider simulator, the edge host, origins (any database, any provider
poster), the bare and hand-written baseline servers. Logs go under the run's temporary directory."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import httpx2
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.processes import (
    ManagedProcess,
    ProcessSpec,
    edge_spec,
    free_port,
    repo_root,
    simulator_spec,
    vendor_worker_modules,
)

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_BENCH_DB = "smsfailover_bench"
PG_BENCH_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_BENCH_DB}"
# Benchmarks push far past the per-workspace default of 50 messages per second: lift it for every process.
NO_RATE_LIMIT = "1000000"
CLOSED_PORT_URL = "http://127.0.0.1:9/v1/provider/twilio/status"  # port 9 (discard): nothing listens here


class BenchStack:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.logs = base / "logs"
        self.secrets = DevSecrets.generate()
        sim_port, edge_port = free_port(), free_port()
        self.env = self.secrets.environment(
            provider_url=f"http://127.0.0.1:{sim_port}", edge_url=f"http://127.0.0.1:{edge_port}"
        )
        self.env["SMSFAILOVER_RATE_LIMIT"] = NO_RATE_LIMIT
        self.python_modules = base / "python_modules"
        self.simulator = self.process(simulator_spec(self.env, sim_port))
        self.edge = self.process(edge_spec(self.env, edge_port, base / "edge", python_modules=self.python_modules))
        self._started: list[ManagedProcess] = []

    def process(self, spec: ProcessSpec) -> ManagedProcess:
        return ManagedProcess(spec, log_path=self.logs / f"{spec.name}-{spec.port}.log")

    def start(self) -> None:
        vendor_worker_modules(self.python_modules)
        self.run(self.simulator)
        self.run(self.edge)

    def run(self, process: ManagedProcess) -> ManagedProcess:
        process.start()
        if process not in self._started:
            self._started.append(process)
        return process

    def stop(self, process: ManagedProcess) -> None:
        process.stop()
        if process in self._started:
            self._started.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self._started)):
            self.stop(process)

    def edge_d1_ok(self) -> bool:
        """Whether the edge host still reaches its D1 (a settings read touches it); a 5xx means it does not."""
        url = f"{self.edge.url}/v1/workspaces/bench-probe/settings"
        try:
            reply = httpx2.get(url, headers={"Authorization": f"Bearer {self.token('bench-probe')}"}, timeout=10)
        except httpx2.HTTPError:
            return False
        return reply.status_code < 500

    def origin(self, db_url: str, *, poster: str = "default", profile_to: Path | None = None) -> ManagedProcess:
        """An origin on db_url (not started), served by benchmarks.origin_server with the given provider poster.
        The simulator's status callbacks go to a closed port: the benchmarks measure the send path, and callbacks
        arriving late would load the next case's origin."""
        port = free_port()
        env = {
            **self.env,
            "SMSFAILOVER_DATABASE_URL": db_url,
            "SMSFAILOVER_ORIGIN_URL": f"http://127.0.0.1:{port}",
            "SMSFAILOVER_STATUS_CALLBACK_URL": CLOSED_PORT_URL,
        }
        argv: tuple[str, ...] = (
            sys.executable,
            "-m",
            "benchmarks.origin_server",
            "--port",
            "{port}",
            "--poster",
            poster,
        )
        if profile_to is not None:
            argv += ("--profile", str(profile_to))
        name = f"origin-{poster}"
        return self.process(ProcessSpec(name, argv, port, "/v1/health", env=env, cwd=repo_root(), ready_timeout_s=60))

    def bare(self) -> ManagedProcess:
        argv = (sys.executable, "-m", "benchmarks.bare_app", "--port", "{port}")
        return self.process(ProcessSpec("bare", argv, free_port(), "/v1/health", cwd=repo_root()))

    def handwritten(self, db_url: str) -> ManagedProcess:
        """The hand-written send path (benchmarks.handwritten_app) on db_url, posting to the same simulator, with the
        origin's status callback (a closed port, see origin())."""
        env = {**self.env, "SMSFAILOVER_DATABASE_URL": db_url, "SMSFAILOVER_STATUS_CALLBACK_URL": CLOSED_PORT_URL}
        argv = (sys.executable, "-m", "benchmarks.handwritten_app", "--port", "{port}")
        return self.process(ProcessSpec("handwritten", argv, free_port(), "/v1/health", env=env, cwd=repo_root()))

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.base / name}.db"

    def token(self, workspace: str) -> str:
        from smsfailover.core.auth import issue_token

        return issue_token(self.secrets.jwt_secret, workspace_id=workspace, ttl_s=6 * 3600)

    def service_token(self) -> str:
        """For the edge's service routes (its ledger ping)."""
        from smsfailover.core.auth import issue_token

        return issue_token(self.secrets.service_key, service=True, ttl_s=6 * 3600)

    def client_env(self, origin_url: str) -> dict[str, str]:
        return {**self.env, "SMSFAILOVER_ORIGIN_URL": origin_url}

    def provider_count(self) -> int:
        listing = httpx2.get(self.simulator.url + "/_sim/messages", timeout=30).json()
        return len(listing["messages"])

    def provider_bodies(self) -> list[str]:
        listing = httpx2.get(self.simulator.url + "/_sim/messages", timeout=60).json()
        return [str(m.get("body", "")) for m in listing["messages"]]

    def clear_provider(self) -> None:
        httpx2.delete(self.simulator.url + "/_sim/messages", timeout=30)


async def fresh_postgres() -> str:
    """An empty database of its own on the local PostgreSQL, so the benchmark never touches the tests' data."""
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    finally:
        await admin.close()
    return PG_BENCH_URL
