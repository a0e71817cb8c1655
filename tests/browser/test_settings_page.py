"""Settings > Advanced > SMS Failover in a real browser, against the real origin, edge host and simulator."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from smsfailover.core.client import SyncFailoverClient
from smsfailover.core.config import ClientConfig
from smsfailover.express_shim.processes import free_port, origin_spec

from tests.contract.kit import Tokens, new_workspace
from tests.support.fixtures import Stack
from tests.support.servers import launch

PAGE = "/settings/advanced/sms-failover"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "settings-page.png"
# A bound for what the page shows after a change: the poll (2.5 s) asks for probes at most 1 s old, the sync of
# edge sends runs every 2 s.
STATUS_CHANGE_S = 20
# A send completed as unknown (its provider answered 500): waiting for its first lookup, or already looked for.
AWAITING_RESOLUTION = re.compile("Waiting for the next check|Not found at the provider")
REDIS_URL = "redis://127.0.0.1:6379/0"


def wait_for_switch(origin_url: str, tokens: Tokens, ws: str, state: str, timeout_s: float = 15.0) -> None:
    headers = {"Authorization": f"Bearer {tokens.workspace(ws)}"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx2.get(f"{origin_url}/v1/workspaces/{ws}/settings", headers=headers, timeout=5).json()
        if body.get("failover_state") == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"the failover switch of {ws} did not reach {state} within {timeout_s} s")


def send_some(base_url: str, tokens: Tokens, ws: str, count: int) -> None:
    """Real sends, so the status and the chart have figures; each must be accepted."""
    with httpx2.Client(base_url=base_url, timeout=15) as http:
        for i in range(count):
            resp = http.post(
                "/v1/messages",
                json={"to": "+16266635938", "content": f"page test {i}", "workspace_id": ws},
                headers={"Authorization": f"Bearer {tokens.workspace(ws)}", "Idempotency-Key": str(uuid.uuid4())},
            )
            assert resp.status_code == 201, resp.text


def send_unknown(stack: Stack, tokens: Tokens, ws: str) -> str:
    """A send whose provider answers 500: it may have gone out, so the origin records its outcome unknown. Its id."""
    with httpx2.Client(timeout=15) as http:
        http.post(f"{stack.simulator_url}/_sim/faults", json={"status": 500}).raise_for_status()
        try:
            resp = http.post(
                f"{stack.origin_url}/v1/messages",
                json={"to": "+16266635938", "content": f"maybe sent {uuid.uuid4()}", "workspace_id": ws},
                headers={"Authorization": f"Bearer {tokens.workspace(ws)}", "Idempotency-Key": str(uuid.uuid4())},
            )
        finally:
            http.delete(f"{stack.simulator_url}/_sim/faults").raise_for_status()
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "unknown"
    return str(resp.json()["id"])


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 960})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def enable_failover(origin_url: str, tokens: Tokens, ws: str) -> None:
    resp = httpx2.patch(
        f"{origin_url}/v1/workspaces/{ws}/settings",
        json={"sms_failover_enabled": True},
        headers={"Authorization": f"Bearer {tokens.workspace(ws)}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    wait_for_switch(origin_url, tokens, ws, "on")


def sign_in(page: Page, origin_url: str, tokens: Tokens, ws: str, *, token: str | None = None) -> None:
    """Through the form, with the workspace's token unless another (an operator's) is given."""
    page.goto(f"{origin_url}{PAGE}?workspace={ws}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Workspace id")).to_have_value(ws)
    page.get_by_label("Token", exact=True).fill(token or tokens.workspace(ws))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="SMS Failover", exact=True)).to_be_visible()
    assert "token" not in page.url
    assert page.url.endswith(f"{PAGE}?workspace={ws}")


def edge_state(page: Page) -> Locator:
    return page.locator("[data-endpoint='edge'] [data-field='state']")


def test_toggle_persists_and_edge_status_follows_the_real_edge(
    page: Page, stack: Stack, tokens: Tokens, artifacts: Path
) -> None:
    ws = new_workspace("page")
    send_some(stack.origin_url, tokens, ws, 4)
    sign_in(page, stack.origin_url, tokens, ws)

    switch = page.get_by_role("switch", name="SMS failover to the edge")
    pill = page.locator("#switch-pill")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(pill).to_have_text("Disabled")

    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(pill).to_have_text("Enabled")
    expect(page.locator("#announcer")).to_have_text("SMS failover enabled.")
    page.reload()
    expect(page.get_by_role("switch", name="SMS failover to the edge")).to_have_attribute("aria-checked", "true")
    expect(page.locator("#switch-pill")).to_have_text("Enabled")

    # Keyboard: the switch takes focus and Space flips it, both ways.
    switch = page.get_by_role("switch", name="SMS failover to the edge")
    switch.focus()
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).not_to_have_attribute("aria-busy", "true")  # saved; the switch ignores presses meanwhile
    expect(page.locator("#switch-pill")).to_have_text("Disabled")
    page.keyboard.press("Enter")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#switch-pill")).to_have_text("Enabled")

    send_some(stack.origin_url, tokens, ws, 4)  # through the edge ledger now
    wait_for_switch(stack.origin_url, tokens, ws, "on")  # the edge sends once the two-phase switch is through
    expect(page.locator("[data-field='failover_state']")).to_have_text("on", timeout=STATUS_CHANGE_S * 1000)
    send_some(stack.edge_url, tokens, ws, 3)  # what a failover sends; the origin syncs them into its figures
    expect(edge_state(page)).to_have_text("Up", timeout=STATUS_CHANGE_S * 1000)
    edge_sends = page.locator("[data-endpoint='edge'] [data-field='requests']")
    expect(edge_sends).to_have_text("3", timeout=STATUS_CHANGE_S * 1000)
    expect(page.locator("[data-field='failovers_15m']")).to_have_text("3")
    # A percentage, not "–": whether each edge send counts as a success depends on the status it had when the
    # origin synced it (an edge send synced mid-flight is logged "unknown"), which is the sync's concern.
    expect(page.locator("[data-endpoint='edge'] [data-field='success_rate']")).to_have_text(re.compile(r"^\d+\.\d %$"))
    expect(page.locator("[data-endpoint='origin'] [data-field='requests']")).to_have_text("8")
    expect(page.locator("#freshness")).to_contain_text("Live")
    page.screenshot(path=str(artifacts / "1-enabled-both-up.png"), full_page=True)
    # The chart's table keeps a keyboard user's focus and stays open across live updates.
    summary = page.get_by_text("Show the figures as a table")
    summary.focus()
    page.keyboard.press("Enter")
    polls = int(page.locator("#live").get_attribute("data-polls") or "0")
    # two live updates later: a poll every 2.5 s, each waiting up to 1 s for a fresh probe
    expect(page.locator("#live")).to_have_attribute("data-polls", str(polls + 2), timeout=STATUS_CHANGE_S * 1000)
    expect(summary).to_be_focused()
    expect(page.locator("#chart details")).to_have_attribute("open", "")
    expect(page.locator("#chart").get_by_role("table")).to_contain_text("origin p95")
    page.keyboard.press("Enter")  # closed again for the screenshots
    # The edge sends above came straight to the edge (no router): failover events whose reason is "Not given".
    expect(page.locator("#failover-events tbody tr")).to_have_count(3)
    expect(page.locator("#failover-events")).to_contain_text("Not given")

    stack.stop_edge()
    try:
        started = time.monotonic()
        expect(edge_state(page)).to_have_text("Down", timeout=STATUS_CHANGE_S * 1000)
        assert time.monotonic() - started < STATUS_CHANGE_S
        expect(page.locator("#announcer")).to_have_text("Edge is down.")
        page.screenshot(path=str(artifacts / "2-edge-down.png"), full_page=True)
    finally:
        stack.start_edge()  # blocks until the edge answers its health check
    expect(edge_state(page)).to_have_text("Up", timeout=STATUS_CHANGE_S * 1000)
    page.screenshot(path=str(artifacts / "3-edge-recovered.png"), full_page=True)


def test_errors_roll_the_switch_back_and_stale_data_is_flagged(
    page: Page, stack: Stack, tokens: Tokens, artifacts: Path
) -> None:
    ws = new_workspace("page")
    sign_in(page, stack.origin_url, tokens, ws)
    switch = page.get_by_role("switch", name="SMS failover to the edge")
    expect(switch).to_have_attribute("aria-checked", "false")

    # The session ends behind the page's back: the origin refuses the write, the page says why and rolls back.
    page.context.clear_cookies()
    switch.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("reload")
    expect(alert).to_contain_text("The switch was put back.")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(page.locator("#switch-pill")).to_have_text("Disabled")

    # The live feed now answers 401: the page stops polling and says the session has ended.
    expect(page.locator("#freshness")).to_contain_text("session has ended", timeout=10_000)
    page.screenshot(path=str(artifacts / "4-error-rolled-back.png"), full_page=True)


def test_stale_live_data_is_shown_in_amber(page: Page, stack: Stack, tokens: Tokens, artifacts: Path) -> None:
    ws = new_workspace("page")
    sign_in(page, stack.origin_url, tokens, ws)
    expect(page.locator("#freshness")).to_contain_text("Live")
    page.route("**/live?*", lambda route: route.abort("connectionrefused"))  # the origin stops answering the page
    freshness = page.locator("#freshness.stale")
    expect(freshness).to_contain_text("stale", timeout=20_000)
    expect(freshness).to_contain_text("s ago")
    page.screenshot(path=str(artifacts / "5-stale.png"), full_page=True)


def test_readable_on_a_375_px_window(browser: Browser, stack: Stack, tokens: Tokens, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812})
    try:
        narrow = context.new_page()
        ws = new_workspace("page")
        sign_in(narrow, stack.origin_url, tokens, ws)
        expect(narrow.get_by_role("navigation", name="Settings")).to_be_visible()
        expect(narrow.get_by_role("switch", name="SMS failover to the edge")).to_be_visible()
        expect(narrow.get_by_role("img", name="Response times per endpoint, last 15 minutes")).to_be_visible()
        overflow = narrow.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 375 px"
        narrow.screenshot(path=str(artifacts / "6-narrow-375.png"), full_page=True)
    finally:
        context.close()


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def breaker_origin(stack: Stack) -> Iterator[str]:
    """A second origin process of the stack's deployment (its database, edge and simulator) with the fleet's shared
    breaker configured (Redis on 127.0.0.1:6379): the page shows the breaker card only then, and the stack's own
    origin stays as every other suite expects it (`breaker: null`). Its SMSFAILOVER_ORIGIN_URL is the stack
    origin's, so it reads the breaker that the clients of that origin share. Its URL."""
    env = {**stack.env, "SMSFAILOVER_BREAKER_REDIS_URL": REDIS_URL}
    process = launch(origin_spec(env, free_port(), stack.db_url), stack.log_dir)
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture
def fleet_client(stack: Stack, tokens: Tokens) -> Iterator[Callable[[str], SyncFailoverClient]]:
    """SDK clients of the stack's origin sharing the fleet's breaker in Redis; the shared state is removed after."""
    made: list[SyncFailoverClient] = []

    def make(ws: str) -> SyncFailoverClient:
        config = ClientConfig.from_env(
            {
                "SMSFAILOVER_ORIGIN_URL": stack.origin_url,
                "SMSFAILOVER_EDGE_URL": stack.edge_url,
                "SMSFAILOVER_TOKEN": tokens.workspace(ws),
                "SMSFAILOVER_BREAKER_REDIS_URL": REDIS_URL,
                "SMSFAILOVER_BREAKER_OPEN_S": "600",
            }
        )
        client = SyncFailoverClient(config)
        client.reset_circuit_breaker()  # the fleet's state and this process's own: start closed
        made.append(client)
        return client

    yield make
    for client in made:
        client.reset_circuit_breaker()
        client.close()


