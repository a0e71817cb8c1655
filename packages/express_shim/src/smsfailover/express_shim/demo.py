"""`make demo`: failover seen from the SDK while the origin goes away and comes back.

    python -m smsfailover.express_shim.demo [--messages 30] [--interval-s 0.4] [--stop-at 6] [--start-at 18]

It starts its own stack (provider simulator, edge host, origin) on free ports in a temporary directory, so
it needs nothing else and leaves a running `make dev` alone. It enables failover for workspace `demo`, sends
a stream of messages through `FailoverClient`, stops the origin (SIGTERM) before one message and starts it
again before a later one, and prints each message's endpoint and latency, the breaker's state changes, and
at the end what the provider received: every message exactly once, duplicates 0. The breaker stays open 3 s
here (not the default 30 s) so that it closes again within the demo. The processes' logs are kept (and
their place printed) when the demo fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import httpx2
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.processes import (
    ManagedProcess,
    ProcessError,
    ProcessSpec,
    edge_spec,
    free_port,
    origin_spec,
    simulator_spec,
    vendor_worker_modules,
)

if TYPE_CHECKING:
    from smsfailover.core import FailoverClient, SendResult
    from smsfailover.core.breaker import StateChange

WORKSPACE = "demo"
TO = "+16266635938"
BREAKER_OPEN_S = 3.0
MIRROR_WAIT_S = 20.0


class DemoStack:
    """The three processes on free ports, logs under a temporary directory."""

    def __init__(self, base: Path) -> None:
        self.secrets = DevSecrets.generate()
        self.logs = base / "logs"
        self.python_modules = base / "python_modules"
        sim_port, edge_port, origin_port = free_port(), free_port(), free_port()
        self.env = self.secrets.environment(
            provider_url=f"http://127.0.0.1:{sim_port}",
            origin_url=f"http://127.0.0.1:{origin_port}",
            edge_url=f"http://127.0.0.1:{edge_port}",
        )
        edge = edge_spec(self.env, edge_port, base / "edge", python_modules=self.python_modules)
        self.simulator = self._process(simulator_spec(self.env, sim_port, callback_delay_ms=200))
        self.edge = self._process(edge)
        self.origin = self._process(origin_spec(self.env, origin_port, f"sqlite:///{base / 'origin.db'}"))

    def _process(self, spec: ProcessSpec) -> ManagedProcess:
        return ManagedProcess(spec, log_path=self.logs / f"{spec.name}.log")

    def start(self) -> None:
        vendor_worker_modules(self.python_modules)
        for process in (self.simulator, self.edge, self.origin):
            say(f"starting {process.spec.name:<9} {process.url}")
            process.start()

    def stop(self) -> None:
        for process in (self.origin, self.edge, self.simulator):
            process.stop()


def say(line: str) -> None:
    print(line, flush=True)


def describe(number: int, result: SendResult) -> str:
    tried = ", ".join(f"{a.endpoint} {a.outcome} {a.latency_ms:.0f} ms" for a in result.attempts)
    return (
        f"#{number:02d}  {result.endpoint:<6} {result.latency_ms:7.0f} ms  {result.status:<9}"
        f" {result.message_id}  [{tried}]"
    )


async def wait_for_edge_mirror(stack: DemoStack, token: str) -> None:
    """Failover needs the edge to know the setting too (the origin mirrors it there in the background)."""
    url = f"{stack.edge.url}/v1/workspaces/{WORKSPACE}/settings"
    deadline = time.monotonic() + MIRROR_WAIT_S
    async with httpx2.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            reply = await http.get(url, headers={"Authorization": f"Bearer {token}"})
            if reply.status_code == 200 and reply.json().get("sms_failover_enabled") is True:
                return
            await asyncio.sleep(0.1)
    say("  (the edge has not mirrored the setting yet; sends while the origin is down may fail)")


async def run(args: argparse.Namespace, stack: DemoStack) -> int:
    from smsfailover.core import FailoverClient, SmsFailoverError

    # The SDK's own warnings (failover, breaker) say what the demo prints in its own words below.
    logging.getLogger("smsfailover").setLevel(logging.ERROR)
    os.environ.update(stack.env)
    os.environ["SMSFAILOVER_BREAKER_OPEN_S"] = str(BREAKER_OPEN_S)
    os.environ.pop("SMSFAILOVER_TOKEN", None)
    client: FailoverClient = FailoverClient.from_env()
    token = client.token_for(WORKSPACE)

    def on_breaker(change: StateChange) -> None:
        say(f"      breaker {change.old.value} -> {change.new.value} ({change.reason})")

    client.router.breaker.add_listener(on_breaker)
    async with client:
        await client.set_failover_enabled(WORKSPACE, True)
        await wait_for_edge_mirror(stack, token)
        say(f"failover enabled for workspace {WORKSPACE!r}; sending {args.messages} messages\n")
        run_id = uuid.uuid4().hex[:8]
        endpoints: Counter[str] = Counter()
        failed = 0
        for number in range(1, args.messages + 1):
            if number == args.stop_at:
                say("  >>> stopping the origin")
                await asyncio.to_thread(stack.origin.stop)
            if number == args.start_at:
                say("  >>> starting the origin again")
                await asyncio.to_thread(stack.origin.start)
            try:
                result = await client.send_message(
                    to=TO, content=f"demo {run_id} message {number}", workspace_id=WORKSPACE
                )
            except SmsFailoverError as exc:
                failed += 1
                say(f"#{number:02d}  FAILED  {exc}")
            else:
                endpoints[result.endpoint] += 1
                say(describe(number, result))
            await asyncio.sleep(args.interval_s)
    return await summarize(stack, run_id, args.messages, endpoints, failed)


async def summarize(stack: DemoStack, run_id: str, sent: int, endpoints: Counter[str], failed: int) -> int:
    async with httpx2.AsyncClient(timeout=5.0) as http:
        listing = (await http.get(stack.simulator.url + "/_sim/messages")).json()
    ours = [m for m in listing["messages"] if f"demo {run_id} " in m["body"]]
    received = Counter(m["body"] for m in ours)
    duplicates = sum(n - 1 for n in received.values())
    say("")
    say(
        f"sent {sent} messages: "
        + ", ".join(f"{n} by the {e}" for e, n in sorted(endpoints.items()))
        + (f", {failed} failed" if failed else "")
    )
    say(f"the provider received {len(ours)} of them, {len(received)} distinct; duplicates: {duplicates}")
    return 0 if duplicates == 0 and failed == 0 else 1


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m smsfailover.express_shim.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--interval-s", type=float, default=0.4)
    parser.add_argument("--stop-at", type=int, default=6, help="stop the origin before this message")
    parser.add_argument("--start-at", type=int, default=18, help="start the origin before this message")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo the way Ctrl-C does: the stack is stopped first


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    base = Path(tempfile.mkdtemp(prefix="smsfailover-demo-"))
    stack = DemoStack(base)
    signal.signal(signal.SIGTERM, _interrupt)
    code = 1
    try:
        stack.start()
        code = asyncio.run(run(args, stack))
    except ProcessError as exc:
        say(f"demo: {exc}")
    except KeyboardInterrupt:
        code = 130
    finally:
        # The children run in their own sessions: a second Ctrl-C here must not leave them running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if code == 0:
        shutil.rmtree(base, ignore_errors=True)
    else:
        say(f"demo: the processes' logs are in {stack.logs}")
    return code


if __name__ == "__main__":
    sys.exit(main())
