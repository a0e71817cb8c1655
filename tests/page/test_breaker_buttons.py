"""The shared breaker on the origin: status reports it, the settings page's Reset and Isolate steer the fleet's
state in the real Redis on 127.0.0.1:6379 (the key is the origin URL: an ephemeral port, so unique per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from smsfailover.core.breaker import Admission, BreakerPolicy
from smsfailover.core.clock import SystemClock
from smsfailover.core.redis_breaker import DEFAULT_PREFIX, RedisBreakerStore

from tests.page.conftest import PAGE, PageOrigin, signed_in

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def shared(page_origin: PageOrigin, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RedisBreakerStore]:
    """Redis configured for the origin, and a client process's view of the same shared breaker."""
    monkeypatch.setenv("SMSFAILOVER_BREAKER_REDIS_URL", REDIS_URL)
    clock = SystemClock()
    store = RedisBreakerStore.from_url(
        REDIS_URL, page_origin.url, policy=BreakerPolicy(), fallback=BreakerPolicy().build(clock), clock=clock
    )
    yield store
    await store.aclose()
    client = Redis.from_url(REDIS_URL)
    await client.delete(DEFAULT_PREFIX + page_origin.url, DEFAULT_PREFIX + page_origin.url + ":probe")
    await client.aclose()


async def _status(origin: PageOrigin, ws: str) -> dict[str, object]:
    async with origin.client() as http:
        resp = await http.get(
            f"/v1/workspaces/{ws}/sms-failover/status", headers={"authorization": f"Bearer {origin.token(ws)}"}
        )
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def test_without_a_shared_store_breaker_is_null_and_no_buttons(page_origin: PageOrigin) -> None:
    assert (await _status(page_origin, "ws1"))["breaker"] is None
    async with page_origin.client() as http:
        await signed_in(page_origin, http, "ws1")
        html = (await http.get(PAGE, params={"workspace": "ws1"})).text
    assert "breaker-isolate" not in html


async def test_status_reports_the_fleets_breaker(page_origin: PageOrigin, shared: RedisBreakerStore) -> None:
    for _ in range(3):
        await shared.record(await shared.acquire(), healthy=False)
    breaker = (await _status(page_origin, "ws1"))["breaker"]
    assert isinstance(breaker, dict)
    assert breaker["state"] == "open"
    assert breaker["consecutive_failures"] == 3
    assert 0 < breaker["remaining_open_s"] <= 30


async def test_a_workspace_session_sees_the_breaker_but_cannot_steer_it(
    page_origin: PageOrigin, shared: RedisBreakerStore
) -> None:
    """Isolate moves every tenant's traffic: one workspace's session must not be able to do it."""
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, "ws1")
        html = (await http.get(PAGE, params={"workspace": "ws1"})).text
        assert 'data-field="breaker_state"' in html
        assert 'id="breaker-isolate"' not in html
        assert 'id="breaker-operators-only"' in html
        isolate = await http.post(
            f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "isolate", "csrf_token": csrf}
        )
        assert isolate.status_code == 403
        assert "operator token" in isolate.text
    assert (await shared.acquire()).admission is not Admission.REJECTED  # nothing changed for the fleet


async def test_isolate_then_reset_from_the_page_steer_every_client(
    page_origin: PageOrigin, shared: RedisBreakerStore
) -> None:
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, "ws1", token=page_origin.operator_token())
        html = (await http.get(PAGE, params={"workspace": "ws1"})).text
        assert 'id="breaker-isolate"' in html
        assert 'id="breaker-reset"' in html
        isolate = await http.post(
            f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "isolate", "csrf_token": csrf}
        )
        assert isolate.status_code == 303
        assert (await shared.acquire()).admission is Admission.REJECTED  # the client now skips the origin
        shown = (await http.get(PAGE, params={"workspace": "ws1"})).text
        assert '<strong data-field="breaker_state" data-state="open" class="breaker-open">open</strong>' in shown
        reset = await http.post(
            f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "reset", "csrf_token": csrf}
        )
        assert reset.status_code == 303
    assert (await shared.acquire()).admission is Admission.ALLOWED
    assert (await shared.snapshot())["state"] == "closed"


async def test_the_card_carries_the_fields_each_live_poll_updates(
    page_origin: PageOrigin, shared: RedisBreakerStore
) -> None:
    """The page's script (static/page.js) redraws the card from each poll's status.breaker: the fields are there from
    the start (the time left open hidden while closed), and the poll carries the fleet's breaker as it is now."""
    async with page_origin.client() as http:
        await signed_in(page_origin, http, "ws1")
        html = (await http.get(PAGE, params={"workspace": "ws1"})).text
        assert 'data-field="breaker_state" data-state="closed"' in html
        assert 'data-field="breaker_failures">0<' in html
        assert '<span data-field="breaker_open_for" hidden>' in html
        for _ in range(3):
            await shared.record(await shared.acquire(), healthy=False)
        live = (await http.get(f"{PAGE}/live", params={"workspace": "ws1"})).json()
    breaker = live["status"]["breaker"]
    assert (breaker["state"], breaker["consecutive_failures"]) == ("open", 3)
    assert 0 < breaker["remaining_open_s"] <= 30


async def test_breaker_buttons_need_csrf_and_a_known_action(page_origin: PageOrigin, shared: RedisBreakerStore) -> None:
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, "ws1", token=page_origin.operator_token())
        no_csrf = await http.post(f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "isolate"})
        odd = await http.post(
            f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "explode", "csrf_token": csrf}
        )
    assert no_csrf.status_code == 403
    assert odd.status_code == 422
    assert (await shared.acquire()).admission is Admission.ALLOWED  # nothing changed


async def test_unreachable_redis_is_reported_not_a_500(
    page_origin: PageOrigin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.origin.servers import free_port

    monkeypatch.setenv("SMSFAILOVER_BREAKER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    breaker = (await _status(page_origin, "ws1"))["breaker"]
    assert breaker == {"state": "unknown", "consecutive_failures": None, "remaining_open_s": None, "reachable": False}
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, "ws1", token=page_origin.operator_token())
        resp = await http.post(
            f"{PAGE}/breaker", params={"workspace": "ws1"}, data={"action": "reset", "csrf_token": csrf}
        )
    assert resp.status_code == 503
    assert "cannot be reached" in resp.text
