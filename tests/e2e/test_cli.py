"""The `smsfailover` CLI (CONTRACT §4) as a user runs it: a real process against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.contract.kit import Api, Simulator, Tokens, json_body, new_key, new_workspace, unique_content
from tests.support.fixtures import Stack

CLI = str(Path(sys.executable).with_name("smsfailover"))
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(stack: Stack, tmp_path: Path) -> Run:
    """Runs the CLI with the stack's URLs and secret; env overrides (None removes a variable)."""

    def runner(*args: str, env: dict[str, str | None] | None = None, timeout_s: float = 60) -> Any:
        full = {k: v for k, v in os.environ.items() if not k.startswith("SMSFAILOVER_")}
        full.update(
            {
                "SMSFAILOVER_ORIGIN_URL": stack.origin_url,
                "SMSFAILOVER_EDGE_URL": stack.edge_url,
                "SMSFAILOVER_ENV": "development",  # the stack's own mode: the CLI may mint tokens with the secret
                "SMSFAILOVER_JWT_SECRET": stack.jwt_secret,
                "SMSFAILOVER_SERVICE_KEY": stack.secrets.service_key,
                "NO_COLOR": "1",
                "COLUMNS": "120",
            }
        )
        for name, value in (env or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        return subprocess.run(
            [CLI, *args],
            capture_output=True,
            text=True,
            env=full,
            timeout=timeout_s,
            cwd=tmp_path,
            check=False,
        )

    return runner


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.stdout.strip(), (proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


def test_token_mints_workspace_service_and_operator_tokens_each_with_its_key(run: Run, stack: Stack) -> None:
    ws = new_workspace("cli")
    proc = run("token", "--workspace", ws)
    assert proc.returncode == 0, proc.stderr
    claims = jwt.decode(proc.stdout.strip(), stack.jwt_secret, algorithms=["HS256"])
    assert claims["workspace_id"] == ws

    for role in ("service", "operator"):
        minted = run("token", f"--{role}")
        assert minted.returncode == 0, minted.stderr
        assert jwt.decode(minted.stdout.strip(), stack.secrets.service_key, algorithms=["HS256"])["role"] == role
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(minted.stdout.strip(), stack.jwt_secret, algorithms=["HS256"])


def test_send_prints_the_result_as_json_and_sends_once(run: Run, sim: Simulator) -> None:
    ws = new_workspace("cli")
    content = unique_content("cli-send")
    key = new_key("cli")
    args = ("send", "--workspace", ws, "--to", "+16266635938", "--content", content, "--idempotency-key", key)

    first = run(*args, "--json")
    again = run(*args, "--json")

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    sent = _json(first)
    assert sent["idempotency_key"] == key
    assert sent["endpoint"] == "origin"
    assert str(sent["message_id"]).startswith("msg_")
    assert _json(again)["message_id"] == sent["message_id"]
    assert len(sim.received(content)) == 1


def test_send_accepts_a_friendlier_number(run: Run, sim: Simulator) -> None:
    ws = new_workspace("cli")
    content = unique_content("cli-friendly")
    proc = run("send", "--workspace", ws, "--to", "+1 (626) 663-5938", "--content", content)
    assert proc.returncode == 0, proc.stderr
    assert len(sim.received(content)) == 1


def test_a_rejected_send_exits_1_with_one_readable_line(run: Run) -> None:
    proc = run("send", "--workspace", new_workspace("cli"), "--to", "12", "--content", "hi")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("send", "--to", "+16266635938").returncode == 2
    assert run("no-such-command").returncode == 2


def test_missing_or_bad_credentials_exit_3(run: Run) -> None:
    ws = new_workspace("cli")
    no_secret = run(
        "send", "--workspace", ws, "--to", "+16266635938", "--content", "hi",
        env={"SMSFAILOVER_JWT_SECRET": None, "SMSFAILOVER_TOKEN": None, "SMSFAILOVER_ENV": "production"},
    )  # fmt: skip
    assert no_secret.returncode == 3, (no_secret.stdout, no_secret.stderr)
    assert "Traceback" not in no_secret.stderr

    # Outside development a client process sends with a token it is given: the signing key is not read.
    production = run(
        "send", "--workspace", ws, "--to", "+16266635938", "--content", "hi",
        env={"SMSFAILOVER_TOKEN": None, "SMSFAILOVER_ENV": "production"},
    )  # fmt: skip
    assert production.returncode == 3, (production.stdout, production.stderr)
    assert "SMSFAILOVER_TOKEN" in production.stderr

    forged = Tokens("another-secret-" + "y" * 32, "").workspace(ws)
    bad = run(
        "send", "--workspace", ws, "--to", "+16266635938", "--content", "hi",
        env={"SMSFAILOVER_JWT_SECRET": None, "SMSFAILOVER_TOKEN": forged},
    )  # fmt: skip
    assert bad.returncode == 3, (bad.stdout, bad.stderr)


def test_settings_shows_and_toggles_failover(run: Run, origin_api: Api) -> None:
    ws = new_workspace("cli")
    shown = run("settings", "--workspace", ws, "--json")
    assert shown.returncode == 0, shown.stderr
    assert _json(shown)["sms_failover_enabled"] is False

    enabled = run("settings", "--workspace", ws, "--enable", "--json")
    assert enabled.returncode == 0, enabled.stderr
    assert _json(enabled)["sms_failover_enabled"] is True
    body = json_body(origin_api.ws_get(ws, f"/v1/workspaces/{ws}/settings"))
    assert body["sms_failover_enabled"] is True

    assert run("settings", "--workspace", ws, "--disable").returncode == 0
    assert json_body(origin_api.ws_get(ws, f"/v1/workspaces/{ws}/settings"))["sms_failover_enabled"] is False


def test_status_prints_the_workspace_status(run: Run) -> None:
    ws = new_workspace("cli")
    proc = run("status", "--workspace", ws, "--json")
    assert proc.returncode == 0, proc.stderr
    assert _json(proc)["enabled"] is False


def test_reset_breaker_exits_0(run: Run) -> None:
    proc = run("reset-breaker")
    assert proc.returncode == 0, proc.stderr


def test_broadcast_twice_sends_each_row_once(run: Run, sim: Simulator, tmp_path: Path) -> None:
    ws = new_workspace("cli")
    marker = unique_content("broadcast")
    rows = [("+16266635938", f"{marker} row {i}") for i in range(6)]
    csv_file = tmp_path / "recipients.csv"
    csv_file.write_text("to,content\n" + "".join(f'{to},"{content}"\n' for to, content in rows))
    args = (
        "broadcast",
        "--workspace",
        ws,
        "--csv",
        str(csv_file),
        "--concurrency",
        "3",
        "--broadcast-id",
        "b1",
    )

    first = run(*args, "--json")
    second = run(*args, "--json")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert len(sim.received(marker)) == len(rows)
    for _, content in rows:
        assert len(sim.received(content)) == 1
    once, twice = _json(first), _json(second)
    assert (once["rows"], once["by_endpoint"], once["replayed"]) == (6, {"origin": 6}, 0)
    assert (twice["rows"], twice["replayed"]) == (6, 6), "the re-run only replays"
    assert once["failed"] == twice["failed"] == []


def test_broadcast_reports_failed_rows_and_exits_1(run: Run, sim: Simulator, tmp_path: Path) -> None:
    ws = new_workspace("cli")
    marker = unique_content("broadcast-bad")
    csv_file = tmp_path / "mixed.csv"
    csv_file.write_text(f"to,content\n+16266635938,{marker} ok\nnot-a-number,{marker} bad\n")

    proc = run("broadcast", "--workspace", ws, "--csv", str(csv_file), "--json")

    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert len(sim.received(marker)) == 1
    failed = _json(proc)["failed"]
    assert [(f["row"], f["code"]) for f in failed] == [(2, "invalid_phone_number")]


def test_broadcast_without_the_header_row_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    csv_file = tmp_path / "no-header.csv"
    csv_file.write_text("+16266635938,hello\n")
    proc = run("broadcast", "--workspace", new_workspace("cli"), "--csv", str(csv_file))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)


def test_send_fails_over_to_the_edge_while_the_origin_is_down(
    run: Run, stack: Stack, sim: Simulator, failover_ws: str
) -> None:
    content = unique_content("cli-failover")
    stack.stop_origin()

    proc = run("send", "--workspace", failover_ws, "--to", "+16266635938", "--content", content, "--json")

    assert proc.returncode == 0, proc.stderr
    sent = _json(proc)
    assert (sent["endpoint"], sent["requires_refresh"]) == ("edge", True)
    assert len(sim.received(content)) == 1


def test_status_while_the_origin_is_down_still_knows_the_setting(run: Run, stack: Stack, failover_ws: str) -> None:
    stack.stop_origin()
    proc = run("status", "--workspace", failover_ws, "--json")
    assert proc.returncode == 0, proc.stderr
    assert _json(proc)["enabled"] is True


def test_unknowns_lists_a_workspaces_open_outcomes_and_only_an_operator_marks_one(run: Run, stack: Stack) -> None:
    ws = new_workspace("cli")
    listed = run("unknowns", "--workspace", ws, "--json")
    assert listed.returncode == 0, listed.stderr  # 4 while any is unknown
    assert _json(listed) == {"workspace_id": ws, "data": []}
    assert "no unknown outcomes" in run("unknowns", "--workspace", ws).stdout
    refused = run("unknowns", "--workspace", ws, "--mark-failed", "msg_01J00000000000000000000000")
    assert refused.returncode == 3, refused.stderr  # a workspace token may not decide: 403
    operator = run("token", "--operator").stdout.strip()
    missing = run(
        "unknowns", "--workspace", ws, "--mark-failed", "msg_01J00000000000000000000000",
        env={"SMSFAILOVER_TOKEN": operator},
    )  # fmt: skip
    assert missing.returncode == 1, missing.stderr  # 404: nothing unknown by that id
    assert "Traceback" not in missing.stderr
