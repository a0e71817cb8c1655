"""Every error leaves the origin in the contract's envelope: ApiError, Starlette's 404/405, and the unexpected.

An unexpected exception is logged by type only (never the request, a token or content) and answered with a
generic 500: no stack trace reaches a client.
"""

from __future__ import annotations

import logging

from smsfailover.core.errors import ApiError
from smsfailover.core.log import log_event
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

_HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthorized", "A valid bearer token is required."),
    403: ("forbidden", "This token may not do that."),
    404: ("not_found", "There is no such resource."),
    405: ("method_not_allowed", "This route does not take that method."),
    413: ("payload_too_large", "The request body is too large."),
}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.status, headers=error.headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    return error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
        raise exc
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "The request failed."))
    headers = dict(exc.headers or {})
    return error_response(ApiError(exc.status_code, code, message, headers=headers))


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log_event("origin_unhandled_error", level=logging.ERROR, error=type(exc).__name__, path=request.url.path)
    return error_response(ApiError(500, "internal_error", "The origin could not handle this request; try again."))
