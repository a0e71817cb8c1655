"""D1 migrations: 0001 is core's shared schema exactly; every file runs on SQLite (D1's engine)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

from smsfailover.core.sql import CALL_BEGAN_UPGRADE, SCHEMA, schema_statements

from .host_process import REPO_ROOT

MIGRATIONS = REPO_ROOT / "packages" / "edge_worker" / "migrations"


def normalized(script: str) -> list[str]:
    without_comments = "\n".join(re.sub(r"--.*$", "", line) for line in script.splitlines())
    return [" ".join(s.split()) for s in schema_statements(without_comments)]


def test_first_migration_is_core_schema() -> None:
    assert normalized((MIGRATIONS / "0001_init.sql").read_text()) == normalized(SCHEMA)


def test_the_call_began_migration_is_cores_upgrade() -> None:
    """The edge's D1 and the origin (its migration 7) run the same statements: core's CALL_BEGAN_UPGRADE."""
    assert normalized((MIGRATIONS / "0005_call_began.sql").read_text()) == normalized(CALL_BEGAN_UPGRADE)


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


def split_with_the_host(sql: str) -> list[str]:
    """The local host's own splitter (host/migrations.mjs), run by Node."""
    module = (REPO_ROOT / "packages/edge_worker/host/migrations.mjs").as_uri()
    script = (
        f"import({json.dumps(module)}).then(m => process.stdout.write(JSON.stringify("
        "m.splitStatements(require('fs').readFileSync(0, 'utf8')))))"
    )
    done = subprocess.run(["node", "-e", script], input=sql, capture_output=True, text=True, timeout=60, check=True)
    statements = json.loads(done.stdout)
    assert isinstance(statements, list)
    return [" ".join(str(s).split()) for s in statements]


def test_the_host_splits_each_migration_as_sqlite_would() -> None:
    for file in sorted(MIGRATIONS.glob("*.sql")):
        text = file.read_text()
        assert split_with_the_host(text) == normalized(text), file.name


def test_the_host_keeps_a_trigger_body_whole() -> None:
    sql = (
        "CREATE TABLE a (x INTEGER); -- note\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO a VALUES (1);\n  SELECT 1;\nEND;\n"
        "CREATE INDEX i ON a (x);\n"
    )
    assert split_with_the_host(sql) == [
        "CREATE TABLE a (x INTEGER)",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO a VALUES (1); SELECT 1; END",
        "CREATE INDEX i ON a (x)",
    ]
