"""The process harness (shared by `make dev` and the test suites), on real simulator processes."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx2
import pytest
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.processes import ManagedProcess, ProcessError, ProcessSpec, free_port

from tests.support.servers import launch, start_simulator


def _env() -> dict[str, str]:
    return DevSecrets.generate().environment(provider_url="http://127.0.0.1:9")


def _answers(process: ManagedProcess) -> bool:
    try:
        return httpx2.get(process.url + "/_sim/messages", timeout=2.0).status_code == 200
    except httpx2.TransportError:
        return False


def test_start_waits_until_ready_and_stop_ends_it(tmp_path: Path) -> None:
    process = start_simulator(_env(), log_dir=tmp_path)
    try:
        assert process.is_running()
        assert _answers(process)
        assert process.url.startswith("http://127.0.0.1:")
    finally:
        process.stop()

    assert not process.is_running()
    assert not _answers(process)
    assert process.log_path is not None
    assert "provider simulator ready on " + process.url in process.log_path.read_text()


def test_restart_comes_back_on_the_same_url(tmp_path: Path) -> None:
    process = start_simulator(_env(), log_dir=tmp_path)
    try:
        first_pid = process.pid
        process.restart()

        assert process.pid != first_pid
        assert _answers(process)
    finally:
        process.stop()


def test_kill_is_a_crash_and_start_recovers(tmp_path: Path) -> None:
    process = start_simulator(_env(), log_dir=tmp_path)
    try:
        process.kill()
        assert not process.is_running()
        assert not _answers(process)

        process.start()
        assert _answers(process)
    finally:
        process.stop()


def test_a_process_that_exits_early_is_reported_with_its_output(tmp_path: Path) -> None:
    # No Twilio credentials: the simulator refuses to start and says why.
    with pytest.raises(ProcessError) as caught:
        start_simulator({"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""}, log_dir=tmp_path)

    assert "exited before it was ready" in str(caught.value)
    assert "TWILIO_ACCOUNT_SID" in str(caught.value)


def test_a_process_that_never_gets_ready_is_killed_after_the_bound(tmp_path: Path) -> None:
    spec = ProcessSpec(
        "sleeper",
        (sys.executable, "-c", "import time; print('not listening', flush=True); time.sleep(60)"),
        free_port(),
        "/",
        ready_timeout_s=0.5,
    )
    process = launch(spec, tmp_path, start=False)

    with pytest.raises(ProcessError) as caught:
        process.start()

    assert "not ready" in str(caught.value)
    assert "not listening" in str(caught.value)
    assert not process.is_running()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import signal, socket, http.server, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    spec = ProcessSpec("stubborn", (sys.executable, "-c", code), port, "/", stop_timeout_s=0.5)
    process = launch(spec, tmp_path)

    process.stop()

    assert not process.is_running()


def test_output_that_is_not_utf8_is_still_drained_and_logged(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import http.server, sys\n"
        "sys.stdout.buffer.write(b'bad byte \\xff here\\n' * 20000); sys.stdout.flush()\n"  # more than a pipe holds
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    process = launch(ProcessSpec("noisy", (sys.executable, "-c", code), port, "/", ready_timeout_s=20), tmp_path)
    try:
        assert process.is_running()
    finally:
        process.stop()

    assert process.log_path is not None
    assert process.log_path.read_text().count("bad byte \ufffd here") == 20000
