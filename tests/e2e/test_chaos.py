"""Exactly-once under chaos: hundreds of logical messages through the SDK while the origin, the edge and the
provider misbehave in turn. Zero duplicates at the provider; every message is sent, failed with a reason, or
reported unknown.

Phases run one after another and in-flight sends drain between them, so the one documented exception (the
origin on its local ledger while the edge is down, then timing out) is never provoked here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from smsfailover.core import FailoverClient, MessageRejected, SendFailed

from tests.contract.kit import Api, Simulator, apoll, json_body, unique_content
from tests.e2e.conftest import ClientFactory
from tests.e2e.fault_proxy import Fault, FaultProxy
from tests.support.fixtures import Stack

PER_PHASE = 30
CONCURRENCY = 4
SENT_STATUSES = {"queued", "sent", "delivered"}


@dataclass
class Outcome:
    marker: str
    phase: str
    kind: str  # sent | unknown | failed | rejected
    endpoint: str | None = None
    message_id: str | None = None
    reason: str = ""


@dataclass
class Phase:
    name: str
    setup: Callable[[], Coroutine[Any, Any, None]] | None = None
    # (fraction of the phase's messages done, action): kill and restart happen while sends are in flight
    during: list[tuple[float, Callable[[], Coroutine[Any, Any, None]]]] = field(default_factory=list)
    teardown: Callable[[], Coroutine[Any, Any, None]] | None = None
    concurrency: int = CONCURRENCY  # phases that mostly wait on a slow provider can afford more


async def _send_one(client: FailoverClient, ws: str, phase: str) -> Outcome:
    marker = unique_content(f"chaos-{phase.replace(' ', '-')}")
    try:
        result = await client.send_message(to="+16266635938", content=marker, workspace_id=ws)
    except MessageRejected as exc:
        return Outcome(marker, phase, "rejected", reason=f"{exc.code}: {exc}")
    except SendFailed as exc:
        return Outcome(marker, phase, "failed", reason=str(exc) or repr(exc.attempts))
    kind = "unknown" if result.status == "unknown" else "sent"
    return Outcome(marker, phase, kind, result.endpoint, result.message_id)


async def _run_phase(client: FailoverClient, ws: str, phase: Phase) -> list[Outcome]:
    if phase.setup is not None:
        await phase.setup()
    done = 0
    progressed = asyncio.Event()
    semaphore = asyncio.Semaphore(phase.concurrency)

    async def one() -> Outcome:
        nonlocal done
        async with semaphore:
            outcome = await _send_one(client, ws, phase.name)
        done += 1
        progressed.set()
        return outcome

    async def act() -> None:
        """The phase's actions one after another (a restart must not race the kill before it)."""
        for fraction, action in phase.during:
            while done < fraction * PER_PHASE and done < PER_PHASE:
                progressed.clear()
                await progressed.wait()
            await action()

    sends = asyncio.gather(*(one() for _ in range(PER_PHASE)))
    actions = asyncio.create_task(act())
    outcomes = await sends
    await actions  # actions whose threshold came last (e.g. a restart) still run
    if phase.teardown is not None:
        await phase.teardown()
    return list(outcomes)


