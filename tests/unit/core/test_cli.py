from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from smsfailover.core.cli import main, row_key
from smsfailover.core.client import FailoverClient
from smsfailover.core.config import ClientConfig
from smsfailover.core.router import BreakerRegistry

from .fakes import EDGE, ORIGIN, FakeClock, FakeEndpoints, FakeSleep, message, refused

SECRET = "cli-unit-test-secret-" + "z" * 32
SERVICE_KEY = "cli-unit-test-service-key-" + "q" * 32


class FakeOrigin:
    """A tiny in-memory origin: settings, status, and POST /v1/messages with replay by idempotency key."""

    def __init__(self) -> None:
        self.enabled = False
        self.sends: dict[str, dict[str, Any]] = {}
        self.first_sends = 0
        self.reject: dict[str, tuple[int, str]] = {}  # `to` -> (status, code)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("/settings"):
            if request.method == "PATCH":
                self.enabled = json.loads(request.content)["sms_failover_enabled"]
            return httpx2.Response(200, json={"workspace_id": "w1", "sms_failover_enabled": self.enabled})
        if path.endswith("/sms-failover/status"):
            return httpx2.Response(
                200,
                json={"workspace_id": "w1", "enabled": self.enabled, "ledger": "edge", "breaker": None,
                      "endpoints": {"origin": {"healthy": True, "requests": 3, "success_rate": 1.0,
                                               "p95_ms": 40}}},
            )  # fmt: skip
        body = json.loads(request.content)
        if body["to"] in self.reject:
            status, code = self.reject[body["to"]]
            field = "to" if code == "invalid_phone_number" else None
            return httpx2.Response(status, json={"error": {"code": code, "message": "no", "field": field}})
        key = request.headers["idempotency-key"]
        if key in self.sends:
            return httpx2.Response(200, json=self.sends[key], headers={"Idempotent-Replayed": "true"})
        self.first_sends += 1
        self.sends[key] = message("origin", key, id=f"msg_{len(self.sends):026d}")
        return httpx2.Response(201, json=self.sends[key])


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.endpoints = FakeEndpoints(self.clock)
        self.origin = FakeOrigin()
        self.endpoints.origin = [self.origin]
        self.tmp_path = tmp_path
        for name, value in {
            "SMSFAILOVER_ORIGIN_URL": ORIGIN,
            "SMSFAILOVER_EDGE_URL": EDGE,
            "SMSFAILOVER_JWT_SECRET": SECRET,
            "SMSFAILOVER_SERVICE_KEY": SERVICE_KEY,
            "SMSFAILOVER_ENV": "development",  # the CLI mints its own tokens with the secret only there
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SMSFAILOVER_TOKEN", raising=False)
        monkeypatch.chdir(tmp_path)

    def factory(self, config: ClientConfig) -> FailoverClient:
        return FailoverClient(
            config,
            transport=self.endpoints.transport(),
            clock=self.clock,
            sleep=FakeSleep(self.clock),
            breakers=BreakerRegistry(),
        )

    def __call__(self, *argv: str) -> int:
        return main(list(argv), make_client=self.factory)

    def csv(self, text: str, name: str = "rows.csv") -> str:
        path = self.tmp_path / name
        path.write_text(text)
        return str(path)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    return Cli(monkeypatch, tmp_path)


Capture = pytest.CaptureFixture[str]


def _stderr_lines(capsys: Capture) -> tuple[str, list[str]]:
    out, err = capsys.readouterr()
    return out, [line for line in err.splitlines() if line.strip()]


# -- token ---------------------------------------------------------------------------------------------------


def test_token_mints_workspace_and_service_tokens(cli: Cli, capsys: Capture) -> None:
    assert cli("token", "--workspace", "w1") == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert claims["workspace_id"] == "w1"
    assert cli("token", "--workspace", "w1", "--service", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert jwt.decode(printed["token"], SERVICE_KEY, algorithms=["HS256"])["role"] == "service"
    assert printed["workspace_id"] is None


def test_token_needs_a_workspace_or_service(cli: Cli, capsys: Capture) -> None:
    assert cli("token") == 2
    assert "--workspace is required" in capsys.readouterr().err


def test_token_without_a_secret_is_a_configuration_error(
    cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMSFAILOVER_JWT_SECRET")
    monkeypatch.setenv("SMSFAILOVER_ENV", "production")
    assert cli("token", "--workspace", "w1") == 3
    _, err = _stderr_lines(capsys)
    assert len(err) == 1
    assert "SMSFAILOVER_JWT_SECRET" in err[0]


def test_fleet_tokens_are_signed_with_the_service_key_only(
    cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMSFAILOVER_ENV", "production")
    monkeypatch.delenv("SMSFAILOVER_SERVICE_KEY")
    assert cli("token", "--operator") == 3  # the workspace secret alone cannot make one
    assert "SMSFAILOVER_SERVICE_KEY" in _stderr_lines(capsys)[1][0]
    monkeypatch.setenv("SMSFAILOVER_SERVICE_KEY", "k" * 40)
    assert cli("token", "--operator") == 0
    assert jwt.decode(capsys.readouterr().out.strip(), "k" * 40, algorithms=["HS256"])["role"] == "operator"


def test_development_mints_from_the_dev_secret_file(cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSFAILOVER_JWT_SECRET")
    monkeypatch.setenv("SMSFAILOVER_ENV", "development")
    (cli.tmp_path / "var").mkdir()
    (cli.tmp_path / "var" / "dev-secret").write_text("dev-" + "d" * 40)
    assert cli("token", "--workspace", "w1") == 0
    assert jwt.decode(capsys.readouterr().out.strip(), "dev-" + "d" * 40, algorithms=["HS256"])


# -- send ----------------------------------------------------------------------------------------------------


def test_send_prints_json_and_normalises_the_number(cli: Cli, capsys: Capture) -> None:
    code = cli(
        "send", "--workspace", "w1", "--to", "+1 (626) 663-5938", "--content", "hi",
        "--media-url", "https://example.com/a.jpg", "--contact-id", "c1",
        "--idempotency-key", "k-1", "--json",
    )  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["idempotency_key"] == "k-1"
    assert printed["endpoint"] == "origin"
    assert printed["message_id"].startswith("msg_")
    post = cli.endpoints.posts()[-1]
    assert post.body == {
        "to": "+16266635938",
        "content": "hi",
        "workspace_id": "w1",
        "contact_id": "c1",
        "media_urls": ["https://example.com/a.jpg"],
    }


def test_send_text_output(cli: Cli, capsys: Capture) -> None:
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "hi") == 0
    out = capsys.readouterr().out
    assert "via origin" in out
    assert "GSM-7" in out


def test_a_rejected_send_exits_1_with_one_line(cli: Cli, capsys: Capture) -> None:
    cli.origin.reject["12"] = (422, "invalid_phone_number")
    assert cli("send", "--workspace", "w1", "--to", "12", "--content", "hi") == 1
    out, err = _stderr_lines(capsys)
    assert out == ""
    assert err == ["rejected: invalid_phone_number (to): no"]


def test_a_rejected_send_with_json_also_prints_the_error(cli: Cli, capsys: Capture) -> None:
    cli.origin.reject["12"] = (422, "invalid_phone_number")
    assert cli("send", "--workspace", "w1", "--to", "12", "--content", "hi", "--json") == 1
    out, err = _stderr_lines(capsys)
    assert json.loads(out)["error"]["code"] == "invalid_phone_number"
    assert len(err) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_an_auth_rejection_exits_3(cli: Cli, capsys: Capture, status: int) -> None:
    cli.origin.reject["+16266635938"] = (status, "unauthorized")
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "hi") == 3
    assert len(_stderr_lines(capsys)[1]) == 1


def test_every_path_failing_exits_1(cli: Cli, capsys: Capture) -> None:
    cli.origin.enabled = True

    def origin(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/settings"):
            return cli.origin(request)
        return refused(request)

    cli.endpoints.origin = [origin]
    cli.endpoints.edge = [refused]
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "hi") == 1
    _, err = _stderr_lines(capsys)
    assert len(err) == 1
    assert err[0].startswith("failed: no endpoint could send the message")


def test_an_unknown_outcome_exits_4(cli: Cli, capsys: Capture) -> None:
    def origin(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/settings"):
            return cli.origin(request)
        error = {"error": {"code": "idempotency_in_progress", "message": "in flight"}}
        return httpx2.Response(409, json=error, headers={"Retry-After": "5"})

    cli.endpoints.origin = [origin]
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "hi") == 4
    assert "unknown outcome" in capsys.readouterr().out


def test_usage_errors_exit_2(cli: Cli, capsys: Capture) -> None:
    assert cli("send", "--to", "+16266635938") == 2
    assert cli("no-such-command") == 2
    assert cli() == 2
    assert cli("broadcast", "--workspace", "w1", "--csv", "x.csv", "--concurrency", "0") == 2
    assert cli("broadcast", "--workspace", "w1", "--csv", "x.csv", "--concurrency", "lots") == 2
    _, err = _stderr_lines(capsys)
    assert len(err) == 5
    assert all(line.startswith("smsfailover") for line in err)


def test_no_token_and_no_secret_exits_3(cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSFAILOVER_JWT_SECRET")
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "hi") == 3
    _, err = _stderr_lines(capsys)
    assert err[0].startswith("configuration: no API token")
    assert cli.endpoints.calls == []


def test_a_bad_variable_exits_3(cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSFAILOVER_ORIGIN_TIMEOUT_S", "soon")
    assert cli("status", "--workspace", "w1", "--json") == 3
    out, err = _stderr_lines(capsys)
    assert "SMSFAILOVER_ORIGIN_TIMEOUT_S" in err[0]
    assert json.loads(out)["error"]["code"] == "config"


def test_verbose_logs_routing_decisions_to_stderr(cli: Cli, capsys: Capture) -> None:
    assert cli("send", "--workspace", "w1", "--to", "+16266635938", "--content", "secret text", "-v") == 0
    err = capsys.readouterr().err
    assert "route.origin_only" in err
    assert "secret text" not in err


# -- status, settings, reset-breaker -------------------------------------------------------------------------


def test_status(cli: Cli, capsys: Capture) -> None:
    assert cli("status", "--workspace", "w1", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["enabled"] is False
    assert status["breaker"]["state"] == "closed"
    assert cli("status", "--workspace", "w1") == 0
    out = capsys.readouterr().out
    assert "failover disabled" in out
    assert "origin: healthy=True" in out


def test_settings_show_enable_disable(cli: Cli, capsys: Capture) -> None:
    assert cli("settings", "--workspace", "w1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["sms_failover_enabled"] is False
    assert cli("settings", "--workspace", "w1", "--enable", "--json") == 0
    assert json.loads(capsys.readouterr().out)["sms_failover_enabled"] is True
    assert cli.origin.enabled is True
    assert cli("settings", "--workspace", "w1", "--disable") == 0
    assert capsys.readouterr().out.strip() == "workspace w1: SMS failover disabled"
    assert cli("settings", "--workspace", "w1", "--enable", "--disable") == 2


def test_reset_breaker(cli: Cli, capsys: Capture) -> None:
    assert cli("reset-breaker") == 0
    assert "closed" in capsys.readouterr().out
    assert cli("reset-breaker", "--json") == 0
    assert json.loads(capsys.readouterr().out)["reset"] is True


# -- broadcast -----------------------------------------------------------------------------------------------


def _broadcast(cli: Cli, path: str, *extra: str) -> int:
    return cli("broadcast", "--workspace", "w1", "--csv", path, *extra)


def test_broadcast_twice_sends_each_row_once(cli: Cli, capsys: Capture) -> None:
    rows = "".join(f'+16266635938,"row {i}, with a comma"\n' for i in range(6))
    path = cli.csv("to,content\n" + rows)
    assert _broadcast(cli, path, "--concurrency", "3", "--broadcast-id", "b1", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert _broadcast(cli, path, "--concurrency", "3", "--broadcast-id", "b1", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert cli.origin.first_sends == 6
    assert (first["sent"], first["by_endpoint"], first["replayed"]) == (6, {"origin": 6}, 0)
    assert (second["sent"], second["replayed"]) == (6, 6)
    assert sorted(cli.origin.sends) == sorted(row_key("b1", n) for n in range(1, 7))
    bodies = [c.body for c in cli.endpoints.calls if c.method == "POST"]
    assert {"to": "+16266635938", "content": "row 0, with a comma", "workspace_id": "w1"} in bodies


def test_the_default_broadcast_id_comes_from_the_file(cli: Cli, capsys: Capture) -> None:
    path = cli.csv("to,content\n+16266635938,hello\n")
    assert _broadcast(cli, path) == 0
    assert _broadcast(cli, path) == 0
    assert cli.origin.first_sends == 1
    assert "1 already sent before" in capsys.readouterr().out


def test_broadcast_optional_columns(cli: Cli) -> None:
    path = cli.csv(
        "to,content,contact_id,media_url,idempotency_key\n"
        "+16266635938,,c9,https://example.com/a.jpg https://example.com/b.jpg,my-key\n"
    )
    assert _broadcast(cli, path) == 0
    post = cli.endpoints.posts()[-1]
    assert post.key == "my-key"
    assert post.body == {
        "to": "+16266635938",
        "workspace_id": "w1",
        "contact_id": "c9",
        "media_urls": ["https://example.com/a.jpg", "https://example.com/b.jpg"],
    }


def test_broadcast_reports_failures_and_exits_1(cli: Cli, capsys: Capture) -> None:
    cli.origin.reject["not-a-number"] = (422, "invalid_phone_number")
    path = cli.csv("to,content\n+16266635938,ok\nnot-a-number,bad\n")
    assert _broadcast(cli, path, "--json") == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["sent"] == 1
    assert summary["failed"][0]["row"] == 2
    assert summary["failed"][0]["code"] == "invalid_phone_number"
    assert _broadcast(cli, path) == 1
    assert "row 2: failed invalid_phone_number" in capsys.readouterr().out


def test_broadcast_auth_failures_exit_3(cli: Cli) -> None:
    cli.origin.reject["+16266635938"] = (401, "unauthorized")
    assert _broadcast(cli, cli.csv("to,content\n+16266635938,a\n")) == 3


def test_broadcast_send_failures_and_unknowns(cli: Cli, capsys: Capture) -> None:
    def origin(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/settings"):
            return cli.origin(request)
        to = json.loads(request.content)["to"]
        if to == "+16266635938":
            error = {"error": {"code": "idempotency_in_progress", "message": "in flight"}}
            return httpx2.Response(409, json=error, headers={"Retry-After": "20"})
        return cli.origin(request)

    cli.endpoints.origin = [origin]
    path = cli.csv("to,content\n+16266635938,a\n+442079460958,b\n")
    assert _broadcast(cli, path, "--json") == 4
    summary = json.loads(capsys.readouterr().out)
    assert [u["row"] for u in summary["unknown"]] == [1]
    assert summary["sent"] == 1

    cli.endpoints.origin = [lambda r: cli.origin(r) if r.url.path.endswith("/settings") else refused(r)]
    assert _broadcast(cli, path, "--broadcast-id", "other", "--json") == 1
    failed = json.loads(capsys.readouterr().out)["failed"]
    assert [f["code"] for f in failed] == ["send_failed", "send_failed"]


def test_broadcast_waits_out_a_rate_limit(cli: Cli, capsys: Capture) -> None:
    limited: set[str] = set()

    def origin(request: httpx2.Request) -> httpx2.Response:
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and key not in limited:  # each row's first POST meets the limit
            limited.add(key or "")
            error = {"error": {"code": "rate_limited", "message": "slow down"}}
            return httpx2.Response(429, json=error, headers={"Retry-After": "1"})
        return cli.origin(request)

    cli.endpoints.origin = [origin]
    path = cli.csv("to,content\n+16266635938,a\n+442079460958,b\n")
    assert _broadcast(cli, path, "--json") == 0
    assert json.loads(capsys.readouterr().out)["sent"] == 2
    assert cli.origin.first_sends == 2
    assert len(cli.endpoints.posts()) == 4


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("+16266635938,hello\n", "header row"),
        ("to,content,colour\n+16266635938,hi,red\n", "unexpected ['colour']"),
        ("to,content\n+16266635938,hi,extra\n", "more fields than the header"),
    ],
)
def test_broadcast_csv_problems_are_usage_errors(cli: Cli, capsys: Capture, text: str, says: str) -> None:
    assert _broadcast(cli, cli.csv(text)) == 2
    _, err = _stderr_lines(capsys)
    assert len(err) == 1
    assert says in err[0]
    assert cli.endpoints.calls == []


def test_broadcast_unreadable_files_are_usage_errors(cli: Cli, capsys: Capture) -> None:
    assert _broadcast(cli, str(cli.tmp_path / "missing.csv")) == 2
    assert _broadcast(cli, str(cli.tmp_path / "missing.csv"), "--broadcast-id", "b") == 2
    binary = cli.tmp_path / "binary.csv"
    binary.write_bytes(b"to,content\n\xff\xfe\n")
    assert _broadcast(cli, str(binary)) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_broadcast_without_a_token_stops_before_sending(
    cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMSFAILOVER_JWT_SECRET")
    assert _broadcast(cli, cli.csv("to,content\n+16266635938,a\n")) == 3
    assert cli.endpoints.calls == []


def test_broadcast_shows_a_progress_bar_on_a_terminal(
    cli: Cli, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert _broadcast(cli, cli.csv("to,content\n+16266635938,a\n+16266635938,b\n")) == 0
    assert "sent 2" in capsys.readouterr().out


def test_row_keys_are_stable_and_distinct() -> None:
    assert row_key("b1", 1) == row_key("b1", 1)
    assert len({row_key("b1", 1), row_key("b1", 2), row_key("b2", 1)}) == 3
    assert row_key("b1", 1).startswith("bc_")
