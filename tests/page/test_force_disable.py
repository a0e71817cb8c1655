"""Forcing a disable from the settings page (DESIGN.md rule 5): an operator's session only. A workspace's session
is refused in the contract's envelope with nothing changed, and its page offers no force."""

from __future__ import annotations

from tests.origin.harness import new_workspace
from tests.page.conftest import PAGE, PageOrigin, signed_in

FORCED = {"sms_failover_enabled": False, "force": True}


async def test_a_workspace_session_cannot_force_a_disable(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    await page_origin.services.set_failover(ws, True)
    before = await page_origin.services.settings.get(ws)
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        page = await http.get(PAGE, params={"workspace": ws})
        resp = await http.put(f"{PAGE}/settings", params={"workspace": ws}, json=FORCED, headers={"x-csrf-token": csrf})
    assert "force" not in page.text.lower()
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["field"]) == ("forbidden", "force")
    assert "operator" in error["message"]
    after = await page_origin.services.settings.get(ws)
    assert (after.sms_failover_enabled, after.failover_state) == (True, before.failover_state)


async def test_an_operator_session_may_force_a_disable(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    await page_origin.services.set_failover(ws, True)
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws, token=page_origin.operator_token())
        resp = await http.put(f"{PAGE}/settings", params={"workspace": ws}, json=FORCED, headers={"x-csrf-token": csrf})
    assert resp.status_code == 200, resp.text
    assert resp.json()["failover_state"] == "off"
    assert (await page_origin.services.settings.get(ws)).failover_state == "off"
