"""The page's session (issue 13): server-side, ended by sign-out, its CSRF token replaced at sign-in and sign-out,
cookies Secure outside development, "this site" taken from the configured public URL behind a TLS proxy, and the
operator role that may open any workspace's page."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.contract.kit import new_workspace
from tests.page.conftest import PAGE, PageOrigin, csrf_from, page_origin_with, signed_in

PUBLIC_URL = "https://sms.example.com"


def _cookie(response: httpx2.Response, name: str) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith(name + "="))


def _value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def _cookie_header(cookies: dict[str, str], **headers: str) -> dict[str, str]:
    """Cookies sent by hand, as a browser (or the proxy in front of the origin) sends them."""
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), **headers}


async def test_the_cookie_holds_a_session_id_not_the_token(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    token = page_origin.token(ws)
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        resp = await http.post(f"{PAGE}/session", data={"workspace": ws, "token": token, "csrf_token": csrf})
    session = _value(_cookie(resp, "smsfailover_session"))
    assert session != token
    assert "." not in session  # not a JWT
    rows = await page_origin.services.db.fetch("SELECT session_hash, workspace_id, role FROM page_sessions")
    assert [(r["workspace_id"], r["role"]) for r in rows] == [(ws, "workspace")]
    assert session not in str(rows)  # only its hash is stored


async def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        csrf = await signed_in(page_origin, http, ws)
        copied = {"smsfailover_session": http.cookies["smsfailover_session"]}
        out = await http.post(f"{PAGE}/sign-out", data={"csrf_token": csrf})
        assert out.status_code == 303
    async with page_origin.client() as thief:
        page = await thief.get(PAGE, params={"workspace": ws}, headers=_cookie_header(copied))
        live = await thief.get(f"{PAGE}/live", params={"workspace": ws}, headers=_cookie_header(copied))
    assert 'name="token"' in page.text  # the sign-in form, not the page
    assert live.status_code == 401


async def test_the_csrf_token_is_replaced_at_sign_in_and_at_sign_out(page_origin: PageOrigin) -> None:
    ws = new_workspace()
    async with page_origin.client() as http:
        before = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        data = {"workspace": ws, "token": page_origin.token(ws), "csrf_token": before}
        assert (await http.post(f"{PAGE}/session", data=data)).status_code == 303
        during = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        assert during != before
        stale = await http.post(
            f"{PAGE}/toggle", params={"workspace": ws}, data={"enabled": "true", "csrf_token": before}
        )
        assert stale.status_code == 403  # a token a page showed before sign-in is worth nothing after
        assert (await http.post(f"{PAGE}/sign-out", data={"csrf_token": during})).status_code == 303
        after = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
    assert after not in (before, during)


async def test_an_operator_may_open_any_workspace_and_a_workspace_only_its_own(page_origin: PageOrigin) -> None:
    first, second = new_workspace(), new_workspace()
    async with page_origin.client() as operator:
        await signed_in(page_origin, operator, first, token=page_origin.operator_token())
        for ws in (first, second):
            page = await operator.get(PAGE, params={"workspace": ws})
            assert page.status_code == 200
            assert 'role="switch"' in page.text
        assert (await operator.get(f"{PAGE}/live", params={"workspace": second})).status_code == 200
    async with page_origin.client() as tenant:
        await signed_in(page_origin, tenant, first)
        assert (await tenant.get(PAGE, params={"workspace": second})).status_code == 403
        assert (await tenant.get(f"{PAGE}/live", params={"workspace": second})).status_code == 403


async def test_a_service_token_cannot_sign_in(page_origin: PageOrigin) -> None:
    import jwt

    ws = new_workspace()
    service = jwt.encode({"role": "service", "exp": 2**33}, page_origin.service_key, "HS256")
    async with page_origin.client() as http:
        csrf = csrf_from((await http.get(PAGE, params={"workspace": ws})).text)
        resp = await http.post(f"{PAGE}/session", data={"workspace": ws, "token": service, "csrf_token": csrf})
    assert resp.status_code == 403
    assert "smsfailover_session=" not in str(resp.headers.get_list("set-cookie"))


async def test_behind_a_tls_proxy_cookies_are_secure_and_writes_from_the_public_origin_pass(tmp_path: Path) -> None:
    """Production behind a proxy that speaks https to browsers and http to the origin (no X-Forwarded-Proto)."""
    async with page_origin_with(tmp_path, env="production", public_url=PUBLIC_URL) as origin:
        ws = new_workspace()
        async with origin.client() as http:
            form = await http.get(PAGE, params={"workspace": ws})
            assert "secure" in _cookie(form, "smsfailover_csrf").lower()
            csrf = _value(_cookie(form, "smsfailover_csrf"))
            # httpx2 keeps Secure cookies for https only, as a browser does: send them as the proxy would
            cookies = {"smsfailover_csrf": csrf}
            data = {"workspace": ws, "token": origin.token(ws), "csrf_token": csrf}
            signed = await http.post(f"{PAGE}/session", data=data, headers=_cookie_header(cookies, origin=PUBLIC_URL))
            assert signed.status_code == 303, signed.text
            assert "secure" in _cookie(signed, "smsfailover_session").lower()
            session = _value(_cookie(signed, "smsfailover_session"))
            cookies = {"smsfailover_session": session, "smsfailover_csrf": _value(_cookie(signed, "smsfailover_csrf"))}
            toggle = await http.post(
                f"{PAGE}/toggle",
                params={"workspace": ws},
                data={"enabled": "true", "csrf_token": cookies["smsfailover_csrf"]},
                headers=_cookie_header(cookies, origin=PUBLIC_URL),
            )
            assert toggle.status_code == 303, toggle.text
            own_host = await http.post(
                f"{PAGE}/toggle",
                params={"workspace": ws},
                data={"enabled": "false", "csrf_token": cookies["smsfailover_csrf"]},
                headers=_cookie_header(
                    cookies, origin=origin.url
                ),  # the origin's own address is not the site browsers use
            )
            assert own_host.status_code == 403
        settings = await origin.services.settings.get(ws)
        assert settings.sms_failover_enabled is True
