"""Retention's statements under real Pyodide on Miniflare's D1 (the host): the sync's acknowledgement (a D1 batch
behind the shard check), the Cron Trigger's bounded deletes, and a ledger record without the message content.
The decisions themselves are tested in process (test_retention.py); here D1 must run the SQL."""

from __future__ import annotations

import httpx2
import pytest

from .host_process import EdgeHostProcess
from .test_host import new_key, new_ws, send
from .tokens import bearer, service_token, workspace_token

pytestmark = [pytest.mark.pyodide, pytest.mark.e2e]


def test_acknowledged_sync_and_the_cron_purge_run_on_d1_and_the_ledger_keeps_no_content(
    http: httpx2.Client, jwt_secret: str, edge_host: EdgeHostProcess
) -> None:
    ws, key = new_ws(), new_key()
    first = send(http, jwt_secret, ws, key, "words the ledger forgets")
    assert first.status_code == 201
    service = bearer(service_token(jwt_secret))

    record = http.get(f"/v1/ledger/{ws}/{key}", headers=service)
    assert record.status_code == 200
    kept = record.json()["message"]
    assert kept == {name: value for name, value in first.json().items() if name != "content"}
    replay = send(http, jwt_secret, ws, key, "words the ledger forgets")
    assert (replay.status_code, replay.json()) == (200, first.json())

    cursor, pages = 0, 0
    while True:  # the origin's way through the feed: each call acknowledges the page before it
        page = http.get("/v1/sync/messages", params={"after": str(cursor), "limit": "500"}, headers=service)
        assert page.status_code == 200, page.text
        body = page.json()
        pages += 1
        if not body["data"]:
            break
        cursor = body["next_cursor"]
    assert pages >= 2

    ran = http.get("/__scheduled", params={"cron": "17 * * * *"})
    assert ran.status_code == 200, "\n".join(edge_host.log)  # a failed purge statement fails the run (500)
    # the message is new: acknowledged but inside the retention, so the edge still has it
    assert (
        http.get(f"/v1/messages/{first.json()['id']}", headers=bearer(workspace_token(jwt_secret, ws))).status_code
        == 200
    )