@pytest.mark.slow
async def test_no_duplicates_and_every_message_accounted_for_under_chaos(
    stack: Stack, make_client: ClientFactory, sim: Simulator, origin_api: Api, edge_api: Api, failover_ws: str
) -> None:
    proxy = FaultProxy(stack.origin_url)
    await proxy.start()
    client = make_client(
        workspace_id=failover_ws,
        SMSFAILOVER_ORIGIN_URL=proxy.url,
        SMSFAILOVER_EDGE_TIMEOUT_S="5",
        SMSFAILOVER_BREAKER_OPEN_S="2",
        SMSFAILOVER_SEND_DEADLINE_S="8",
    )

    async def proxy_fault(fault: Fault, hold_s: float = 0.0) -> None:
        proxy.set(fault, hold_s=hold_s)

    async def calm() -> None:
        proxy.set(Fault.NONE)
        await asyncio.to_thread(sim.clear_faults)

    def sim_faults(**faults: object) -> Callable[[], Coroutine[Any, Any, None]]:
        return lambda: asyncio.to_thread(sim.set_faults, **faults)

    phases = [
        Phase("calm"),
        Phase(
            "origin killed",
            during=[
                (0.2, lambda: asyncio.to_thread(stack.kill_origin)),
                (0.6, lambda: asyncio.to_thread(stack.start_origin)),
            ],
        ),
        Phase("origin 5xx", setup=lambda: proxy_fault(Fault.ERROR_502), teardown=calm),
        Phase("origin slow after sending", setup=lambda: proxy_fault(Fault.SLOW_AFTER, 2.5), teardown=calm),
        Phase("provider failing", setup=sim_faults(status=503, rate=0.3), teardown=calm),
        Phase("provider slow", setup=sim_faults(slow_after_accept_ms=2500), teardown=calm, concurrency=10),
        Phase("calm again"),
        Phase(
            "edge killed",
            during=[
                (0.2, lambda: asyncio.to_thread(stack.kill_edge)),
                (0.6, lambda: asyncio.to_thread(stack.start_edge)),
            ],
        ),
        Phase("calm at last"),
    ]
    started = time.monotonic()
    outcomes: list[Outcome] = []
    durations: dict[str, float] = {}
    try:
        async with asyncio.timeout(240):
            for phase in phases:
                phase_started = time.monotonic()
                outcomes += await _run_phase(client, failover_ws, phase)
                durations[phase.name] = time.monotonic() - phase_started
    finally:
        await calm()
        await proxy.stop()
    elapsed = time.monotonic() - started

    received = Counter(str(m.get("body", "")) for m in sim.messages())
    count = {o.marker: received.get(o.marker, 0) for o in outcomes}
    _print_summary(outcomes, count, elapsed, proxy.state.injected, durations)

    duplicates = [o for o in outcomes if count[o.marker] > 1]
    lost = [o for o in outcomes if o.kind == "sent" and count[o.marker] != 1]
    failed_but_sent = [o for o in outcomes if o.kind in {"failed", "rejected"} and count[o.marker] != 0]
    unexplained = [o for o in outcomes if o.kind in {"failed", "rejected"} and not o.reason.strip()]
    assert len(outcomes) == PER_PHASE * len(phases)
    assert duplicates == [], "a message reached the provider twice"
    assert lost == [], "a send reported as done never reached the provider"
    assert failed_but_sent == [], "the caller was told a message failed, yet it was sent"
    assert unexplained == []
    # Once the faults are gone the system must be whole again: no endpoint left wedged by what it went through.
    after_calm = [o for o in outcomes if o.phase.startswith("calm") and o.kind != "sent"]
    assert after_calm == [], "a send failed in a calm phase"
    assert sum(o.kind == "sent" for o in outcomes) >= len(outcomes) // 2

    # Edge sends reach the origin's records once it is back (the sync task).
    edge_ids = [o.message_id for o in outcomes if o.kind == "sent" and o.endpoint == "edge" and o.message_id]
    assert edge_ids, "chaos should have made the edge send some messages"

    async def all_synced() -> bool | None:
        missing = [
            i
            for i in edge_ids
            if (await asyncio.to_thread(origin_api.ws_get, failover_ws, f"/v1/messages/{i}")).status_code != 200
        ]
        return True if not missing else None

    await apoll(all_synced, timeout_s=30, interval_s=0.5, what="edge sends to appear at the origin")
    listed = json_body(origin_api.ws_get(failover_ws, f"/v1/workspaces/{failover_ws}/messages", {"limit": "100"}))
    assert any(m["endpoint"] == "edge" for m in listed["data"])


