"""The Worker's entry module (wrangler.toml `main`): hands every event to smsfailover.edge_worker."""

from __future__ import annotations

from typing import Any

from smsfailover.edge_worker.worker import handle_fetch, handle_scheduled
from workers import WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        return await handle_fetch(request, self.env, self.ctx)

    async def scheduled(self, controller: Any, env: Any = None, ctx: Any = None) -> None:
        await handle_scheduled(controller, self.env)
