"""smsfailover.core under real Pyodide (npm `pyodide` on Node, offline): import it, run breaker, ledger, router."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.pyodide

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYODIDE = ROOT / "node_modules" / "pyodide"
PURE_PYTHON_DEPS = ("phonenumbers", "jwt")  # phonenumberslite and PyJWT, as their import packages


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is required for the Pyodide tests"
    if not (PYODIDE / "pyodide.mjs").exists():
        npm = shutil.which("npm")
        assert npm, "npm is required to install the pyodide package"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=600)
    return found


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pure-Python dependencies, copied from this environment's site-packages (no download)."""
    target = tmp_path_factory.mktemp("pyodide-deps")
    for name in PURE_PYTHON_DEPS:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name} is not installed"
        assert spec.submodule_search_locations, f"{name} is not a package"
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def test_core_imports_and_routes_under_pyodide(
    node: str, deps: Path, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    proc = subprocess.run(
        [node, str(HERE / "run_smoke.mjs"), str(PYODIDE), str(ROOT / "packages/core/src"), str(deps), str(HERE)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert result["platform"] == "emscripten"
    assert result["python"].startswith("3.1")
    assert result["breaker_ok"] is True
    assert result["ledger_ok"] is True
    assert result["router_ok"] is True
    assert result["httpx2_imported"] is False, "core must not import httpx2 on its own"
    assert result["public_names"] == ["Attempt", "ClientConfig", "ConfigurationError"]

    record_property("pyodide_import_ms", result["import_ms"])
    record_property("load_pyodide_ms", result["load_pyodide_ms"])
    with capsys.disabled():
        print(
            f"\n[pyodide {result['python']}] import smsfailover.core + breaker/ledger/router: "
            f"{result['import_ms']} ms (loadPyodide {result['load_pyodide_ms']} ms)"
        )
