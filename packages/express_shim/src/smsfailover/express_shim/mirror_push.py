"""Drains the settings outbox into the edge's settings mirror, with backoff, until each change is acked."""

from __future__ import annotations

import logging

from smsfailover.core.log import log_event
from smsfailover.express_shim.edge_client import EdgeClient, EdgeUnavailable
from smsfailover.express_shim.workspace_settings import SettingsOutbox

MAX_BACKOFF_S = 60.0


def backoff_s(attempts: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at a minute: a long edge outage costs one try a minute per change."""
    return min(MAX_BACKOFF_S, 0.5 * 2.0 ** min(attempts, 10))


class MirrorPusher:
    def __init__(self, outbox: SettingsOutbox, edge: EdgeClient) -> None:
        self._outbox = outbox
        self._edge = edge

    async def push_due(self, now_ms: int) -> int:
        """Push due changes, oldest first; stop at the first failure (the edge is likely down)."""
        pushed = 0
        for entry in await self._outbox.due(now_ms):
            try:
                await self._edge.put_settings_mirror(
                    entry.workspace_id, entry.sms_failover_enabled, entry.updated_at_ms
                )
            except EdgeUnavailable as exc:
                retry_at = now_ms + int(backoff_s(entry.attempts) * 1000)
                await self._outbox.retry_later(entry, retry_at)
                log_event(
                    "settings_mirror_push_failed",
                    level=logging.WARNING,
                    workspace_id=entry.workspace_id,
                    attempts=entry.attempts + 1,
                    reason=exc.reason,
                )
                break
            await self._outbox.acknowledge(entry)
            pushed += 1
        return pushed
