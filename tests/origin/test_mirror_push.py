"""The outbox reaches the edge mirror over real HTTP, and survives an edge outage without losing a change."""

from __future__ import annotations

from smsfailover.express_shim.edge_client import EdgeClient
from smsfailover.express_shim.mirror_push import MirrorPusher, backoff_s
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.workspace_settings import SettingsOutbox, SettingsStore

from tests.origin.fake_edge import FakeEdgeState, fake_edge
from tests.origin.servers import free_port, serve


async def test_changes_are_pushed_in_order_with_the_service_token(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("ws1", False, now_ms=1_000)
    await store.set_failover("ws2", False, now_ms=1_001)
    state = FakeEdgeState()
    async with serve(fake_edge(state)) as url:
        edge = EdgeClient(url, lambda: "svc-token")
        try:
            pushed = await MirrorPusher(outbox, edge).push_due(now_ms=2_000)
        finally:
            await edge.aclose()

    assert pushed == 2
    assert state.mirror == {
        "ws1": {"sms_failover_enabled": False, "updated_at": 1_000},
        "ws2": {"sms_failover_enabled": False, "updated_at": 1_001},
    }
    assert set(state.auth_headers) == {"Bearer svc-token"}
    assert await outbox.pending_count() == 0


async def test_an_unreachable_edge_keeps_the_change_and_backs_off(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("ws1", False, now_ms=1_000)
    edge = EdgeClient(f"http://127.0.0.1:{free_port()}", lambda: "t")  # nothing listens there
    try:
        assert await MirrorPusher(outbox, edge).push_due(now_ms=2_000) == 0
    finally:
        await edge.aclose()

    assert await outbox.pending_count() == 1
    assert await outbox.due(now_ms=2_000 + int(backoff_s(0) * 1000) - 1) == []
    assert len(await outbox.due(now_ms=2_000 + int(backoff_s(0) * 1000))) == 1


async def test_a_failing_edge_then_a_recovered_one_gets_the_change(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("ws1", False, now_ms=1_000)
    state = FakeEdgeState(failing=True)
    async with serve(fake_edge(state)) as url:
        edge = EdgeClient(url, lambda: "t")
        pusher = MirrorPusher(outbox, edge)
        try:
            assert await pusher.push_due(now_ms=2_000) == 0
            state.failing = False
            assert await pusher.push_due(now_ms=2_000) == 0  # backing off: not due yet
            assert await pusher.push_due(now_ms=10_000) == 1
        finally:
            await edge.aclose()
    assert state.mirror["ws1"]["sms_failover_enabled"] is False


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_s(50) == 60.0
