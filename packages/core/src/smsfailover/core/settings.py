"""Where the router learns whether a workspace has failover enabled.

`CachedSettings` asks the origin (`GET /v1/workspaces/{ws}/settings`), and when the origin gives no usable
answer, the edge's mirror of the same setting (same path on the edge). A value is reused for `ttl_s`. When
neither answers the last known value stays in use (and is retried after another `ttl_s`); only a workspace
never seen at all reads as the contract's default, disabled, and that is logged, since it means failover
cannot help right now.
Concurrent lookups of one workspace share a single fetch.

The router reads the two sources one at a time when a send needs it (`known`, `read_origin`, `read_edge`):
the origin's read runs beside the send's first origin attempt, and the edge mirror is asked only when the
origin gave no usable answer or its breaker is open, so a workspace with failover off costs no edge request.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Protocol

from smsfailover.core.clock import Clock
from smsfailover.core.log import log_event
from smsfailover.core.transport import EndpointTransport, TransportError, TransportReply


class SettingsSource(Protocol):
    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    enabled: bool
    checked_at: float  # when a fetch last finished, successful or not
    source: str  # "origin", "edge", or "default"


def settings_path(workspace_id: str) -> str:
    return f"/v1/workspaces/{urllib.parse.quote(workspace_id, safe='')}/settings"


class CachedSettings:
    def __init__(
        self,
        transport: EndpointTransport,
        *,
        origin_url: str,
        edge_url: str,
        clock: Clock,
        ttl_s: float = 30.0,
        origin_timeout_s: float = 2.0,
        edge_timeout_s: float = 5.0,
    ) -> None:
        self._transport = transport
        self._origin_url = origin_url.rstrip("/")
        self._edge_url = edge_url.rstrip("/")
        self._clock = clock
        self._ttl_s = ttl_s
        self._origin_timeout_s = origin_timeout_s
        self._edge_timeout_s = edge_timeout_s
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[bool | None]] = {}

    async def failover_enabled(self, workspace_id: str, *, token: str) -> bool:
        """The setting, from the cache, the origin, or the edge mirror, in that order."""
        enabled = self.known(workspace_id)
        if enabled is not None:
            return enabled
        enabled = await self.read_origin(workspace_id, token=token)
        return enabled if enabled is not None else await self.read_edge(workspace_id, token=token)

    def known(self, workspace_id: str) -> bool | None:
        """The cached value while it is fresh; None when it must be read."""
        entry = self._entries.get(workspace_id)
        if entry is not None and self._clock.monotonic() - entry.checked_at < self._ttl_s:
            return entry.enabled
        return None

    async def read_origin(self, workspace_id: str, *, token: str) -> bool | None:
        """The origin's answer (cached), or None when it gave none. Nothing is cached on failure: the caller
        goes on to the edge mirror."""
        return await self._shared("origin", workspace_id, token)

    async def read_edge(self, workspace_id: str, *, token: str) -> bool:
        """The edge mirror's answer; when it gives none, the last known value (or the default, disabled)."""
        enabled = await self._shared("edge", workspace_id, token)
        return enabled if enabled is not None else self._keep_last_known(workspace_id)

    async def _shared(self, source: str, workspace_id: str, token: str) -> bool | None:
        """One fetch per source and workspace at a time; concurrent callers wait for it."""
        pending = self._inflight.get((source, workspace_id))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._inflight[(source, workspace_id)] = future
        try:
            enabled = await self._read(source, workspace_id, token)
        except BaseException:  # e.g. cancelled: the waiters get "no answer" and go on, not the cancellation
            future.set_result(None)
            raise
        else:
            future.set_result(enabled)
        finally:
            del self._inflight[(source, workspace_id)]
        return enabled

    def source_of(self, workspace_id: str) -> str | None:
        """Where the cached value came from ("origin", "edge", "default"), or None if never looked up."""
        entry = self._entries.get(workspace_id)
        return None if entry is None else entry.source

    def remember(self, workspace_id: str, enabled: bool) -> None:
        """Record a value this process just wrote (e.g. after a PATCH) so it applies at once."""
        self._entries[workspace_id] = _Entry(enabled, self._clock.monotonic(), "origin")

    def invalidate(self, workspace_id: str | None = None) -> None:
        if workspace_id is None:
            self._entries.clear()
        else:
            self._entries.pop(workspace_id, None)

    async def _read(self, source: str, workspace_id: str, token: str) -> bool | None:
        base, timeout_s = (
            (self._origin_url, self._origin_timeout_s) if source == "origin" else (self._edge_url, self._edge_timeout_s)
        )
        enabled = await self._fetch(source, base + settings_path(workspace_id), token, timeout_s, workspace_id)
        if enabled is not None:
            self._entries[workspace_id] = _Entry(enabled, self._clock.monotonic(), source)
        return enabled

    async def _fetch(self, source: str, url: str, token: str, timeout_s: float, workspace_id: str) -> bool | None:
        try:
            reply = await self._transport.get_json(url, token=token, timeout_s=timeout_s)
        except TransportError as exc:
            log_event("settings.unreachable", level=logging.WARNING, source=source, reason=exc.reason)
            return None
        enabled = _enabled_from(reply)
        if enabled is None:
            log_event(
                "settings.unusable_answer",
                level=logging.WARNING,
                source=source,
                status=reply.status,
                code=reply.error_code,
                workspace_id=workspace_id,
            )
        return enabled

    def _keep_last_known(self, workspace_id: str) -> bool:
        previous = self._entries.get(workspace_id)
        enabled = previous.enabled if previous is not None else False
        source = previous.source if previous is not None else "default"
        if previous is None:
            log_event(
                "settings.default_disabled",
                level=logging.WARNING,
                workspace_id=workspace_id,
                reason="neither the origin nor the edge mirror answered and nothing was known",
            )
        # Wait another TTL before asking again, so a full outage does not cost two timeouts per send.
        self._entries[workspace_id] = _Entry(enabled, self._clock.monotonic(), source)
        return enabled


def _enabled_from(reply: TransportReply) -> bool | None:
    if reply.status != 200 or reply.json is None:
        return None
    value = reply.json.get("sms_failover_enabled")
    return value if isinstance(value, bool) else None
