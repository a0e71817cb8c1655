"""Sign-in and cross-site-request protection for the settings page.

Session: the workspace's own token (a JWT, CONTRACT §3) kept in an HttpOnly, SameSite=Strict cookie (Secure when
the page is served over https), verified with core's auth on every request, so expiry and the secret are the
token's own and nothing else needs storing. It never appears in a URL or in the page.

CSRF: a random per-browser token in a second HttpOnly SameSite=Strict cookie, rendered into each form (hidden
field) and into the page for its script (sent back as the X-CSRF-Token header): a write must echo the cookie's
value (double submit), and a write whose Origin header names another site is refused outright.
"""

from __future__ import annotations

import hmac
import secrets

from smsfailover.core.auth import verify_token
from smsfailover.core.errors import ApiError
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "smsfailover_session"
CSRF_COOKIE = "smsfailover_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/settings"


def session_workspace(request: Request, secret: str) -> str | None:
    """The workspace the browser is signed in to, or None (no cookie, bad or expired token, service token)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or not secret:
        return None
    try:
        principal = verify_token(secret, token)
    except ApiError:
        return None
    return principal.workspace_id  # None for a service token: it cannot act for a workspace


def sign_in_workspace(secret: str, token: str, workspace_id: str) -> None:
    """Raise ApiError unless token is this workspace's own valid token."""
    principal = verify_token(secret, token.strip())
    if principal.is_service or principal.workspace_id != workspace_id:
        raise ApiError(403, "forbidden", "This token is not for this workspace.", field="token")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token.strip(), path=COOKIE_PATH, httponly=True, secure=_secure(request), samesite="strict"
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=_secure(request), samesite="strict")


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: the cookie's value, or a new one (remember_csrf then sets the cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def remember_csrf(response: Response, request: Request, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE, token, path=COOKIE_PATH, httponly=True, secure=_secure(request), samesite="strict"
        )


def _csrf_refused(message: str) -> ApiError:
    return ApiError(403, "csrf_failed", message, field=CSRF_FIELD)


def check_write(request: Request, submitted: str | None) -> None:
    """Refuse a cross-site write: another site's Origin, or a CSRF token that does not match the cookie."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise _csrf_refused("This request came from another site; reload the settings page and try again.")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise _csrf_refused("The form has expired or did not come from this page; reload it and try again.")
