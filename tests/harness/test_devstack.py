"""`make dev` and `make demo` as a user runs them: real processes, real ports, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from smsfailover.express_shim.processes import ProcessSpec, free_port

from tests.support.servers import launch

pytestmark = pytest.mark.e2e


def _wait_for_line(log: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = log.read_text() if log.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not printed within {timeout_s} s")


def test_make_dev_starts_three_processes_prints_a_token_and_stops_on_sigterm(tmp_path: Path) -> None:
    origin, edge, sim = free_port(), free_port(), free_port()
    argv = (
        sys.executable, "-m", "smsfailover.express_shim.devstack", "--origin-port", str(origin),
        "--edge-port", str(edge), "--simulator-port", str(sim), "--var", str(tmp_path / "var"),
    )  # fmt: skip
    # Ready when the origin (started last) answers; the devstack prints its banner right after.
    spec = ProcessSpec("devstack", argv, origin, "/v1/health", ready_timeout_s=150.0, stop_timeout_s=30.0)
    devstack = launch(spec, tmp_path)
    try:
        assert devstack.log_path is not None
        output = _wait_for_line(devstack.log_path, "ready: origin, edge and provider simulator are up", 10)
        for port, path in ((origin, "/v1/health"), (edge, "/v1/health"), (sim, "/_sim/messages")):
            assert httpx2.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        token = output.split("export SMSFAILOVER_TOKEN=", 1)[1].split()[0]
        settings = httpx2.get(
            f"http://127.0.0.1:{origin}/v1/workspaces/15213/settings",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert settings.status_code == 200, settings.text
        assert "origin    | " in output
        assert "edge      | " in output
        assert (tmp_path / "var" / "dev-secret").exists()
    finally:
        # Ctrl-C under `uv run` can arrive twice (the terminal's and uv's forwarded copy): the second must not
        # cut the shutdown short, or children in their own sessions would outlive the supervisor.
        assert devstack.pid is not None
        assert devstack.log_path is not None
        os.kill(devstack.pid, signal.SIGINT)
        _wait_for_line(devstack.log_path, "devstack: stopping", 10)
        os.kill(devstack.pid, signal.SIGINT)  # the second copy, while the supervisor stops its children
        _wait_for_line(devstack.log_path, "devstack: stopped", 60)
        devstack.stop()

    for port in (origin, edge, sim):
        with pytest.raises(httpx2.TransportError):
            httpx2.get(f"http://127.0.0.1:{port}/", timeout=2)
    assert "devstack: stopped" in devstack.log_path.read_text()


def test_make_demo_fails_over_and_the_provider_sees_no_duplicates() -> None:
    argv = [sys.executable, "-m", "smsfailover.express_shim.demo", "--messages", "10", "--interval-s", "0.2",
            "--stop-at", "3", "--start-at", "7"]  # fmt: skip

    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "duplicates: 0" in done.stdout
    assert " edge " in done.stdout
    assert "breaker closed -> open" in done.stdout


def test_make_demo_stopped_half_way_stops_its_stack(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    argv = [sys.executable, "-m", "smsfailover.express_shim.demo", "--messages", "200", "--interval-s", "0.1"]
    with log.open("w") as out:
        demo = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            output = _wait_for_line(log, "#02 ", 150)
            demo.send_signal(signal.SIGTERM)
            code = demo.wait(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait(timeout=10)

    assert code == 130
    urls = [line.split()[-1] for line in output.splitlines() if line.startswith("starting ")]
    assert len(urls) == 3
    for url in urls:
        with pytest.raises(httpx2.TransportError):
            httpx2.get(url + "/", timeout=2)
