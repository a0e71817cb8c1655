"""Twilio's error answers: `{"code", "message", "more_info", "status"}`, as its REST API sends them."""

from __future__ import annotations

from starlette.responses import JSONResponse

# A generic Twilio code for an HTTP status the simulator is told to answer with.
CODE_FOR_STATUS = {400: 21211, 401: 20003, 403: 20403, 404: 20404, 405: 20004, 429: 20429, 503: 20503}


class TwilioError(Exception):
    """An answer the simulator gives instead of a message: raised anywhere, rendered by one handler."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return JSONResponse(body, status_code=self.status, headers=headers)


def error_for_status(status: int, code: int | None = None) -> TwilioError:
    """The error an injected fault answers with: a status code, and optionally Twilio's code for it."""
    chosen = code if code is not None else CODE_FOR_STATUS.get(status, 20500)
    return TwilioError(chosen, f"Simulated error {chosen} (HTTP {status})", status)
