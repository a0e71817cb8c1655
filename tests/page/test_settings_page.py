"""The settings page over plain HTTP: sign-in, cookie flags, CSRF, one workspace only, escaping, the JSON routes."""

from __future__ import annotations

import time

import httpx2
from smsfailover.core.auth import issue_token

from tests.origin.harness import apoll, new_workspace
from tests.page.conftest import PAGE, PageOrigin, csrf_from, signed_in


async def test_signed_out_page_is_a_sign_in_form_with_no_token_field_in_the_url(page_origin: PageOrigin) -> None:
    async with page_origin.client() as http:
        resp = await http.get(PAGE, params={"workspace": "ws_a"})
    assert resp.status_code == 200
    assert '<form method="post" action="/settings/advanced/sms-failover/session"' in resp.text
    assert 'type="password"' in resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


async def test_sign_in_sets_a_strict_httponly_cookie_and_redirects_without_the_token(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    token = page_origin.token(ws)
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        resp = await http.post(f"{PAGE}/session", data={"workspace": ws, "token": token, "csrf_token": csrf})
        assert resp.status_code == 303
        assert resp.headers["location"] == f"{PAGE}?workspace={ws}"
        assert token not in resp.headers["location"]
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("smsfailover_session="))
        flags = cookie.lower()
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/settings" in flags
        assert "secure" not in flags  # plain http on 127.0.0.1; Secure once served over https
        page = await http.get(resp.headers["location"])
    assert page.status_code == 200
    assert "SMS Failover" in page.text
    assert 'role="switch"' in page.text
    assert token not in page.text


async def test_in_development_cookies_are_secure_when_served_over_https(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        resp = await http.post(
            f"{PAGE}/session",
            data={"workspace": ws, "token": page_origin.token(ws), "csrf_token": csrf},
            headers={"x-forwarded-proto": "https"},  # uvicorn trusts 127.0.0.1 as a proxy
        )
    assert resp.status_code == 303
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("smsfailover_session="))
    assert "secure" in cookie.lower()


async def test_a_bad_expired_or_foreign_token_is_refused_in_words(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    service = issue_token(page_origin.service_key, service=True)
    cases = {
        "not-a-jwt": 401,
        page_origin.token(ws, ttl_s=-3600): 401,
        page_origin.token("someone_else"): 403,
        service: 403,
        issue_token("another-secret-that-is-long-enough-for-hs256", workspace_id=ws): 401,
    }
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE)).text)
        for token, status in cases.items():
            resp = await http.post(f"{PAGE}/session", data={"workspace": ws, "token": token, "csrf_token": csrf})
            assert resp.status_code == status, token
            assert 'role="alert"' in resp.text
            assert "smsfailover_session=" not in resp.headers.get("set-cookie", "")
            assert token not in resp.text


async def test_sign_in_without_the_csrf_token_or_from_another_site_is_refused(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE)).text)
        data = {"workspace": ws, "token": page_origin.token(ws)}
        missing = await http.post(f"{PAGE}/session", data=data)
        wrong = await http.post(f"{PAGE}/session", data={**data, "csrf_token": "x" * 43})
        foreign = await http.post(
            f"{PAGE}/session", data={**data, "csrf_token": csrf}, headers={"origin": "https://evil.example"}
        )
    for resp in (missing, wrong, foreign):
        assert resp.status_code == 403
        assert "smsfailover_session=" not in resp.headers.get("set-cookie", "")


async def test_another_workspace_is_403_and_never_shown(page_origin: PageOrigin) -> None:
    mine, theirs = new_workspace(), new_workspace()
    await page_origin.services.set_failover(theirs, True)
    async with page_origin.client() as http:
        await signed_in(page_origin, http, mine)
        page = await http.get(PAGE, params={"workspace": theirs})
        live = await http.get(f"{PAGE}/live", params={"workspace": theirs})
        general = await http.get("/settings/general", params={"workspace": theirs})
    assert page.status_code == 403
    assert "another workspace" in page.text
    assert theirs not in page.text
    assert general.status_code == 403
    assert live.status_code == 403
    assert live.json()["error"]["code"] == "forbidden"


async def test_the_page_without_a_workspace_redirects_to_the_signed_in_one(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)
        resp = await http.get(PAGE)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{PAGE}?workspace={ws}"


async def test_a_malformed_workspace_id_is_422_and_escaped(page_origin: PageOrigin) -> None:
    hostile = '<script>alert("x")</script>'
    async with page_origin.client() as http:
        resp = await http.get(PAGE, params={"workspace": hostile})
        live = await http.get(f"{PAGE}/live", params={"workspace": hostile})
        csrf = csrf_from((await http.get(PAGE)).text)
        form = await http.post(f"{PAGE}/session", data={"workspace": hostile, "token": "t", "csrf_token": csrf})
    assert resp.status_code == 422
    assert "<script>alert" not in resp.text
    assert live.status_code == 422
    assert live.json()["error"]["field"] == "workspace"
    assert form.status_code == 422
    assert "<script>alert" not in form.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in form.text


async def test_workspace_ids_are_escaped_and_url_encoded_on_the_page(page_origin: PageOrigin) -> None:
    ws = "a-b_c"  # the id alphabet has no markup characters; the templates still escape and encode it
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)
        page = await http.get(PAGE, params={"workspace": ws})
    assert page.status_code == 200
    assert f"{PAGE}/live?workspace=a-b_c" in page.text


