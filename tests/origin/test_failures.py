"""What a client sees when the origin itself breaks, and what the logs never contain."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.origin.harness import new_workspace, running_origin


async def test_an_internal_failure_is_a_500_envelope_without_details(tmp_path: Path) -> None:
    async with running_origin("sqlite", tmp_path, background=False) as origin:
        ws = new_workspace()

        async def broken(workspace_id: str) -> object:
            raise RuntimeError("secret internals /etc/passwd")

        origin.services.settings.get = broken  # type: ignore[method-assign,assignment]
        resp = await origin.http.get(f"/v1/workspaces/{ws}/settings", headers=origin.auth(ws))

        assert resp.status_code == 500
        assert resp.json() == {
            "error": {"code": "internal_error", "message": "The origin could not handle this request; try again."}
        }
        assert "Traceback" not in resp.text
        assert "passwd" not in resp.text


async def test_logs_carry_no_token_and_no_message_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_origin("sqlite", tmp_path) as origin:
        ws = new_workspace()
        marker = "private-words-" + ws
        await origin.enable_failover(ws)
        await origin.edge_link.cut()  # the degraded path logs the most
        await origin.wait_for_ledger("local")
        resp = await origin.send(ws, content=marker)
        assert resp.status_code == 201

    text = "\n".join(record.getMessage() + repr(getattr(record, "fields", "")) for record in caplog.records)
    assert "degraded_local_claim" in text  # the logs did capture the origin's events
    assert marker not in text
    assert "eyJ" not in text  # no JWT (their base64 header always starts so)
    assert "Bearer" not in text
    assert origin.secrets.jwt_secret not in text
    assert origin.secrets.twilio_auth_token not in text
