"""core's HttpPoster over the Workers runtime's fetch API (`js.fetch`), for the provider call.

Chosen over httpx2 + httpx2-jsfetch after measuring both under Pyodide (docs/decisions.md): no import cost,
a third of the time per POST, nothing more to vendor. Only a failure that proves the request was never written
(connection refused, a name that does not resolve) is ConnectFailed; every other failure, a timeout included,
is ReplyLost: the provider may have acted, so core never retries it (a double SMS is worse than an unknown).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from smsfailover.core.provider import ConnectFailed, HttpReply, ReplyLost

_NEVER_WRITTEN_CODES = frozenset({"ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"})
_NEVER_WRITTEN_TEXT = ("connection refused", "econnrefused", "enotfound", "eai_again", "dns lookup")


class JsFetchPoster:
    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        import js  # only under Pyodide
        from pyodide.ffi import JsException, to_js

        credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        init = to_js(
            {
                "method": "POST",
                "headers": {
                    "content-type": "application/x-www-form-urlencoded",
                    "accept": "application/json",
                    "authorization": f"Basic {credentials}",
                },
                "body": urlencode(list(fields)),
                "signal": js.AbortSignal.timeout(max(1, round(timeout_s * 1000))),
            },
            dict_converter=js.Object.fromEntries,
        )
        answered = False
        try:
            response: Any = await js.fetch(url, init)
            answered = True
            body = (await response.arrayBuffer()).to_bytes()
        except JsException as exc:
            reason = str(getattr(exc, "name", "") or "fetch failed")
            if not answered and _never_written(exc):
                raise ConnectFailed(reason) from exc
            raise ReplyLost(reason) from exc
        return HttpReply(int(response.status), bytes(body))


def _never_written(exc: Exception) -> bool:
    """workerd and Node word this differently; Node puts the system error code on `cause`."""
    cause = getattr(getattr(exc, "js_error", None), "cause", None)
    code = str(getattr(cause, "code", "") or "")
    text = f"{exc} {cause or ''}".lower()
    return code in _NEVER_WRITTEN_CODES or any(marker in text for marker in _NEVER_WRITTEN_TEXT)
