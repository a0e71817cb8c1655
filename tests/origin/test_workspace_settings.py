"""Settings per workspace (default off) and the outbox written with every change, on both databases."""

from __future__ import annotations

from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.workspace_settings import SettingsOutbox, SettingsStore, WorkspaceSettings


async def test_a_new_workspace_has_failover_off_and_no_update_time(database: Database) -> None:
    await migrate(database)
    assert await SettingsStore(database).get("ws1") == WorkspaceSettings("ws1", False, None, "off")


async def test_an_enable_starts_the_switch_and_waits_to_reach_the_outbox(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)

    on = await store.set_failover("ws1", True, now_ms=1_000)

    assert on == WorkspaceSettings("ws1", True, 1_000, "enabling")
    assert await outbox.due(now_ms=10_000) == []  # the switch queues it once the edge ledger is seeded
    assert await store.switch_state("ws1") == "enabling"
    assert (await store.set_failover("ws1", True, now_ms=1_500)).failover_state == "enabling"


async def test_a_disable_starts_the_switch_and_is_queued_in_the_outbox_at_once(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("ws1", True, now_ms=1_000)

    off = await store.set_failover("ws1", False, now_ms=2_000)

    assert off == WorkspaceSettings("ws1", False, 2_000, "disabling")
    due = await outbox.due(now_ms=10_000)
    assert [(e.workspace_id, e.sms_failover_enabled, e.updated_at_ms) for e in due] == [("ws1", False, 2_000)]
    forced = await store.set_failover("ws1", False, now_ms=3_000, force=True)
    assert forced.failover_state == "off"


async def test_a_disable_of_a_workspace_never_enabled_stays_off(database: Database) -> None:
    await migrate(database)
    store = SettingsStore(database)
    assert (await store.set_failover("ws1", False, now_ms=1_000)).failover_state == "off"


async def test_update_time_only_moves_forward_even_if_the_clock_does_not(database: Database) -> None:
    await migrate(database)
    store = SettingsStore(database)
    await store.set_failover("ws1", True, now_ms=5_000)
    again = await store.set_failover("ws1", False, now_ms=5_000)
    back = await store.set_failover("ws1", True, now_ms=4_000)
    assert again.updated_at_ms == 5_001
    assert back.updated_at_ms == 5_002


async def test_workspaces_are_independent(database: Database) -> None:
    await migrate(database)
    store = SettingsStore(database)
    await store.set_failover("a", True, now_ms=1)
    assert (await store.get("b")).sms_failover_enabled is False


async def test_acknowledging_removes_that_change_and_older_ones_of_the_workspace(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("a", False, now_ms=1)
    await store.set_failover("b", False, now_ms=2)
    await store.set_failover("a", False, now_ms=3)
    entries = await outbox.due(now_ms=10)

    await outbox.acknowledge(entries[2])  # the newest change of "a"

    assert [e.workspace_id for e in await outbox.due(now_ms=10)] == ["b"]


async def test_a_postponed_change_is_not_due_until_its_time(database: Database) -> None:
    await migrate(database)
    store, outbox = SettingsStore(database), SettingsOutbox(database)
    await store.set_failover("a", False, now_ms=1)
    [entry] = await outbox.due(now_ms=10)

    await outbox.retry_later(entry, next_attempt_ms=500)

    assert await outbox.due(now_ms=499) == []
    [again] = await outbox.due(now_ms=500)
    assert again.attempts == 1
    assert await outbox.pending_count() == 1
