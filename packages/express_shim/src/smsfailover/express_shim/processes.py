"""Real local processes (origin, edge host, provider simulator): started on 127.0.0.1, ready when their
HTTP probe answers 200, their output captured line by line, stopped with SIGTERM then SIGKILL after a bound.

`make dev` (devstack) and the test harness (tests/support/servers.py) share this module. Each process runs in
its own session, so a Ctrl-C in the terminal reaches only the supervisor, which then stops the children in
order, and a signal to the group takes a child's own children (node workers) with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2

LineSink = Callable[[str], None]
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 40


class ProcessError(RuntimeError):
    """A process did not start or did not become ready; the message carries the end of its output."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it); the caller binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def repo_root() -> Path:
    """The monorepo root: the working directory when it holds the packages, else the root above this file."""
    cwd = Path.cwd()
    if (cwd / "packages" / "edge_worker" / "host" / "server.mjs").exists():
        return cwd
    return Path(__file__).resolve().parents[4]


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to run one server. `argv` may contain `{port}` and `{host}`, filled in at each start."""

    name: str
    argv: tuple[str, ...]
    port: int
    ready_path: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    host: str = "127.0.0.1"
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def simulator_spec(env: Mapping[str, str], port: int, *, callback_delay_ms: float = 20.0) -> ProcessSpec:
    argv = (
        sys.executable,
        "-m",
        "smsfailover.express_shim.simulator",
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--callback-delay-ms",
        str(callback_delay_ms),
    )
    return ProcessSpec("simulator", argv, port, "/_sim/messages", env=env, ready_timeout_s=30.0)


def origin_spec(env: Mapping[str, str], port: int, db_url: str) -> ProcessSpec:
    argv = (sys.executable, "-m", "smsfailover.express_shim", "serve", "--host", "{host}", "--port", "{port}")
    return ProcessSpec(
        "origin",
        argv,
        port,
        "/v1/health",
        env={**env, "SMSFAILOVER_DATABASE_URL": db_url},
        cwd=repo_root(),
        ready_timeout_s=30.0,
    )


def edge_spec(
    env: Mapping[str, str], port: int, persist_dir: Path, *, python_modules: Path | None = None
) -> ProcessSpec:
    """The edge host; python_modules (vendored core, see vendor_worker_modules) defaults to the repo's."""
    node = shutil.which("node") or "node"
    root = repo_root()
    argv = [
        node,
        str(root / "packages" / "edge_worker" / "host" / "server.mjs"),
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--persist",
        str(persist_dir),
    ]
    if python_modules is not None:
        argv += ["--python-modules", str(python_modules)]
    # Loading Pyodide and the worker's imports takes a few seconds, more on a busy CI machine.
    return ProcessSpec("edge", tuple(argv), port, "/v1/health", env=env, cwd=root, ready_timeout_s=120.0)


def vendor_worker_modules(target: Path | None = None) -> None:
    """Copy the current core (and its pure-Python dependencies) where the edge host loads them from, so the
    edge runs the same core as the origin; target None means the repo's python_modules/."""
    root = repo_root()
    argv = [sys.executable, str(root / "packages" / "edge_worker" / "tools" / "vendor.py")]
    if target is not None:
        argv += ["--target", str(target)]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ProcessError(f"vendoring core for the edge failed: {(done.stderr or done.stdout).strip()}")


class ManagedProcess:
    """One server process: start (and wait until ready), stop, kill (a crash), restart on the same port."""

    def __init__(self, spec: ProcessSpec, *, sink: LineSink | None = None, log_path: Path | None = None) -> None:
        """Output lines go to sink (e.g. a prefixed terminal) and/or are appended to the file log_path."""
        self.spec = spec
        self.log_path = log_path
        self._sink = sink
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._tail: list[str] = []

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_running():
            return
        argv = [part.format(port=self.spec.port, host=self.spec.host) for part in self.spec.argv]
        self._tail = []
        self._proc = subprocess.Popen(  # noqa: S603 (argv built from our own specs, no shell)
            argv,
            cwd=self.spec.cwd,
            env={**os.environ, **self.spec.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",  # a stray non-UTF-8 byte must not kill the reader and leave the pipe undrained
            bufsize=1,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("a", encoding="utf-8", buffering=1)
        self._reader = threading.Thread(
            target=self._pump, args=(self._proc.stdout, log), name=f"{self.spec.name}-output", daemon=True
        )
        self._reader.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.ready_timeout_s
        probe = self.url + self.spec.ready_path
        with httpx2.Client(timeout=2.0) as http:
            while True:
                if not self.is_running():
                    if self._reader is not None:
                        self._reader.join(timeout=2.0)  # let the last lines of its output arrive
                    raise ProcessError(f"{self.spec.name} exited before it was ready{self._tail_text()}")
                with contextlib.suppress(httpx2.HTTPError):
                    if http.get(probe).status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    self.kill()
                    raise ProcessError(
                        f"{self.spec.name} not ready at {probe} after {self.spec.ready_timeout_s:.0f} s"
                        f"{self._tail_text()}"
                    )
                time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the spec's stop timeout."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=self.spec.stop_timeout_s)
        self._finish()

    def kill(self) -> None:
        """SIGKILL the process and its group at once: a crash, with no chance to clean up."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._proc.wait(timeout=self.spec.stop_timeout_s)
        self._finish()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, signum: signal.Signals) -> None:
        assert self._proc is not None
        # The child leads its own process group (start_new_session): signal the group, so its children go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signum)

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=self.spec.stop_timeout_s)
        self._reader = None
        self._proc = None

    def _pump(self, stream: IO[str], log: IO[str] | None) -> None:
        """Runs in a thread until the process closes its output (it exits)."""
        try:
            for line in stream:
                text = line.rstrip("\n")
                self._tail = [*self._tail[-(LOG_TAIL_LINES - 1) :], text]
                if log is not None:
                    log.write(text + "\n")
                if self._sink is not None:
                    try:
                        self._sink(text)
                    except OSError:  # e.g. our stdout went away: keep draining, or the child blocks on write
                        self._sink = None
        finally:
            stream.close()
            if log is not None:
                log.close()

    def _tail_text(self) -> str:
        where = f" (all of it in {self.log_path})" if self.log_path is not None else ""
        if not self._tail:
            return f"; it printed nothing{where}"
        return f"; its last output{where}:\n" + "\n".join(self._tail)


def prefixed_sink(prefix: str, out: IO[str] | None = None, lock: threading.Lock | None = None) -> LineSink:
    """Print each line with a prefix such as `origin   | `; one lock shared by all sinks keeps lines whole."""
    shared = lock or threading.Lock()

    def write(line: str) -> None:
        with shared:
            print(f"{prefix}{line}", file=out or sys.stdout, flush=True)

    return write
