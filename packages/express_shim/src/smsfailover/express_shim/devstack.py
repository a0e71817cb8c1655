"""`make dev`: the provider simulator (:8025), the edge host (:8787) and the origin (:8000) on 127.0.0.1.

    python -m smsfailover.express_shim.devstack [--origin-port 8000] [--edge-port 8787]
        [--simulator-port 8025] [--var var]

Creates var/dev-secret (random) on first run and gives all three the development environment from it;
prints the URLs, a token for workspace 15213 and a ready line; streams every process's output with a name
prefix; stops all three (origin first) on Ctrl-C or SIGTERM. The origin uses SMSFAILOVER_DATABASE_URL when
set, else SQLite at var/smsfailover.db; the edge keeps its D1 state under var/edge.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from smsfailover.express_shim.devenv import DEV_SECRET_PATH, DevSecrets
from smsfailover.express_shim.processes import (
    ManagedProcess,
    ProcessError,
    edge_spec,
    origin_spec,
    prefixed_sink,
    simulator_spec,
    vendor_worker_modules,
)

DEV_WORKSPACE = "15213"
DEV_TOKEN_TTL_S = 7 * 24 * 3600
HOST = "127.0.0.1"
WATCH_INTERVAL_S = 1.0


@dataclass(frozen=True)  # no slots: the argument defaults read the class attributes
class DevPorts:
    origin: int = 8000
    edge: int = 8787
    simulator: int = 8025


class PortBusy(RuntimeError):
    pass


def check_ports_free(ports: DevPorts) -> None:
    for name, port in (("origin", ports.origin), ("edge", ports.edge), ("simulator", ports.simulator)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                raise PortBusy(f"port {port} ({name}) is already in use: is `make dev` running elsewhere?") from exc


def build_processes(secrets: DevSecrets, ports: DevPorts, var_dir: Path) -> list[ManagedProcess]:
    """The three processes in start order (each one's dependencies first), output prefixed on stdout."""
    env = secrets.environment(
        provider_url=f"http://{HOST}:{ports.simulator}",
        origin_url=f"http://{HOST}:{ports.origin}",
        edge_url=f"http://{HOST}:{ports.edge}",
    )
    db_url = os.environ.get("SMSFAILOVER_DATABASE_URL") or f"sqlite:///{var_dir / 'smsfailover.db'}"
    lock = threading.Lock()
    return [
        ManagedProcess(simulator_spec(env, ports.simulator), sink=prefixed_sink("simulator | ", lock=lock)),
        ManagedProcess(edge_spec(env, ports.edge, var_dir / "edge"), sink=prefixed_sink("edge      | ", lock=lock)),
        ManagedProcess(origin_spec(env, ports.origin, db_url), sink=prefixed_sink("origin    | ", lock=lock)),
    ]


def banner(secrets: DevSecrets, ports: DevPorts) -> str:
    from smsfailover.core.auth import issue_token

    token = issue_token(secrets.jwt_secret, workspace_id=DEV_WORKSPACE, ttl_s=DEV_TOKEN_TTL_S)
    origin = f"http://{HOST}:{ports.origin}"
    return "\n".join(
        [
            "",
            f"  origin     {origin}",
            f"             settings page: {origin}/settings/advanced/sms-failover?workspace={DEV_WORKSPACE}",
            f"  edge       http://{HOST}:{ports.edge}",
            f"  simulator  http://{HOST}:{ports.simulator}   received messages: /_sim/messages",
            "",
            f"  token for workspace {DEV_WORKSPACE} (7 days):",
            f"    export SMSFAILOVER_TOKEN={token}",
            "  first send:",
            f'    curl -s {origin}/v1/messages -H "Authorization: Bearer $SMSFAILOVER_TOKEN" \\',
            "      -H \"Idempotency-Key: $(uuidgen)\" -H 'Content-Type: application/json' \\",
            f'      -d \'{{"to": "+16266635938", "content": "Hello", "workspace_id": "{DEV_WORKSPACE}"}}\'',
            "",
            "ready: origin, edge and provider simulator are up (Ctrl-C stops all three)",
        ]
    )


class StopRequested(Exception):
    pass


class StopOnSignal:
    """SIGINT/SIGTERM handler: the first signal starts the shutdown; later ones (a second Ctrl-C, or `uv run`
    forwarding the same one) are ignored so that they cannot cut the children's shutdown short."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            return
        self.requested = True
        raise StopRequested


def supervise(processes: Sequence[ManagedProcess], stop: threading.Event) -> None:
    """Until stop is set: report a process that exits on its own (the others keep running)."""
    reported: set[str] = set()
    while not stop.wait(WATCH_INTERVAL_S):
        for process in processes:
            if not process.is_running() and process.spec.name not in reported:
                reported.add(process.spec.name)
                print(f"devstack: {process.spec.name} exited; Ctrl-C stops the rest", flush=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m smsfailover.express_shim.devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--origin-port", type=int, default=DevPorts.origin)
    parser.add_argument("--edge-port", type=int, default=DevPorts.edge)
    parser.add_argument("--simulator-port", type=int, default=DevPorts.simulator)
    parser.add_argument("--var", type=Path, default=DEV_SECRET_PATH.parent, help="local state (default: var)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    ports = DevPorts(origin=args.origin_port, edge=args.edge_port, simulator=args.simulator_port)
    try:
        check_ports_free(ports)
    except PortBusy as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    secrets = DevSecrets.load_or_create(args.var / DEV_SECRET_PATH.name)
    processes = build_processes(secrets, ports, args.var.resolve())
    stopper = StopOnSignal()
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    stop = threading.Event()
    try:
        vendor_worker_modules()
        for process in processes:
            print(f"devstack: starting {process.spec.name} on {process.url}", flush=True)
            process.start()
        print(banner(secrets, ports), flush=True)
        supervise(processes, stop)
    except StopRequested:
        print("\ndevstack: stopping", flush=True)
    except ProcessError as exc:
        print(f"devstack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stopper.requested = True  # from here on, signals are ignored until every child has stopped
        stop.set()
        for process in reversed(processes):
            process.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("devstack: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