def _print_summary(
    outcomes: list[Outcome], count: dict[str, int], elapsed: float, injected: int, durations: dict[str, float]
) -> None:
    print(f"\nchaos: {len(outcomes)} logical messages in {elapsed:.1f} s, {injected} proxy faults injected")
    print(f"{'phase':28} {'sent@origin':>11} {'sent@edge':>9} {'unknown':>7} {'failed':>6} {'dupes':>5} {'secs':>5}")
    for phase in dict.fromkeys(o.phase for o in outcomes):
        mine = [o for o in outcomes if o.phase == phase]
        kinds = Counter((o.kind, o.endpoint if o.kind == "sent" else None) for o in mine)
        dupes = sum(count[o.marker] > 1 for o in mine)
        failed = kinds[("failed", None)] + kinds[("rejected", None)]
        print(
            f"{phase:28} {kinds[('sent', 'origin')]:>11} {kinds[('sent', 'edge')]:>9} "
            f"{kinds[('unknown', None)]:>7} {failed:>6} {dupes:>5} {durations.get(phase, 0):>5.1f}"
        )
    reasons = Counter(o.reason.split(":")[0][:60] for o in outcomes if o.kind in {"failed", "rejected"})
    for reason, n in reasons.most_common(5):
        print(f"  failed x{n}: {reason}")


LOAD_MESSAGES = 600
LOAD_CONCURRENCY = 64


@pytest.mark.slow
async def test_600_sends_64_at_a_time_with_slow_answers_after_sending_go_out_at_most_once(
    stack: Stack, make_client: ClientFactory, sim: Simulator, failover_ws: str
) -> None:
    """The issue's load: 30 % of the origin's answers held 3 s after the origin sent (past the client's 2 s).

    Each such send fails over to the edge, which must find the origin's claim. Under this load the local edge host
    is the bottleneck, so some sends may end unknown or failed; none may reach the provider twice, and no outcome
    may be false (reported sent and never received, or reported failed and received)."""
    proxy = FaultProxy(stack.origin_url)
    await proxy.start()
    proxy.set(Fault.SLOW_AFTER, hold_s=3.0, rate=0.3, sends_only=True)
    client = make_client(workspace_id=failover_ws, SMSFAILOVER_ORIGIN_URL=proxy.url)
    semaphore = asyncio.Semaphore(LOAD_CONCURRENCY)

    async def one() -> Outcome:
        async with semaphore:
            return await _send_one(client, failover_ws, "load")

    started = time.monotonic()
    try:
        async with asyncio.timeout(420):
            outcomes = list(await asyncio.gather(*(one() for _ in range(LOAD_MESSAGES))))
    finally:
        await proxy.stop()
    elapsed = time.monotonic() - started

    listing = await asyncio.to_thread(sim.http.get, "/_sim/messages")
    received = Counter(str(m.get("body", "")) for m in listing.json()["messages"])
    count = {o.marker: received.get(o.marker, 0) for o in outcomes}
    _print_summary(outcomes, count, elapsed, proxy.state.injected, {"load": elapsed})
    reported = {"simulator duplicates (whole run)": listing.json()["duplicates"], "held answers": proxy.state.injected}
    unknown_at = Counter(o.endpoint for o in outcomes if o.kind == "unknown")
    print(f"  {reported}; unknown outcomes by the endpoint that may have sent: {dict(unknown_at)}")

    assert len(outcomes) == LOAD_MESSAGES
    assert [o for o in outcomes if count[o.marker] > 1] == [], "a message reached the provider twice"
    assert [o for o in outcomes if o.kind == "sent" and count[o.marker] != 1] == [], "reported sent, never received"
    failed_but_sent = [o for o in outcomes if o.kind in {"failed", "rejected"} and count[o.marker] != 0]
    assert failed_but_sent == [], "reported failed, yet the provider received it"
    assert proxy.state.injected >= 10  # the fault did hit (the breaker then sends much of the load to the edge)
    received_once = sum(count[o.marker] == 1 for o in outcomes)
    assert received_once >= 0.99 * LOAD_MESSAGES, f"only {received_once} of {LOAD_MESSAGES} reached the provider"