def polls(page: Page) -> int:
    return int(page.locator("#live").get_attribute("data-polls") or "0")


@pytest.mark.redis
def test_an_incident_on_the_page_failovers_with_reasons_the_breaker_live_and_the_edge_ledger(
    page: Page,
    stack: Stack,
    tokens: Tokens,
    breaker_origin: str,
    fleet_client: Callable[[str], SyncFailoverClient],
    artifacts: Path,
) -> None:
    ws = new_workspace("incident")
    enable_failover(stack.origin_url, tokens, ws)
    client = fleet_client(ws)
    for i in range(4):  # through the origin, which also caches the setting in the client
        assert client.send_message(to="+16266635938", content=f"before {i}", workspace_id=ws).endpoint == "origin"
    sign_in(page, breaker_origin, tokens, ws)

    breaker = page.locator("#breaker")
    expect(breaker.locator("[data-field='breaker_state']")).to_have_text("closed")
    expect(breaker.locator("[data-field='breaker_failures']")).to_have_text("0")
    expect(breaker.locator("[data-field='breaker_open_for']")).to_be_hidden()
    expect(page.locator("#no-failover-events")).to_be_visible()
    ledger = page.locator("#edge-ledger")
    expect(ledger.locator("[data-field='edge_ledger']")).to_have_text("reachable")
    expect(ledger.locator("[data-field='edge_ledger_shards']")).to_have_text("3 of 3 answering", timeout=20_000)
    expect(ledger.locator("[data-field='double_sends_found']")).to_have_text("0")

    stack.stop_origin()  # the origin the clients send to; the page's origin keeps serving
    try:
        results = [client.send_message(to="+16266635938", content=f"during {i}", workspace_id=ws) for i in range(4)]
    finally:
        stack.start_origin()
    assert [r.endpoint for r in results] == ["edge"] * 4
    assert [[a.endpoint for a in r.attempts] for r in results] == [["origin", "edge"]] * 3 + [["edge"]]

    # The breaker card follows the fleet's breaker without a reload.
    expect(breaker.locator("[data-field='breaker_state']")).to_have_text("open", timeout=STATUS_CHANGE_S * 1000)
    expect(breaker.locator("[data-field='breaker_failures']")).to_have_text("3")
    expect(breaker.locator("[data-field='breaker_remaining_open_s']")).to_have_text(re.compile(r"^\d+ s$"))
    expect(page.locator("#announcer")).to_have_text("The shared breaker is open.")
    # Each failover with the reason its router gave, newest first, once the origin has synced the edge's sends.
    rows = page.locator("#failover-events tbody tr")
    expect(rows).to_have_count(4, timeout=STATUS_CHANGE_S * 1000)
    expect(rows.nth(0)).to_contain_text("Breaker open")
    for n in (1, 2, 3):
        expect(rows.nth(n)).to_contain_text("Could not connect to the origin")
    for result in results:
        expect(page.locator("#failover-events")).to_contain_text(str(result.message_id))
    # An outcome left unknown shows in its panel with where its resolution stands (no action for a workspace).
    unknown = send_unknown(stack, tokens, ws)
    unknown_row = page.locator(f"#unknowns tr[data-message-id='{unknown}']")
    expect(unknown_row).to_contain_text(AWAITING_RESOLUTION, timeout=STATUS_CHANGE_S * 1000)
    expect(page.locator("[data-field='unknown_15m']")).to_have_text("1")
    expect(unknown_row.get_by_role("button")).to_have_count(0)
    page.screenshot(path=str(artifacts / "7-incident.png"), full_page=True)
    if os.environ.get("SMSFAILOVER_UPDATE_DOCS_SCREENSHOT") == "1":  # the README's picture, refreshed on request
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)

    client.reset_circuit_breaker()
    expect(breaker.locator("[data-field='breaker_state']")).to_have_text("closed", timeout=STATUS_CHANGE_S * 1000)
    expect(breaker.locator("[data-field='breaker_open_for']")).to_be_hidden()
    expect(page.locator("#announcer")).to_have_text("The shared breaker is closed.")


