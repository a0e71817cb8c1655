"""One key, one outcome (DESIGN.md, "Ledger authority"): retries of one key across failover toggles, a paused
edge, and either endpoint, against the real origin, edge host and provider simulator, counted at the provider.

Each scenario is one the first build sent twice; the provider simulator counts what it received. The toggle
scenarios also run against two origin processes sharing one PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smsfailover.express_shim.processes import ManagedProcess, free_port, origin_spec

from tests.contract.kit import (
    Api,
    Simulator,
    Tokens,
    json_body,
    new_key,
    new_workspace,
    poll,
    send_body,
    unique_content,
)
from tests.e2e.conftest import enable_failover
from tests.origin.pg import PG_URL, drop_pg_schema, new_pg_schema
from tests.support.fixtures import Stack
from tests.support.servers import launch


def set_failover(origin: Api, ws: str, enabled: bool) -> dict[str, Any]:
    resp = origin.http.patch(
        f"/v1/workspaces/{ws}/settings",
        json={"sms_failover_enabled": enabled},
        headers={"Authorization": f"Bearer {origin.tokens.workspace(ws)}"},
    )
    assert resp.status_code == 200, resp.text
    return json_body(resp)


def disable_failover(origin: Api, edge: Api, ws: str) -> None:
    """Turn failover off and wait until the edge mirror says so (the edge then takes no new key for it)."""
    set_failover(origin, ws, False)

    def mirrored() -> bool | None:
        body = json_body(edge.ws_get(ws, f"/v1/workspaces/{ws}/settings"))
        return True if body.get("sms_failover_enabled") is False else None

    poll(mirrored, timeout_s=15, interval_s=0.1, what="the edge mirror to say disabled")


def sent_once(sim: Simulator, content: str) -> None:
    received = sim.received(content)
    assert len(received) == 1, f"the provider received {len(received)} copies of {content!r}"


def send(api: Api, ws: str, key: str, content: str) -> dict[str, Any]:
    resp = api.send(ws, send_body(ws, content=content), key=key)
    body = json_body(resp)
    body["_status"] = resp.status_code
    return body


@contextlib.contextmanager
def paused(process: ManagedProcess) -> Iterator[None]:
    """SIGSTOP the process (and its children): connections still open, nothing answers."""
    assert process.pid is not None
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


# -- one origin (the session's stack, SQLite) ----------------------------------------------------------------------


def test_sent_while_off_then_enabled_a_retry_at_the_origin_replays(
    origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    ws, key, content = new_workspace("ko"), new_key("off-on"), unique_content("off-then-on")
    first = send(origin_api, ws, key, content)
    assert first["_status"] == 201, first
    enable_failover(origin_api, edge_api, ws)

    retry = send(origin_api, ws, key, content)

    assert (retry["_status"], retry["id"]) == (200, first["id"])
    sent_once(sim, content)


def test_sent_while_on_then_disabled_a_retry_at_the_origin_replays(
    origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    ws, key, content = new_workspace("ko"), new_key("on-off"), unique_content("on-then-off")
    enable_failover(origin_api, edge_api, ws)
    first = send(origin_api, ws, key, content)
    assert first["_status"] == 201, first
    disable_failover(origin_api, edge_api, ws)

    retry = send(origin_api, ws, key, content)

    assert (retry["_status"], retry["id"]) == (200, first["id"])
    sent_once(sim, content)


def test_sent_while_on_a_retry_at_the_origin_while_the_edge_is_paused_replays(
    stack: Stack, origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    ws, key, content = new_workspace("ko"), new_key("paused"), unique_content("edge-paused")
    enable_failover(origin_api, edge_api, ws)
    first = send(origin_api, ws, key, content)
    assert first["_status"] == 201, first

    with paused(stack.edge):
        retry = send(origin_api, ws, key, content)

    assert (retry["_status"], retry["id"]) == (200, first["id"])
    sent_once(sim, content)


def test_a_new_key_while_the_edge_is_paused_is_not_sent_on_the_local_ledger(
    stack: Stack, origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    """A paused edge is slow, not definitely unreachable: 503 with nothing sent, then one send once it answers."""
    ws, key, content = new_workspace("ko"), new_key("paused-new"), unique_content("new-while-paused")
    enable_failover(origin_api, edge_api, ws)

    with paused(stack.edge):
        during = send(origin_api, ws, key, content)
    assert during["_status"] == 503, during
    assert during["error"]["code"] == "ledger_unavailable"
    assert sim.received(content) == []

    def sent_after() -> dict[str, Any] | None:
        body = send(origin_api, ws, key, content)
        return body if body["_status"] in (200, 201) else None

    after = poll(sent_after, timeout_s=20, interval_s=0.5, what="a send once the edge answers again")
    assert after["ledger"] == "edge"
    sent_once(sim, content)


def test_sent_while_off_the_same_key_at_the_edge_is_refused(origin_api: Api, edge_api: Api, sim: Simulator) -> None:
    ws, key, content = new_workspace("ko"), new_key("off-edge"), unique_content("off-at-edge")
    first = send(origin_api, ws, key, content)
    assert first["_status"] == 201, first

    at_edge = send(edge_api, ws, key, content)

    assert at_edge["_status"] == 403, at_edge
    assert at_edge["error"]["code"] == "failover_disabled"
    sent_once(sim, content)


def test_sent_while_off_then_enabled_the_same_key_at_the_edge_replays(
    origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    """Enabling seeds the edge ledger with the workspace's keys before the edge accepts any of them."""
    ws, key, content = new_workspace("ko"), new_key("seeded"), unique_content("seeded")
    first = send(origin_api, ws, key, content)
    assert first["_status"] == 201, first
    enable_failover(origin_api, edge_api, ws)

    at_edge = send(edge_api, ws, key, content)

    assert (at_edge["_status"], at_edge["id"]) == (200, first["id"])
    sent_once(sim, content)


