"""Benchmark 4: idempotency claims per second on each ledger store, through core's IdempotencyLedger; and the
edge ledger's capacity model (docs/scaling.md) checked against the local edge at several batch sizes and shard
counts."""

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
from smsfailover.express_shim.ledger.batcher import LedgerBatcher
from smsfailover.express_shim.ledger.remote_store import EdgeLedger
from smsfailover.express_shim.processes import edge_spec, free_port
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


def _d1(stack: BenchStack, batch_sizes: list[int]) -> StoreFactory:
    @asynccontextmanager
    async def open_store() -> AsyncIterator[LedgerStore]:
        edge = EdgeClient(stack.edge.url, ServiceToken(stack.secrets.service_key, SystemClock()), timeout_s=10.0)
        try:
            yield _EdgeRoutesStore(EdgeLedger(edge, LedgerBatcher(edge, on_batch=batch_sizes.append)))
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

    async def mark_call_began(self, workspace_id: str, key: str, now: float, *, message_id: str) -> bool:
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
    batch_sizes: list[int] = []
    stores: dict[str, StoreFactory] = {
        "SQLite (origin's own ledger)": _sql(stack.sqlite_url("ledger")),
        "PostgreSQL (origin's own ledger)": _sql(await fresh_postgres()),
    }
    baseline = Spread(tuple([(await _measure(_memory, duration, section))[0] for _ in range(settings.repeats)]))
    section.add(Row("in-memory store", "claims/s", baseline, better="higher"))
    for name, factory in stores.items():
        rates = [(await _measure(factory, duration, section))[0] for _ in range(settings.repeats)]
        section.add(Row(name, "claims/s", Spread(tuple(rates)), baseline, "in-memory", better="higher"))
    sqlite = section.rows[1].measured
    rates = [(await _measure(_d1(stack, batch_sizes), duration, section))[0] for _ in range(settings.repeats)]
    d1 = section.add(
        Row(
            "D1 through the local edge host (batched)",
            "claims/s",
            Spread(tuple(rates)),
            sqlite,
            "SQLite",
            better="higher",
            goal=">= 0.05x",
            min_ratio=0.05,
        )
    )
    sizes = sorted(batch_sizes)
    if sizes:
        section.notes.append(
            f"batches the origin's LedgerBatcher sent to the edge: {len(sizes):,}, operations per batch "
            f"median {sizes[len(sizes) // 2]}, max {sizes[-1]} ({CONCURRENCY} concurrent claimers)"
        )
    model = await capacity_model_check(stack, settings, section)
    medians = {row.case: row.measured.median for row in section.rows[:4]}
    section.reading = (
        "Every figure is a first claim, the one write each send must make before its provider call. "
        + ", ".join(f"{name}: {rate:,.0f}/s" for name, rate in medians.items())
        + f". Through the local edge host the origin's claims share requests (batches of up to 128 operations, "
        f"one D1 batch per shard), which puts the edge ledger at {d1.ratio or 0:.3f}x the origin's SQLite ledger "
        f"(goal 0.05x). {model}"
    )
    return section


async def _measure(factory: StoreFactory, duration: float, section: Section) -> tuple[float, int]:
    async with factory() as store:
        rate, other = await claims_per_second(store, duration)
    if other:
        section.notes.append(f"{other} claims did not come back Claimed")
    return rate, other


async def _batch_rate(client: EdgeClient, size: int, batches: int) -> float:
    """Claims per second of `batches` sequential batch requests of `size` fresh claims each (one request at a
    time: the edge's time per batch, nothing hidden by concurrency)."""
    ledger = IdempotencyLedger(InMemoryLedgerStore(), SystemClock())
    run = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    for b in range(batches):
        ops: list[dict[str, object]] = [
            {
                "op": "claim",
                "record": ledger.new_claim("bench-model", f"{run}-{b}-{i}", FINGERPRINT, "origin").to_json(),
            }
            for i in range(size)
        ]
        results = await client.ledger_batch(ops)
        if not all(r.get("claimed") is True for r in results):
            raise RuntimeError(f"a batch of {size} did not claim every key")
    return size * batches / (time.perf_counter() - started)


async def capacity_model_check(stack: BenchStack, settings: RunSettings, section: Section) -> str:
    """docs/scaling.md's model, time per batch = T0 + B x T1, fitted on batches of 1 and 128 and checked at the
    sizes between; then the same batches over 1 and 3 shards (a 3-shard edge started for it)."""
    batches = settings.pick(40, 8)
    client = EdgeClient(stack.edge.url, ServiceToken(stack.secrets.service_key, SystemClock()), timeout_s=30.0)
    try:
        await _batch_rate(client, 8, 3)  # warm-up
        measured = {size: await _batch_rate(client, size, batches) for size in (1, 8, 32, 64, 128)}
    finally:
        await client.aclose()
    t_1, t_128 = 1 / measured[1], 128 / measured[128]  # seconds per batch
    t1 = (t_128 - t_1) / 127
    t0 = t_1 - t1
    worst = 0.0
    for size, rate in measured.items():
        predicted = size / (t0 + size * t1)
        worst = max(worst, abs(rate / predicted - 1))
        section.add(
            Row(
                f"edge batch of {size} claims, 1 shard (model: {predicted:,.0f}/s)",
                "claims/s",
                Spread((rate,)),
                Spread((predicted,)),
                "model",
                better="higher",
            )
        )
    sharded = await _sharded_rate(stack, settings, shards=3, size=64)
    section.add(
        Row(
            "edge batch of 64 claims, 3 shards",
            "claims/s",
            Spread((sharded,)),
            Spread((measured[64],)),
            "1 shard",
            better="higher",
        )
    )
    return (
        f"The model fitted here: T0 = {t0 * 1000:.1f} ms per edge batch request, T1 = {t1 * 1000:.2f} ms per claim; "
        f"its worst error at the sizes between is {worst:.0%}. Three shards run a batch of 64 at "
        f"{sharded / measured[64]:.2f}x one shard's pace on this host: the shards' D1 work runs in parallel, but "
        "the host's one Pyodide thread does the rest, so locally shards buy little; on Cloudflare the isolates "
        "scale out and each D1 database is the serial part (docs/scaling.md)."
    )


async def _sharded_rate(stack: BenchStack, settings: RunSettings, *, shards: int, size: int) -> float:
    env = {**stack.env, "SMSFAILOVER_D1_SHARDS": ",".join(["DB"] + [f"DB_{i}" for i in range(1, shards)])}
    edge = stack.process(
        edge_spec(env, free_port(), stack.base / f"edge-{shards}-shards", python_modules=stack.python_modules)
    )
    await asyncio.to_thread(stack.run, edge)
    client = EdgeClient(edge.url, ServiceToken(stack.secrets.service_key, SystemClock()), timeout_s=30.0)
    try:
        await _batch_rate(client, 8, 3)
        return await _batch_rate(client, size, settings.pick(40, 8))
    finally:
        await client.aclose()
        await asyncio.to_thread(stack.stop, edge)
