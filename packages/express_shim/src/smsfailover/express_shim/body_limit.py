"""413 for request bodies over the limit, by Content-Length and by the bytes actually streamed.

An ASGI middleware, so no route (ours or the settings page's) can read an oversize body by accident.
"""

from __future__ import annotations

from smsfailover.core.errors import ApiError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is over {limit // 1024} KiB.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            # answered here: this middleware sits outside the app's exception handlers
            error = too_large(self.limit)
            await JSONResponse(error.envelope(), status_code=error.status)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:  # raised inside the route, so its ApiError handler answers 413
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
