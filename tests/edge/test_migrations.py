"""D1 migrations: 0001 is core's shared schema exactly; every file runs on SQLite (D1's engine)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from smsfailover.core.sql import SCHEMA, schema_statements

from .host_process import REPO_ROOT

MIGRATIONS = REPO_ROOT / "packages" / "edge_worker" / "migrations"


def normalized(script: str) -> list[str]:
    without_comments = "\n".join(re.sub(r"--.*$", "", line) for line in script.splitlines())
    return [" ".join(s.split()) for s in schema_statements(without_comments)]


def test_first_migration_is_core_schema() -> None:
    assert normalized((MIGRATIONS / "0001_init.sql").read_text()) == normalized(SCHEMA)


def test_migrations_are_numbered_and_apply_in_order_on_sqlite(tmp_path: Path) -> None:
    files = sorted(MIGRATIONS.glob("*.sql"))
    assert [f.name[:4] for f in files] == [f"{i:04d}" for i in range(1, len(files) + 1)]
    db = sqlite3.connect(tmp_path / "d1.sqlite")
    try:
        for file in files:
            db.executescript(file.read_text())
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()
    assert {"idempotency_ledger", "messages", "settings_mirror"} <= tables
