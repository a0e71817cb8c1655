"""RedisBreakerStore against the real Redis on 127.0.0.1:6379: a fleet sharing one breaker, a lost Redis,
and the way back. Each test has its own key prefix; Redis's clock runs the open periods, so waits poll."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from smsfailover.core.breaker import Admission, BreakerPolicy
from smsfailover.core.breaker_store import StorePermission
from smsfailover.core.clock import ManualClock
from smsfailover.core.redis_breaker import RedisBreakerStore

from tests.support.tcp_switch import TcpSwitch

pytestmark = pytest.mark.redis

REDIS_PORT = 6379
ORIGIN = "http://origin.test"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test:{uuid.uuid4().hex}:"
    yield name
    client = Redis(port=REDIS_PORT)
    keys = [key async for key in client.scan_iter(match=name + "*", count=100)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _store(
    prefix: str, *, port: int = REDIS_PORT, clock: ManualClock | None = None, **policy: float
) -> RedisBreakerStore:
    chosen = BreakerPolicy(**policy)  # type: ignore[arg-type]
    clock = clock or ManualClock()
    return RedisBreakerStore.from_url(
        f"redis://127.0.0.1:{port}/0",
        ORIGIN,
        policy=chosen,
        fallback=chosen.build(clock),
        clock=clock,
        prefix=prefix,
        retry_s=5.0,
    )


async def _fail(store: RedisBreakerStore, times: int = 1) -> None:
    for _ in range(times):
        await store.record(await store.acquire(), healthy=False)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in range(1000):
        if await check():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_two_processes_trip_and_recover_together(prefix: str) -> None:
    a, b = _store(prefix, open_s=0.3), _store(prefix, open_s=0.3)
    try:
        await _fail(a, 2)
        await _fail(b, 1)  # the third failure in a row, fleet-wide
        assert (await b.acquire()).admission is Admission.REJECTED
        assert (await a.acquire()).admission is Admission.REJECTED
        snapshot = await a.snapshot()
        assert snapshot["state"] == "open"
        assert snapshot["consecutive_failures"] == 3
        assert 0 < float(snapshot["remaining_open_s"]) <= 0.3  # type: ignore[arg-type]
        probes: list[StorePermission] = []

        async def b_probes() -> bool:
            permission = await b.acquire()
            if permission.admission is Admission.PROBE:
                probes.append(permission)
            return bool(probes)

        await _until(b_probes)
        assert (await a.acquire()).admission is Admission.REJECTED  # one probe fleet-wide
        assert (await b.acquire()).admission is Admission.REJECTED
        await b.record(probes[0], healthy=True)
        assert (await a.acquire()).admission is Admission.ALLOWED
        assert (await a.snapshot())["state"] == "closed"
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_failed_probe_reopens_for_longer_fleet_wide(prefix: str) -> None:
    a, b = (
        _store(prefix, failures=1, open_s=0.2, open_max_s=5.0),
        _store(prefix, failures=1, open_s=0.2, open_max_s=5.0),
    )
    try:
        await _fail(a)
        probe: list[StorePermission] = []

        async def got_probe() -> bool:
            permission = await b.acquire()
            if permission.admission is Admission.PROBE:
                probe.append(permission)
            return bool(probe)

        await _until(got_probe)
        await b.record(probe[0], healthy=False)
        remaining = float((await a.snapshot())["remaining_open_s"])  # type: ignore[arg-type]
        assert 0.2 < remaining <= 0.4  # the second open period doubles
    finally:
        await a.aclose()
        await b.aclose()


async def test_released_probe_lets_the_next_process_probe(prefix: str) -> None:
    a, b = _store(prefix), _store(prefix)
    try:
        await a.force_open(0.0)
        probe = await a.acquire()
        assert probe.admission is Admission.PROBE
        assert (await b.acquire()).admission is Admission.REJECTED
        a.release(probe)

        async def b_gets_it() -> bool:
            return (await b.acquire()).admission is Admission.PROBE

        await _until(b_gets_it)
    finally:
        await a.aclose()
        await b.aclose()


async def test_slow_successes_count_as_failures_fleet_wide(prefix: str) -> None:
    clock = ManualClock()
    a, b = _store(prefix, clock=clock, slow_call_s=1.0), _store(prefix)
    try:
        for _ in range(3):
            permission = await a.acquire()
            clock.advance(2.0)
            await a.record(permission, healthy=True)
        assert (await b.acquire()).admission is Admission.REJECTED
    finally:
        await a.aclose()
        await b.aclose()


async def test_isolate_and_reset_act_on_every_process(prefix: str) -> None:
    a, b = _store(prefix), _store(prefix)
    try:
        await a.force_open(60.0)
        snapshot = await b.snapshot()
        assert snapshot["state"] == "open"
        assert 59 < float(snapshot["remaining_open_s"]) <= 60  # type: ignore[arg-type]
        assert (await b.acquire()).admission is Admission.REJECTED
        await b.reset()
        assert (await a.acquire()).admission is Admission.ALLOWED
        assert (await a.snapshot())["consecutive_failures"] == 0
    finally:
        await a.aclose()
        await b.aclose()


async def test_unreachable_redis_falls_back_to_the_process_breaker(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(prefix, port=_closed_port())
    try:
        with caplog.at_level(logging.WARNING, logger="smsfailover"):
            permission = await store.acquire()
        assert permission.allowed
        assert permission.local is not None  # granted by the process's own breaker
        assert store.degraded
        assert [r for r in caplog.records if "breaker.shared_lost" in r.getMessage()]
        await store.record(permission, healthy=False)
        await _fail(store, 2)
        assert (await store.acquire()).admission is Admission.REJECTED  # the local breaker tripped
        snapshot = await store.snapshot()
        assert snapshot["state"] == "open"
        assert snapshot["shared"] is False
    finally:
        await store.aclose()


async def test_redis_back_rejoins_and_shares_what_was_learned_alone(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    switch = TcpSwitch(REDIS_PORT)
    await switch.connect()
    clock = ManualClock()
    lonely, fleet = _store(prefix, port=switch.port, clock=clock), _store(prefix)
    try:
        assert (await lonely.acquire()).local is None  # shared while Redis is reachable
        await switch.cut()
        with caplog.at_level(logging.WARNING, logger="smsfailover"):
            await _fail(lonely, 3)  # Redis lost: its own breaker trips
            assert lonely.degraded
            assert (await fleet.acquire()).admission is Admission.ALLOWED  # the fleet never heard
            await switch.connect()
            assert (await lonely.acquire()).admission is Admission.REJECTED  # within retry_s: still local
            clock.advance(5.0)
            await lonely.acquire()
        assert not lonely.degraded
        assert [r for r in caplog.records if "breaker.shared_restored" in r.getMessage()]
        assert (await fleet.acquire()).admission is Admission.REJECTED  # the open breaker was shared on return
        assert (await fleet.snapshot())["state"] == "open"
    finally:
        await lonely.aclose()
        await fleet.aclose()
        await switch.cut()
