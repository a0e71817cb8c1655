"""`wrangler deploy --dry-run` packages the worker offline: entry, edge app and vendored core, in limits."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from .host_process import REPO_ROOT, vendor

pytestmark = [pytest.mark.slow]

# Workers' compressed size limit is 3 MB on the free plan (10 MB paid); stay well inside the smaller one.
FREE_PLAN_LIMIT = 3 * 1024 * 1024


def test_dry_run_bundle_holds_entry_app_and_core(tmp_path: Path) -> None:
    vendor()
    outdir = tmp_path / "worker"
    npx = shutil.which("npx")
    assert npx is not None, "npx is needed (Node 20 and `npm ci`)"
    result = subprocess.run(
        [npx, "--no-install", "wrangler", "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (outdir / "entry.py").is_file()
    assert (outdir / "smsfailover" / "edge_worker" / "app.py").is_file()
    assert (outdir / "python_modules" / "smsfailover" / "core" / "messages_api.py").is_file()
    assert (outdir / "python_modules" / "phonenumbers").is_dir()
    assert (outdir / "python_modules" / "jwt").is_dir()
    # Nothing from the local host or the workers SDK may ship: workerd provides its own SDK.
    bundled = {p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file()}
    assert not any(p.startswith(("host/", "python_modules/workers/", "_pyodide")) for p in bundled)

    size = _gzip_size(outdir)
    print(f"worker bundle: {len(bundled)} files, {size / 1024:.0f} KiB compressed")
    assert size < FREE_PLAN_LIMIT


def test_wrangler_applies_the_migrations_to_a_local_d1(tmp_path: Path) -> None:
    """The same files, through wrangler's own `d1 migrations apply` (what a deploy runs with --remote)."""
    persist = tmp_path / "d1"
    _wrangler("d1", "migrations", "apply", "smsfailover", "--local", "--persist-to", str(persist))
    listing = _wrangler(
        "d1",
        "execute",
        "smsfailover",
        "--local",
        "--persist-to",
        str(persist),
        "--json",
        "--command",
        "SELECT name FROM sqlite_master WHERE type = 'table'",
    )
    tables = {row["name"] for row in json.loads(listing)[0]["results"]}
    assert {"d1_migrations", "idempotency_ledger", "messages", "settings_mirror"} <= tables


def _wrangler(*args: str) -> str:
    npx = shutil.which("npx")
    assert npx is not None, "npx is needed (Node 20 and `npm ci`)"
    done = subprocess.run(
        [npx, "--no-install", "wrangler", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "true"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _gzip_size(directory: Path) -> int:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        tar.add(directory, arcname=".")
    return buffer.tell()
