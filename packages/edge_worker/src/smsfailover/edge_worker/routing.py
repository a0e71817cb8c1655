"""A tiny method + path router for the edge's own routes, with the contract's 404 and 405 answers.

Path templates use `{name}` for one segment; a segment is matched percent-encoded (so an idempotency key may
hold `/` as `%2F`) and handed to the handler decoded.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from smsfailover.core.errors import ApiError
from smsfailover.core.messages_api import ApiRequest, ApiResponse

Handler = Callable[[ApiRequest, Mapping[str, str]], Awaitable[ApiResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler | None = None  # None: served elsewhere (core's MessageApi); listed for 405 answers

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.template)


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
    return re.compile(f"^{regex}$")


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: Mapping[str, str]


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = [(route, route.pattern) for route in routes]

    def match(self, method: str, path: str) -> Match:
        """The route for `method path`: ApiError 404 if no template fits, 405 if only the method is wrong."""
        allowed: list[str] = []
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                return Match(route, params)
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}.",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, "not_found", f"There is no route {path} on the edge.")
