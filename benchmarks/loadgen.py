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
    ledgers: dict[str, int]  # 2xx answers by their `ledger` field: "edge", or "local" when the origin degraded

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
    ledgers: Counter[str] = Counter()
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> tuple[int, str]:
            n = next(counter)
            body = {"to": "+16266635938", "content": f"bench {run} {n}", "workspace_id": workspace}
            try:
                async with session.post(
                    url + "/v1/messages", data=json.dumps(body), headers={**headers, "Idempotency-Key": f"{run}-{n}"}
                ) as reply:
                    payload = await reply.read()
                    return reply.status, _ledger(payload) if reply.status < 300 else ""
            except (aiohttp.ClientError, TimeoutError):
                return 0, ""

        # One unmeasured request per connection first: a fresh server's first answers include its lazy imports.
        await asyncio.gather(*(one() for _ in range(concurrency)))
        measure_from = time.perf_counter() + warmup_s
        stop_at = measure_from + duration_s

        async def worker() -> None:
            while (now := time.perf_counter()) < stop_at:
                sent = time.perf_counter()
                status, ledger = await one()
                if now >= measure_from:
                    statuses[status] += 1
                    if ledger:
                        ledgers[ledger] += 1
                    latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return LoadResult(ok, dict(statuses), elapsed, tuple(latencies), dict(ledgers))


def _ledger(payload: bytes) -> str:
    try:
        value = json.loads(payload).get("ledger")
    except (ValueError, AttributeError):
        return "?"
    return value if isinstance(value, str) else "?"
