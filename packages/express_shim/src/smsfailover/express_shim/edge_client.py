"""The origin's client of the edge's service routes (docs/architecture.md, "Edge service routes").

Every call carries a service token minted from the shared secret. Anything but a 2xx answer is EdgeUnavailable,
with a `kind` that says what is known about the request (DESIGN.md, "Ledger authority" rule 5):

    unreachable   the edge definitely never got the request: connection refused or reset before the request was
                  written, connect timeout, DNS or TLS failure (a claim retries it once within its budget)
    no_answer     the request may have reached the edge: read timeout, connection lost after writing, a wait for
                  a pooled connection that ran out (our own congestion, not the edge's absence)
    auth          401/403: a configuration fault (secrets differ), loud, never "unreachable"
    error         a 5xx or an answer that makes no sense

The callers decide what each kind means for them (the ledger; the outbox and the sync retry later).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

UNREACHABLE, NO_ANSWER, AUTH, ERROR = "unreachable", "no_answer", "auth", "error"

# httpx2 errors after which the edge cannot have seen the request.
_NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.WriteError)


class EdgeUnavailable(Exception):
    def __init__(self, reason: str, kind: str = ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def definitely_unreachable(self) -> bool:
        return self.kind == UNREACHABLE


def _timeout(total_s: float) -> httpx2.Timeout:
    # A short connect phase: a silent connect is given up early (a claim's budget is shorter still).
    return httpx2.Timeout(total_s, connect=min(total_s, 0.5))


def _kind_of(exc: httpx2.HTTPError) -> str:
    return UNREACHABLE if isinstance(exc, _NEVER_SENT) else NO_ANSWER


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise EdgeUnavailable("the edge answered something other than a JSON object")
    return answer


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class EdgeClient:
    def __init__(
        self,
        base_url: str,
        service_token: Callable[[], str],
        *,
        timeout_s: float = 1.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = service_token
        self._timeout_s = timeout_s
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            limits=httpx2.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- ledger --
    async def ledger_get(self, workspace_id: str, key: str) -> dict[str, Any] | None:
        path = f"/v1/ledger/{_quote(workspace_id)}/{_quote(key)}"
        answer = await self._json("GET", path, None, missing_ok=True)
        return None if answer is None else _object(answer)

    async def ledger_batch(self, ops: list[dict[str, object]]) -> list[dict[str, Any]]:
        """POST /v1/ledger/batch: one answer per operation, in order (ledger/batcher.py)."""
        answer = _object(await self._json("POST", "/v1/ledger/batch", {"ops": ops}))
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(ops) or not all(isinstance(r, dict) for r in results):
            raise EdgeUnavailable("POST /v1/ledger/batch: the answer does not match the operations")
        return results

    async def ledger_ping(self) -> dict[str, Any]:
        """An authenticated round trip to every edge ledger shard (what ends degraded mode)."""
        return _object(await self._json("GET", "/v1/ledger/ping", None))

    async def ledger_reconcile(self, records: list[dict[str, object]]) -> dict[str, Any]:
        return _object(await self._json("POST", "/v1/ledger/reconcile", {"records": records}, timeout_s=10.0))

    # -- settings mirror and sync --
    async def put_settings_mirror(self, workspace_id: str, enabled: bool, updated_at_ms: int) -> None:
        body = {"sms_failover_enabled": enabled, "updated_at": updated_at_ms}
        await self._json("PUT", f"/v1/settings-mirror/{_quote(workspace_id)}", body, timeout_s=5.0)

    async def sync_messages(self, after: int, limit: int = 200, *, shard: int = 0) -> dict[str, Any]:
        path = f"/v1/sync/messages?shard={shard}&after={after}&limit={limit}"
        return _object(await self._json("GET", path, None, timeout_s=10.0))

    async def health(self) -> tuple[bool, float]:
        """(healthy, latency in ms) of GET /v1/health."""
        started = time.perf_counter()
        try:
            resp = await self._http.get("/v1/health", timeout=self._timeout_s * 2)
        except httpx2.HTTPError:
            return False, (time.perf_counter() - started) * 1000
        return resp.status_code == 200, (time.perf_counter() - started) * 1000

    async def _json(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None,
        *,
        missing_ok: bool = False,
        timeout_s: float | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            resp = await self._http.request(
                method, path, json=body, headers=headers, timeout=_timeout(timeout_s or self._timeout_s)
            )
        except httpx2.HTTPError as exc:
            what = "timed out" if isinstance(exc, httpx2.TimeoutException) else type(exc).__name__
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: {what}", _kind_of(exc)) from exc
        if missing_ok and resp.status_code == 404:
            return None
        if not 200 <= resp.status_code < 300:
            kind = AUTH if resp.status_code in (401, 403) else ERROR
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: HTTP {resp.status_code}", kind)
        try:
            return resp.json() if resp.content else {}
        except ValueError as exc:
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: answer is not JSON") from exc
