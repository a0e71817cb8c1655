"""The Python SDK's public surface (CONTRACT §4) against the real stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from smsfailover.core import ClientConfig, FailoverClient, MessageRejected, SendFailed, SyncFailoverClient
from smsfailover.core.settings import SettingsSource

from tests.contract.kit import Simulator, Tokens, new_key, new_workspace, unique_content
from tests.e2e.conftest import ClientFactory
from tests.support.fixtures import Stack


@pytest.fixture
def sync_client(stack: Stack, tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncFailoverClient]:
    monkeypatch.setenv("SMSFAILOVER_ORIGIN_URL", stack.origin_url)
    monkeypatch.setenv("SMSFAILOVER_EDGE_URL", stack.edge_url)
    monkeypatch.setenv("SMSFAILOVER_ENV", "development")  # the stack's mode: the client mints with the secret
    monkeypatch.setenv("SMSFAILOVER_JWT_SECRET", stack.jwt_secret)
    monkeypatch.delenv("SMSFAILOVER_TOKEN", raising=False)
    client = SyncFailoverClient.from_env()
    yield client
    client.close()


def test_sync_client_sends_once_per_key_with_failover_off(sync_client: SyncFailoverClient, sim: Simulator) -> None:
    ws = new_workspace("sdk")
    key = new_key("sdk")
    content = unique_content("sync")

    first = sync_client.send_message(to="+1 (626) 663-5938", content=content, workspace_id=ws, idempotency_key=key)
    again = sync_client.send_message(to="+16266635938", content=content, workspace_id=ws, idempotency_key=key)

    assert first.endpoint == "origin"
    assert first.requires_refresh is False
    assert [(a.endpoint, a.outcome) for a in first.attempts] == [("origin", "sent")]
    assert str(first.message_id).startswith("msg_")
    assert (first.segments, first.encoding) == (1, "GSM-7")
    assert again.message_id == first.message_id
    assert [(a.endpoint, a.outcome) for a in again.attempts] == [("origin", "replayed")]
    assert len(sim.received(content)) == 1


def test_a_4xx_raises_message_rejected_with_code_and_field(sync_client: SyncFailoverClient) -> None:
    with pytest.raises(MessageRejected) as caught:
        sync_client.send_message(to="12", content="hi", workspace_id=new_workspace("sdk"))
    assert caught.value.code == "invalid_phone_number"
    assert caught.value.field == "to"
    assert caught.value.status == 422


async def test_token_override_serves_another_workspace(
    make_client: ClientFactory, tokens: Tokens, sim: Simulator
) -> None:
    mine, other = new_workspace("sdk"), new_workspace("sdk")
    client = make_client(workspace_id=mine)
    content = unique_content("tenant")

    with pytest.raises(MessageRejected) as caught:
        await client.send_message(to="+16266635938", content=content, workspace_id=other)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")

    result = await client.send_message(
        to="+16266635938", content=content, workspace_id=other, token=tokens.workspace(other)
    )
    assert result.endpoint == "origin"
    assert len(sim.received(content)) == 1


async def test_failover_disabled_and_origin_down_fails_without_touching_the_edge(
    stack: Stack, make_client: ClientFactory, sim: Simulator
) -> None:
    ws = new_workspace("sdk")
    client = make_client(workspace_id=ws, SMSFAILOVER_ORIGIN_ONLY_TIMEOUT_S="2")
    await client.get_sms_failover_status(ws)  # learn the setting (off) while the origin is up
    stack.stop_origin()
    content = unique_content("off")

    with pytest.raises(SendFailed) as caught:
        await client.send_message(to="+16266635938", content=content, workspace_id=ws)

    assert [a.endpoint for a in caught.value.attempts] == ["origin"]
    assert sim.received(content) == []


class BrokenSettings:
    """A failover layer that breaks (a bug, a bad configuration): reading the setting raises."""

    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool:
        raise RuntimeError("settings source is broken")


async def test_a_broken_failover_layer_falls_back_to_a_plain_origin_send(
    stack: Stack, tokens: Tokens, sim: Simulator
) -> None:
    ws = new_workspace("sdk")
    config = ClientConfig(origin_url=stack.origin_url, edge_url=stack.edge_url, token=tokens.workspace(ws))
    broken: SettingsSource = BrokenSettings()
    async with FailoverClient(config, settings=broken) as client:
        content = unique_content("fallback")
        result = await client.send_message(to="+16266635938", content=content, workspace_id=ws)
        assert result.endpoint == "origin"
        assert len(sim.received(content)) == 1

        strict = unique_content("strict")
        with pytest.raises(RuntimeError):
            await client.send_sms_with_conditional_failover(to="+16266635938", message=strict, workspace_id=ws)
        assert sim.received(strict) == []
