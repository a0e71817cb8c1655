"""The origin's ledger batcher: concurrent operations share a request, an idle one goes at once, and a failed
request counts once in the failure detector however many claims rode on it."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.express_shim.edge_client import UNREACHABLE, EdgeClient, EdgeUnavailable
from smsfailover.express_shim.ledger.batcher import LedgerBatcher
from smsfailover.express_shim.ledger.detector import EdgeLedgerDetector


def op(i: int) -> dict[str, object]:
    return {"op": "release", "workspace_id": "ws", "key": f"k{i}", "message_id": f"msg_{i}", "now": 1.0}


class HeldEdge:
    """Answers each batch with one result per operation, holding every answer until `open` is set."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.open = asyncio.Event()
        self.on_the_wire = asyncio.Event()

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        ops = json.loads(request.content)["ops"]
        self.sizes.append(len(ops))
        self.on_the_wire.set()
        await self.open.wait()
        return httpx2.Response(200, json={"results": [{"record": None, "key": o["key"]} for o in ops]})


async def test_operations_that_arrive_while_the_wire_is_full_leave_together() -> None:
    edge = HeldEdge()
    client = EdgeClient("http://edge.test", lambda: "t", transport=httpx2.MockTransport(edge))
    batcher = LedgerBatcher(client)
    first = asyncio.ensure_future(batcher.submit(op(0)))
    await asyncio.wait_for(edge.on_the_wire.wait(), 5)
    assert edge.sizes == [1]  # alone, at once: nothing waits for a timer
    later = [asyncio.ensure_future(batcher.submit(op(i))) for i in range(1, 20)]
    edge.open.set()
    results = await asyncio.gather(first, *later)
    assert edge.sizes == [1, 19]  # everything that came while the wire was busy, in one request
    assert [r["key"] for r in results] == [f"k{i}" for i in range(20)]  # each caller gets its own answer
    await client.aclose()


async def test_callers_woken_together_share_one_batch() -> None:
    edge = HeldEdge()
    edge.open.set()
    client = EdgeClient("http://edge.test", lambda: "t", transport=httpx2.MockTransport(edge))
    batcher = LedgerBatcher(client)
    await asyncio.gather(*(batcher.submit(op(i)) for i in range(16)))  # one turn: no first one goes alone
    assert edge.sizes == [16]
    await client.aclose()


async def test_an_idle_origin_sends_each_operation_alone() -> None:
    edge = HeldEdge()
    edge.open.set()
    client = EdgeClient("http://edge.test", lambda: "t", transport=httpx2.MockTransport(edge))
    batcher = LedgerBatcher(client)
    for i in range(3):
        await batcher.submit(op(i))
    assert edge.sizes == [1, 1, 1]
    await client.aclose()


async def test_a_refused_batch_is_one_observation_for_the_detector() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    client = EdgeClient("http://edge.test", lambda: "t", transport=httpx2.MockTransport(refuse))
    batcher = LedgerBatcher(client, max_in_flight=1)
    detector = EdgeLedgerDetector(ManualClock())
    outcomes = await asyncio.gather(*(batcher.submit(op(i)) for i in range(10)), return_exceptions=True)
    assert all(isinstance(o, EdgeUnavailable) and o.kind == UNREACHABLE for o in outcomes)
    for failure in outcomes:
        assert isinstance(failure, EdgeUnavailable)
        detector.failed(failure)
    assert not detector.unreachable  # 10 claims, 1 refused request: 1 of the 3 failures it takes
    await client.aclose()


async def test_an_operation_the_edge_refused_alone_fails_alone() -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        ops = json.loads(request.content)["ops"]
        results = [
            {"status": 503, "error": {"code": "ledger_unavailable", "message": "down"}} if o["key"] == "k1" else {}
            for o in ops
        ]
        return httpx2.Response(200, json={"results": results})

    client = EdgeClient("http://edge.test", lambda: "t", transport=httpx2.MockTransport(answer))
    batcher = LedgerBatcher(client, max_in_flight=1)
    outcomes = await asyncio.gather(*(batcher.submit(op(i)) for i in range(3)), return_exceptions=True)
    assert outcomes[0] == {}
    assert outcomes[2] == {}
    assert isinstance(outcomes[1], EdgeUnavailable)
    assert "ledger_unavailable" in str(outcomes[1])
    with pytest.raises(EdgeUnavailable):
        await batcher.submit(op(1))
    await client.aclose()