async def test_toggle_by_json_persists_feeds_the_outbox_and_survives_reload(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        before = await http.get(PAGE, params={"workspace": ws})
        assert 'aria-checked="false"' in before.text
        assert ">Disabled<" in before.text
        resp = await http.put(
            f"{PAGE}/settings",
            params={"workspace": ws},
            json={"sms_failover_enabled": True},
            headers={"x-csrf-token": csrf},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["sms_failover_enabled"] is True
        after = await http.get(PAGE, params={"workspace": ws})
    assert 'aria-checked="true"' in after.text
    assert ">Enabling…<" in after.text or ">Enabled<" in after.text  # the switch may still be in motion
    assert (await page_origin.services.settings.get(ws)).sms_failover_enabled is True

    def mirrored() -> bool | None:
        return True if page_origin.edge.mirror.get(ws, {}).get("sms_failover_enabled") is True else None

    async def mirrored_async() -> bool | None:
        return mirrored()

    await apoll(mirrored_async, timeout_s=10, what="the edge mirror to receive the change")


async def test_json_toggle_refuses_missing_csrf_foreign_origin_and_bad_bodies(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    url = f"{PAGE}/settings"
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        no_csrf = await http.put(url, params={"workspace": ws}, json={"sms_failover_enabled": True})
        foreign = await http.put(
            url,
            params={"workspace": ws},
            json={"sms_failover_enabled": True},
            headers={"x-csrf-token": csrf, "origin": "https://evil.example"},
        )
        bad = await http.put(
            url, params={"workspace": ws}, json={"sms_failover_enabled": "yes"}, headers={"x-csrf-token": csrf}
        )
    assert no_csrf.status_code == 403
    assert no_csrf.json()["error"]["code"] == "csrf_failed"
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "csrf_failed"
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "sms_failover_enabled"
    assert (await page_origin.services.settings.get(ws)).sms_failover_enabled is False


async def test_toggle_form_works_without_javascript(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        resp = await http.post(f"{PAGE}/toggle", params={"workspace": ws}, data={"enabled": "true", "csrf_token": csrf})
        refused = await http.post(f"{PAGE}/toggle", params={"workspace": ws}, data={"enabled": "false"})
    assert resp.status_code == 303
    assert refused.status_code == 403
    assert (await page_origin.services.settings.get(ws)).sms_failover_enabled is True


async def test_signed_out_json_routes_answer_401_in_the_envelope(page_origin: PageOrigin) -> None:
    async with page_origin.client() as http:
        live = await http.get(f"{PAGE}/live", params={"workspace": "ws_a"})
    assert live.status_code == 401
    assert live.json()["error"]["code"] == "unauthorized"


async def test_sign_out_clears_the_session(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        resp = await http.post(f"{PAGE}/sign-out", data={"csrf_token": csrf})
        assert resp.status_code == 303
        after = await http.get(PAGE, params={"workspace": ws})
    assert 'type="password"' in after.text


async def test_live_json_reports_status_and_a_chart_of_recorded_sends(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    services = page_origin.services
    now_ms = services.now_ms()
    for i, latency in enumerate([40.0, 60.0, 900.0]):
        await services.send_log.record(
            workspace_id=ws,
            endpoint="origin",
            ok=True,
            status="queued",
            latency_ms=latency,
            at_ms=now_ms - 1000 * i,
            message_id=f"msg_{ws}_{i}",
        )
    await services.send_log.record(
        workspace_id=ws,
        endpoint="edge",
        ok=True,
        status="queued",
        latency_ms=120.0,
        at_ms=now_ms - 5 * 60_000,
        message_id=f"msg_{ws}_edge",
    )
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)

        async def probed() -> httpx2.Response | None:
            resp = await http.get(f"{PAGE}/live", params={"workspace": ws})
            return resp if resp.json()["status"]["endpoints"]["edge"]["checked_at"] else None

        live = await apoll(probed, timeout_s=10, what="the first edge probe")
    body = live.json()
    status = body["status"]
    assert status["workspace_id"] == ws
    assert status["endpoints"]["origin"]["requests"] == 3
    assert status["endpoints"]["edge"]["healthy"] is True
    assert status["failovers_15m"] == 1
    assert status["edge_ledger"]["state"] == "reachable"
    assert (status["double_sends_found"], status["failover_state"]) == (0, "off")
    chart = body["chart_html"]
    assert '<svg class="chart"' in chart
    assert 'role="img"' in chart
    assert "origin: 3 sends, slowest minute p95 900 ms" in chart
    assert "edge: 1 sends" in chart
    assert "<table>" in chart
    assert abs(body["server_time_ms"] - time.time() * 1000) < 60_000


async def test_the_page_shows_the_edge_ledger_the_switch_and_the_double_sends_found(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    await page_origin.services.double_sends.add([(ws, "k-twice")], page_origin.services.now_ms())
    async with page_origin.client() as http:
        await signed_in(page_origin, http, ws)
        page = (await http.get(PAGE, params={"workspace": ws})).text
    assert 'data-field="edge_ledger">reachable<' in page
    assert 'data-field="failover_state">off<' in page
    assert 'data-field="double_sends_found">1<' in page
    assert "(0 is normal)" in page
