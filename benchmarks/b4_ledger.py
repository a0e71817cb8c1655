"""Benchmark 4: idempotency claims per second on each ledger store, through core's IdempotencyLedger."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from smsfailover.core.clock import SystemClock
from smsfailover.core.ledger import Claimed, IdempotencyLedger, InMemoryLedgerStore, LedgerRecord, LedgerStore
from smsfailover.core.sql import SqlLedgerStore
from smsfailover.express_shim.edge_client import EdgeClient
from smsfailover.express_shim.ledger.remote_store import EdgeLedger
from smsfailover.express_shim.services import ServiceToken
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.storage.open import open_database

from benchmarks.framework import Row, RunSettings, Section, Spread
from benchmarks.stack import BenchStack, fresh_postgres

CONCURRENCY = 64
FINGERPRINT = "0" * 64
StoreFactory = Callable[[], AbstractAsyncContextManager[LedgerStore]]


@asynccontextmanager
async def _memory() -> AsyncIterator[LedgerStore]:
    yield InMemoryLedgerStore()


def _sql(url: str) -> StoreFactory:
    @asynccontextmanager
    async def open_store() -> AsyncIterator[LedgerStore]:
        db = await open_database(url)
        try:
            await migrate(db)
            yield SqlLedgerStore(db)
        finally:
            await db.close()

    return open_store


def _d1(stack: BenchStack) -> StoreFactory:
    @asynccontextmanager
    async def open_store() -> AsyncIterator[LedgerStore]:
        edge = EdgeClient(stack.edge.url, ServiceToken(stack.secrets.jwt_secret, SystemClock()), timeout_s=10.0)
        try:
            yield _EdgeRoutesStore(EdgeLedger(edge))
        finally:
            await edge.aclose()

    return open_store


class _EdgeRoutesStore:
    """The edge's service ledger routes as a LedgerStore, so the benchmark claims through IdempotencyLedger."""

    def __init__(self, edge: EdgeLedger) -> None:
        self._edge = edge

    async def try_claim(self, record: LedgerRecord) -> bool:
        return (await self._edge.claim(record))[0]

    async def get(self, workspace_id: str, key: str) -> LedgerRecord | None:
        return await self._edge.get(workspace_id, key)

    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        raise NotImplementedError("the benchmark only claims")

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        raise NotImplementedError("the benchmark only claims")

    async def adopt(self, record: LedgerRecord, *, replacing: str = "") -> bool:
        raise NotImplementedError("the benchmark only claims")

    async def purge(self, older_than: float) -> int:
        return 0


async def claims_per_second(store: LedgerStore, duration_s: float) -> tuple[float, int]:
    """CONCURRENCY claimers, each claiming fresh keys until the time is up; (claims per second, non-claims)."""
    ledger = IdempotencyLedger(store, SystemClock(), mode="edge")
    run = uuid.uuid4().hex[:8]
    counter = itertools.count()
    claimed = 0
    other = 0
    stop_at = time.perf_counter() + duration_s

    async def claimer() -> None:
        nonlocal claimed, other
        while time.perf_counter() < stop_at:
            outcome = await ledger.claim("bench-ledger", f"{run}-{next(counter)}", FINGERPRINT, "origin")
            if isinstance(outcome, Claimed):
                claimed += 1
            else:
                other += 1

    started = time.perf_counter()
    await asyncio.gather(*(claimer() for _ in range(CONCURRENCY)))
    return claimed / (time.perf_counter() - started), other


async def run(stack: BenchStack, settings: RunSettings) -> Section:
    duration = settings.seconds(2.0, 0.4)
    section = Section("4", "Ledger: claims per second on each store")
    section.setup = (
        f"{CONCURRENCY} concurrent claimers through `IdempotencyLedger.claim` (a fresh key each, so every claim is "
        f"a first claim: one conditional insert), {duration:.1f} s per run, {settings.repeats} runs per store. "
        "Baseline: core's in-memory store. D1 is Miniflare's local D1 behind the edge host's ledger API, reached as "
        "the origin reaches it (the service ledger routes over HTTP): a development stand-in, not a figure for "
        "production D1."
    )
    stores: dict[str, StoreFactory] = {
        "SQLite (origin's own ledger)": _sql(stack.sqlite_url("ledger")),
        "PostgreSQL (origin's own ledger)": _sql(await fresh_postgres()),
        "D1 through the local edge host": _d1(stack),
    }
    baseline = Spread(tuple([(await _measure(_memory, duration, section))[0] for _ in range(settings.repeats)]))
    section.add(Row("in-memory store", "claims/s", baseline, better="higher"))
    for name, factory in stores.items():
        rates = [(await _measure(factory, duration, section))[0] for _ in range(settings.repeats)]
        section.add(Row(name, "claims/s", Spread(tuple(rates)), baseline, "in-memory", better="higher"))
    medians = {row.case: row.measured.median for row in section.rows}
    section.reading = (
        "Every figure is a first claim, the one write each send must make before its provider call. "
        + ", ".join(f"{name}: {rate:,.0f}/s" for name, rate in medians.items())
        + ". The store, not the ledger logic, sets the pace: the in-memory figure is the ceiling of the Python "
        "around it. Through the local edge host each claim is an HTTP request, a JWT check, Pyodide and a "
        "Miniflare D1 statement, which is why failover-on throughput (benchmark 3) is capped by the edge here."
    )
    return section


async def _measure(factory: StoreFactory, duration: float, section: Section) -> tuple[float, int]:
    async with factory() as store:
        rate, other = await claims_per_second(store, duration)
    if other:
        section.notes.append(f"{other} claims did not come back Claimed")
    return rate, other
