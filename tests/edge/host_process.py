"""Start and stop the local edge host (packages/edge_worker/host/server.mjs) as a real process.

Used by tests/edge and by any suite that needs the edge: `EdgeHostProcess.start(...)` vendors core into
`python_modules/` first (the host serves the same tree the bundle ships), waits for the "ready" line within a
deadline, and `stop()` sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = REPO_ROOT / "packages" / "edge_worker" / "host" / "server.mjs"
VENDOR = REPO_ROOT / "packages" / "edge_worker" / "tools" / "vendor.py"
READY = re.compile(r"ready on (http://127\.0\.0\.1:\d+) \(pyodide (\d+) ms, imports (\d+) ms\)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class EdgeHostError(RuntimeError):
    pass


def vendor(target: Path | None = None) -> None:
    args = [sys.executable, str(VENDOR)] + (["--target", str(target)] if target else [])
    subprocess.run(args, check=True, cwd=REPO_ROOT, capture_output=True, timeout=120)


@dataclass
class EdgeHostProcess:
    url: str
    process: subprocess.Popen[str]
    pyodide_ms: int
    import_ms: int
    log: deque[str] = field(default_factory=lambda: deque(maxlen=500))

    @classmethod
    def start(
        cls,
        *,
        persist: Path,
        env: Mapping[str, str],
        test_scheduled: bool = True,
        vendor_first: bool = True,
        python_modules: Path | None = None,
    ) -> EdgeHostProcess:
        if vendor_first:
            vendor(python_modules)
        args = ["node", str(SERVER), "--port", "0", "--persist", str(persist)]
        if python_modules is not None:
            args += ["--python-modules", str(python_modules)]
        if test_scheduled:
            args.append("--test-scheduled")
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log: deque[str] = deque(maxlen=500)
        ready: list[re.Match[str]] = []
        seen = threading.Event()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:  # ends when the process closes its output
                log.append(line.rstrip("\n"))
                found = READY.search(line)
                if found and not ready:
                    ready.append(found)
                    seen.set()
            seen.set()

        threading.Thread(target=pump, name="edge-host-log", daemon=True).start()
        if not seen.wait(START_TIMEOUT_S) or not ready:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
            raise EdgeHostError("the edge host did not become ready:\n" + "\n".join(log))
        match = ready[0]
        return cls(match.group(1), process, int(match.group(2)), int(match.group(3)), log)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def wait_for_log(self, needle: str, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(needle in line for line in list(self.log)):
                return True
            time.sleep(0.02)
        return False
