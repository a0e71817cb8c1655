"""Start REAL server processes on ephemeral 127.0.0.1 ports for tests, and stop them cleanly.

Each start_* returns a ManagedProcess (smsfailover.express_shim.processes, shared with `make dev`) that is
already answering its readiness probe; `.url`, `.stop()` (SIGTERM, then SIGKILL after a bound), `.restart()`
(same port), `.kill()` (SIGKILL: a crash) and `.log_path` (its whole output, for a failing test's report).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from smsfailover.express_shim.processes import (
    ManagedProcess,
    ProcessSpec,
    edge_spec,
    free_port,
    origin_spec,
    simulator_spec,
)

__all__ = ["ManagedProcess", "launch", "start_edge", "start_origin", "start_simulator"]


def _log_dir(log_dir: Path | None) -> Path:
    return log_dir if log_dir is not None else Path(tempfile.mkdtemp(prefix="smsfailover-logs-"))


def launch(spec: ProcessSpec, log_dir: Path | None = None, *, start: bool = True) -> ManagedProcess:
    """A process for spec whose output goes to `<log_dir>/<name>-<port>.log`, started unless start=False."""
    log_path = _log_dir(log_dir) / f"{spec.name}-{spec.port}.log"
    process = ManagedProcess(spec, log_path=log_path)
    if start:
        process.start()
    return process


def start_simulator(env: Mapping[str, str], *, port: int | None = None, log_dir: Path | None = None) -> ManagedProcess:
    return launch(simulator_spec(env, port or free_port()), log_dir)


def start_origin(
    env: Mapping[str, str], db_url: str, *, port: int | None = None, log_dir: Path | None = None
) -> ManagedProcess:
    return launch(origin_spec(env, port or free_port(), db_url), log_dir)


def start_edge(
    env: Mapping[str, str],
    persist_dir: Path,
    *,
    port: int | None = None,
    log_dir: Path | None = None,
    python_modules: Path | None = None,
) -> ManagedProcess:
    """The edge host; python_modules is a vendored core (processes.vendor_worker_modules), default the repo's."""
    return launch(edge_spec(env, port or free_port(), persist_dir, python_modules=python_modules), log_dir)
