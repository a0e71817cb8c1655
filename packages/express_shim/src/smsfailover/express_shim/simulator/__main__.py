"""`python -m smsfailover.express_shim.simulator [--host 127.0.0.1] [--port 8025] [--callback-delay-ms 50]`

Reads TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the credentials it accepts). `--port 0` picks a free port; the
line "provider simulator ready on URL" on standard output carries the real one.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn
from smsfailover.express_shim.simulator.app import create_app
from smsfailover.express_shim.simulator.config import SimulatorConfig, SimulatorConfigError
from smsfailover.express_shim.simulator.connections import ConnectionRegistry


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smsfailover.express_shim.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--callback-delay-ms",
        type=float,
        default=50.0,
        help="pause before each delivery status step and its callback",
    )
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        config = SimulatorConfig.from_env(os.environ, callback_delay_s=args.callback_delay_ms / 1000)
    except SimulatorConfigError as exc:
        print(f"provider simulator: {exc}", file=sys.stderr)
        return 3
    connections = ConnectionRegistry()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"provider simulator: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, connections=connections),
            http=connections.protocol_class(),
            log_level=args.log_level,
            lifespan="on",
        )
    )
    print(f"provider simulator ready on http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
