"""JavaScript Request -> core's ApiRequest, and ApiResponse -> a workers Response.

Under workerd (and the local host) `fetch()` receives the SDK's `workers.Request`, a thin wrapper over the JS
Request; a raw JS Request is accepted as well. The path is kept percent-encoded, as the routers expect.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from smsfailover.core.messages_api import ApiRequest, ApiResponse

BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


async def to_api_request(request: Any) -> ApiRequest:
    js_request = getattr(request, "js_object", request)
    method = str(js_request.method).upper()
    url = urllib.parse.urlsplit(str(js_request.url))
    body = b""
    if method not in BODYLESS:
        body = (await js_request.arrayBuffer()).to_bytes()
    return ApiRequest(
        method=method,
        path=url.path or "/",
        query=query_params(url.query),
        headers={str(pair[0]).lower(): str(pair[1]) for pair in js_request.headers.entries()},
        body=body,
    )


def query_params(query: str) -> dict[str, str]:
    """The first value of each name (a repeated name cannot smuggle a second value past validation)."""
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, value)
    return params


def response_headers(response: ApiResponse) -> dict[str, str]:
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    headers.update({name.lower(): value for name, value in response.headers.items()})
    return headers


def response_text(response: ApiResponse) -> str:
    return json.dumps(response.body, separators=(",", ":"), ensure_ascii=False)


def to_worker_response(response: ApiResponse) -> Any:
    from workers import Response  # the Workers runtime SDK exists only under Pyodide

    return Response(response_text(response), status=response.status, headers=response_headers(response))
