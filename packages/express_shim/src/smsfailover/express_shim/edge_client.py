"""The origin's client of the edge's service routes (docs/architecture.md, "Edge service routes").

Every call carries a service token minted from the shared secret. Anything but a 2xx answer (a timeout,
a refused connection, a 5xx, an auth failure from a misconfigured secret) is EdgeUnavailable: the callers
decide what "unavailable" means for them (the ledger degrades to local; the outbox and the sync retry later).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import httpx2


class EdgeUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    async def ledger_claim(self, record: Mapping[str, object]) -> dict[str, Any]:
        return _object(await self._json("POST", "/v1/ledger/claim", {"record": dict(record)}))

    async def ledger_get(self, workspace_id: str, key: str) -> dict[str, Any] | None:
        path = f"/v1/ledger/{_quote(workspace_id)}/{_quote(key)}"
        answer = await self._json("GET", path, None, missing_ok=True)
        return None if answer is None else _object(answer)

    async def ledger_complete(self, workspace_id: str, key: str, message: Mapping[str, object], now: float) -> None:
        body = {"workspace_id": workspace_id, "key": key, "message": dict(message), "now": now}
        await self._json("POST", "/v1/ledger/complete", body)

    async def ledger_release(self, workspace_id: str, key: str, now: float) -> None:
        await self._json("POST", "/v1/ledger/release", {"workspace_id": workspace_id, "key": key, "now": now})

    async def ledger_reconcile(self, records: list[dict[str, object]]) -> dict[str, Any]:
        return _object(await self._json("POST", "/v1/ledger/reconcile", {"records": records}, timeout_s=10.0))

    # -- settings mirror and sync --
    async def put_settings_mirror(self, workspace_id: str, enabled: bool, updated_at_ms: int) -> None:
        body = {"sms_failover_enabled": enabled, "updated_at": updated_at_ms}
        await self._json("PUT", f"/v1/settings-mirror/{_quote(workspace_id)}", body, timeout_s=5.0)

    async def sync_messages(self, after: int, limit: int = 200) -> dict[str, Any]:
        path = f"/v1/sync/messages?after={after}&limit={limit}"
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
                method, path, json=body, headers=headers, timeout=timeout_s or self._timeout_s
            )
        except httpx2.TimeoutException as exc:
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: timed out") from exc
        except httpx2.HTTPError as exc:
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: {type(exc).__name__}") from exc
        if missing_ok and resp.status_code == 404:
            return None
        if not 200 <= resp.status_code < 300:
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: HTTP {resp.status_code}")
        try:
            return resp.json() if resp.content else {}
        except ValueError as exc:
            raise EdgeUnavailable(f"{method} {path.split('?')[0]}: answer is not JSON") from exc