def test_sent_at_the_edge_a_retry_at_the_origin_replays_once_synced(
    origin_api: Api, edge_api: Api, sim: Simulator
) -> None:
    ws, key, content = new_workspace("ko"), new_key("edge-first"), unique_content("edge-first")
    enable_failover(origin_api, edge_api, ws)
    first = send(edge_api, ws, key, content)
    assert first["_status"] == 201, first

    retry = send(origin_api, ws, key, content)  # synced or not: the edge's answer is final

    assert retry["_status"] in (200, 409), retry
    if retry["_status"] == 200:
        assert (retry["id"], retry["endpoint"]) == (first["id"], "edge")
    sent_once(sim, content)


# -- two origin processes, one PostgreSQL database ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_origins(stack: Stack, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Api]]:
    import asyncio

    schema = asyncio.run(new_pg_schema())
    url = f"{PG_URL}?search_path={schema}"
    log_dir = tmp_path_factory.mktemp("two-origins")
    processes = [launch(origin_spec(stack.env, free_port(), url), Path(log_dir)) for _ in range(2)]
    apis = [Api(f"origin-{n}", p.url, tokens) for n, p in enumerate(processes)]
    try:
        yield apis[0], apis[1]
    finally:
        for api in apis:
            api.close()
        for process in processes:
            process.stop()
        asyncio.run(drop_pg_schema(schema))


def test_two_origins_on_postgresql_replay_across_toggles(
    two_origins: tuple[Api, Api], edge_api: Api, sim: Simulator
) -> None:
    a, b = two_origins
    ws = new_workspace("ko2")
    off_key, off_content = new_key("pg-off"), unique_content("pg-off")
    on_key, on_content = new_key("pg-on"), unique_content("pg-on")

    first_off = send(a, ws, off_key, off_content)
    assert first_off["_status"] == 201, first_off
    enable_failover(b, edge_api, ws)
    for api in (a, b):
        retry = send(api, ws, off_key, off_content)
        assert (retry["_status"], retry["id"]) == (200, first_off["id"]), (api.name, retry)
    assert send(edge_api, ws, off_key, off_content)["_status"] == 200  # seeded before the edge was told

    first_on = send(b, ws, on_key, on_content)
    assert first_on["_status"] == 201, first_on
    disable_failover(a, edge_api, ws)
    for api in (a, b):
        retry = send(api, ws, on_key, on_content)
        assert (retry["_status"], retry["id"]) == (200, first_on["id"]), (api.name, retry)

    sent_once(sim, off_content)
    sent_once(sim, on_content)
