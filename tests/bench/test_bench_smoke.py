"""`python -m benchmarks` in its quick mode (BENCH_QUICK=1) runs every benchmark against real processes and
writes its report: this keeps the benchmark code from rotting. It checks completion and the report, never a speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_completes_and_writes_the_report(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUTPUT": str(output)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    report = output.read_text(encoding="utf-8")
    for number in range(1, 8):
        assert f"## {number}. " in report, f"section {number} missing from the report"
    assert "Did not complete" not in report
    assert "quick smoke run" in report
    assert "duplicates at the provider" in report