def test_a_stopped_edge_is_shown_down_by_the_first_poll_that_begins_after(
    page: Page, stack: Stack, tokens: Tokens, breaker_origin: str, artifacts: Path
) -> None:
    ws = new_workspace("page")
    sign_in(page, breaker_origin, tokens, ws)
    expect(edge_state(page)).to_have_text("Up")
    stack.stop_edge()
    try:
        # The poll under way when the edge stopped may have probed before; the next one begins after the stop.
        first_after = polls(page) + 2
        expect(page.locator("#live")).to_have_attribute("data-polls", str(first_after), timeout=STATUS_CHANGE_S * 1000)
        assert edge_state(page).text_content() == "Down"
        expect(page.locator("#announcer")).to_have_text("Edge is down.")
        page.screenshot(path=str(artifacts / "8-edge-down-next-poll.png"), full_page=True)
    finally:
        stack.start_edge()
    expect(edge_state(page)).to_have_text("Up", timeout=STATUS_CHANGE_S * 1000)


def test_an_operator_marks_an_unknown_outcome_failed_on_the_page(
    page: Page, stack: Stack, tokens: Tokens, artifacts: Path
) -> None:
    ws = new_workspace("unknown")
    message_id = send_unknown(stack, tokens, ws)
    sign_in(page, stack.origin_url, tokens, ws, token=tokens.operator())
    row = page.locator(f"#unknowns tr[data-message-id='{message_id}']")
    expect(row).to_contain_text(AWAITING_RESOLUTION)
    page.screenshot(path=str(artifacts / "9-unknown-outcome.png"), full_page=True)
    page.get_by_role("button", name=f"Mark {message_id} failed").click()
    expect(page.get_by_role("heading", name="SMS Failover", exact=True)).to_be_visible()
    expect(page.locator("#no-unknowns")).to_be_visible()
    resp = httpx2.get(
        f"{stack.origin_url}/v1/messages/{message_id}",
        headers={"Authorization": f"Bearer {tokens.workspace(ws)}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["error"]["code"]) == ("failed", "marked_failed")
