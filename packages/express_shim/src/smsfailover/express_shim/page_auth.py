"""Sign-in and cross-site-request protection for the settings page.

Session: server-side (page_sessions.py). Signing in checks the token once with core's auth (a workspace's own
token, or an operator token, which may open any workspace's page and steer the fleet's breaker); the browser then
holds only a random session id in an HttpOnly, SameSite=Strict cookie, Secure everywhere but development (and
there too when the page is served over https). Signing out deletes the session. The token never appears in a URL,
in the page, or in storage.

CSRF: a random token in a second HttpOnly SameSite=Strict cookie, rendered into each form (hidden field) and
into the page for its script (sent back as the X-CSRF-Token header): a write must echo the cookie's value (double
submit), and a write whose Origin header names another site is refused outright. "This site" is the configured
public URL (SMSFAILOVER_PUBLIC_URL) when there is one, so the check holds behind a TLS proxy. The token is
replaced at sign-in and at sign-out.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

import jwt
from smsfailover.core.auth import verify_token
from smsfailover.core.errors import ApiError
from smsfailover.express_shim.page_sessions import PageSession, PageSessions
from smsfailover.express_shim.services import OriginServices
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "smsfailover_session"
CSRF_COOKIE = "smsfailover_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/settings"


def _sessions(services: OriginServices) -> PageSessions:
    return PageSessions(services.db)


async def current_session(request: Request, services: OriginServices) -> PageSession | None:
    """Who this browser is signed in as, or None (no cookie, an ended or expired session)."""
    return await _sessions(services).find(request.cookies.get(SESSION_COOKIE, ""), services.now_ms())


async def sign_in(services: OriginServices, token: str, workspace_id: str) -> tuple[str, PageSession]:
    """A new session (its id, and who) for a workspace's own token or an operator token; ApiError otherwise."""
    token = token.strip()
    principal = verify_token(services.config.signing_keys, token, services.clock.time())
    if principal.is_operator:
        session = PageSession("operator", None)
    elif principal.workspace_id == workspace_id:
        session = PageSession("workspace", workspace_id)
    else:
        raise ApiError(403, "forbidden", "This token is not for this workspace.", field="token")
    expires_s = jwt.decode(token, options={"verify_signature": False})["exp"]  # verified above
    session_id = await _sessions(services).start(session, services.now_ms(), int(float(expires_s) * 1000))
    return session_id, session


async def sign_out(request: Request, services: OriginServices) -> None:
    await _sessions(services).end(request.cookies.get(SESSION_COOKIE, ""))


def _own_origin(request: Request, services: OriginServices) -> str:
    """scheme://host[:port] of this site: the configured public URL, else the request's."""
    public = services.config.public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}"
    return f"{request.url.scheme}://{request.url.netloc}"


def _secure(request: Request, services: OriginServices) -> bool:
    return not services.config.development or _own_origin(request, services).startswith("https://")


def _set_cookie(response: Response, request: Request, services: OriginServices, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path=COOKIE_PATH, httponly=True, secure=_secure(request, services), samesite="strict"
    )


def set_session(response: Response, request: Request, services: OriginServices, session_id: str) -> None:
    _set_cookie(response, request, services, SESSION_COOKIE, session_id)
    rotate_csrf(response, request, services)


def clear_session(response: Response, request: Request, services: OriginServices) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=_secure(request, services), samesite="strict"
    )
    rotate_csrf(response, request, services)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: the cookie's value, or a new one (remember_csrf then sets the cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def remember_csrf(response: Response, request: Request, services: OriginServices, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        _set_cookie(response, request, services, CSRF_COOKIE, token)


def rotate_csrf(response: Response, request: Request, services: OriginServices) -> None:
    """A fresh CSRF token: one a page showed before sign-in (or to the previous user) is worth nothing after."""
    _set_cookie(response, request, services, CSRF_COOKIE, secrets.token_urlsafe(32))


def _csrf_refused(message: str) -> ApiError:
    return ApiError(403, "csrf_failed", message, field=CSRF_FIELD)


def check_write(request: Request, services: OriginServices, submitted: str | None) -> None:
    """Refuse a cross-site write: another site's Origin, or a CSRF token that does not match the cookie."""
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request, services):
        raise _csrf_refused("This request came from another site; reload the settings page and try again.")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise _csrf_refused("The form has expired or did not come from this page; reload it and try again.")
