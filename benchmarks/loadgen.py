"""A closed-loop HTTP load generator: N concurrent workers POST sends for a fixed time, over aiohttp (its client
costs far less per request than httpx2's, so the generator is not what is measured)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class LoadResult:
    ok: int
    statuses: dict[int, int]
    elapsed_s: float
    latencies_ms: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0


async def post_load(
    url: str, *, token: str, workspace: str, concurrency: int, duration_s: float, warmup_s: float = 0.5
) -> LoadResult:
    """POST /v1/messages with a fresh idempotency key each; counts 2xx answers after a short warm-up."""
    run = uuid.uuid4().hex[:8]
    counter = itertools.count()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        measure_from = started + warmup_s
        stop_at = measure_from + duration_s

        async def worker() -> None:
            while (now := time.perf_counter()) < stop_at:
                n = next(counter)
                body = {"to": "+16266635938", "content": f"bench {run} {n}", "workspace_id": workspace}
                sent = time.perf_counter()
                try:
                    async with session.post(
                        url + "/v1/messages",
                        data=json.dumps(body),
                        headers={**headers, "Idempotency-Key": f"{run}-{n}"},
                    ) as reply:
                        await reply.read()
                        status = reply.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                if now >= measure_from:
                    statuses[status] += 1
                    latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return LoadResult(ok, dict(statuses), elapsed, tuple(latencies))
