"""A few idempotency keys' lives across the real origin and the real edge, as a hypothesis state machine.

Everything is the production code, in one process and one event loop, with no network: the origin is
`build_services` over its SQLite file (storage/sqlite.py, migrated) answering through `build_message_api`; the edge
is `EdgeApp` over stdlib SQLite with its D1 migrations; the origin reaches the edge through an httpx2
MockTransport whose network the machine controls; both endpoints post to one fake SMS provider that counts the
messages it took, per key (each key has its own body). The clock is one ManualClock; nothing sleeps.

Rules: a client sends a key to the origin (a retry) or to the edge (its failover), at once or held inside the
provider call (a slow provider answer, left in flight while other rules run); the operator toggles failover; the
network between origin and edge goes up, slow (the answer is lost before or after the edge handled the request),
unreachable (refused), 5xx or 401; the provider takes, loses its reply, refuses or cannot be reached; time passes
(past the 30 s lease too); the origin's background rounds run (reconcile, sync, switch, outbox); the origin process
restarts (an in-flight origin send dies with it; the database stays).

Invariants (shared/DESIGN.md "Ledger authority", CONTRACT.md section 1 items 5 and 8):
- the provider takes a key at most once, unless a declared partition touched it: the origin sent it on its local
  ledger alone (its message says `ledger: "local"`) while the workspace's switch was not `off`, which the origin
  may only do while its detector holds the edge ledger unreachable;
- once the network is back and reconcile has run, every key the provider took twice is in the origin's
  double-send count (the `double_sends` table and the `smsfailover_origin_double_sends` metric), and no other;
- no answer is a 500 (the endpoints' and the edge service routes'); every answer is one the contract lists;
- no false outcome: a 201 is exactly one provider call by that request, any other answer none; a 200/201 whose
  status is queued/sent/delivered names a key the provider took; a key the provider took is never "not found" at
  the origin once synced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx2
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from smsfailover.core.auth import issue_token
from smsfailover.core.clock import ManualClock
from smsfailover.core.messages_api import ApiRequest, ApiResponse, MessageApi
from smsfailover.core.provider import ConnectFailed, HttpReply, ReplyLost
from smsfailover.core.sql import SqliteExecutor, schema_statements
from smsfailover.edge_worker.app import EdgeApp
from smsfailover.edge_worker.config import EdgeConfig
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.edge_client import EdgeClient, EdgeUnavailable
from smsfailover.express_shim.routes_messages import build_message_api
from smsfailover.express_shim.services import OriginServices, ServiceToken, build_services
from smsfailover.express_shim.storage.migrations import migrate
from smsfailover.express_shim.storage.sqlite import SqliteDatabase
from smsfailover.express_shim.workspace_settings import OFF, ON

pytestmark = pytest.mark.model

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
EDGE_MIGRATIONS = sorted((REPO_ROOT / "packages/edge_worker/migrations").glob("*.sql"))
SECRET = "model-test-secret-long-enough-for-hs256-0123456789"
EDGE_URL = "http://edge.test"
WS = "ws_model"
TO = "+16266635938"
KEYS = ("key-a", "key-b", "key-c")
BODY = {key: f"the message of {key}" for key in KEYS}
KEY_OF_BODY = {body: key for key, body in BODY.items()}
LEASE_S = 30.0
OK_STATUSES = frozenset({"queued", "sent", "delivered"})

# The network between the origin and the edge ("up" twice: it is the usual state).
NET_MODES = ("up", "up", "slow_before", "slow_after", "unreachable", "error", "auth")
PROVIDER_MODES = ("ok", "ok", "lost", "down", "reject")
ALLOWED = {
    "origin": {200, 201, 409, 422, 503},
    "edge": {200, 201, 403, 409, 422, 503},
}
ALLOWED_CODES = {
    403: {"failover_disabled"},
    409: {"idempotency_in_progress"},
    422: {"provider_rejected"},
    503: {"ledger_unavailable", "provider_unavailable"},
}


def origin_config() -> OriginConfig:
    return OriginConfig(
        jwt_secret=SECRET,
        env="test",
        edge_url=EDGE_URL,
        provider_url="http://provider.test",
        twilio_account_sid="AC1",
        twilio_auth_token="provider-token",
        from_number="+15005550006",
        lease_s=LEASE_S,
        rate_limit=1e6,
        background=False,
    )


def edge_config() -> EdgeConfig:
    values = {
        "SMSFAILOVER_JWT_SECRET": SECRET,
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "provider-token",
        "SMSFAILOVER_FROM": "+15005550006",
        "SMSFAILOVER_PROVIDER_URL": "http://provider.test",
        "SMSFAILOVER_RATE_LIMIT": "1000000",
        "SMSFAILOVER_LEASE_S": str(LEASE_S),
    }
    return EdgeConfig.from_env(values.get)


async def new_edge_db() -> SqliteExecutor:
    db = SqliteExecutor()
    for migration in EDGE_MIGRATIONS:
        for statement in schema_statements(re.sub(r"--[^\n]*", "", migration.read_text())):
            await db.execute(statement)
    return db


async def make_origin_template(path: Path) -> None:
    """A migrated origin database, copied for each example (migrate() then finds nothing left to apply)."""
    db = SqliteDatabase(str(path))
    try:
        await migrate(db)
    finally:
        await db.close()


def error_code(response: ApiResponse) -> str:
    error = response.body.get("error")
    return str(error.get("code")) if isinstance(error, dict) else ""


# -- the SMS provider -----------------------------------------------------------------------------------------------


@dataclass
class Gate:
    """Holds one provider call after the provider took the message: its answer is slow."""

    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Provider:
    mode: str = "ok"
    taken: Counter[str] = field(default_factory=Counter)  # key -> messages the provider took
    log: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, key) per message taken
    gates: dict[str, Gate] = field(default_factory=dict)  # endpoint -> the gate its next call waits at


class ProviderSeam:
    """core's HttpPoster for one endpoint, posting to the shared fake provider."""

    def __init__(self, provider: Provider, endpoint: str, machine: OneKeyLife) -> None:
        self._provider = provider
        self._endpoint = endpoint
        self._machine = machine

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        provider = self._provider
        key = KEY_OF_BODY[dict(fields)["Body"]]
        mode = provider.mode
        if mode == "down":
            raise ConnectFailed("connection refused")
        if mode == "reject":
            return HttpReply(400, json.dumps({"code": 21211, "message": "The 'To' number is not valid."}).encode())
        provider.taken[key] += 1
        provider.log.append((self._endpoint, key))
        await self._machine.provider_took(self._endpoint, key)
        gate = provider.gates.pop(self._endpoint, None)
        if gate is not None:
            gate.waiting.set()
            await gate.release.wait()
        if mode == "lost":
            raise ReplyLost("connection reset after the request was written")
        sid = f"SM{len(provider.log):032d}"
        return HttpReply(201, json.dumps({"sid": sid, "status": "queued", "num_segments": "1"}).encode())


@dataclass
class Held:
    """A send whose provider call is in flight (the provider took it; its answer has not come)."""

    key: str
    task: asyncio.Task[ApiResponse | None]
    gate: Gate
    switch_state: str


# -- the machine ----------------------------------------------------------------------------------------------------


class OneKeyLife(RuleBasedStateMachine):
    workdir: ClassVar[Path]
    template: ClassVar[Path]
    examples: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        OneKeyLife.examples += 1
        self.dir = self.workdir / f"example-{OneKeyLife.examples}"
        self.dir.mkdir()
        self.db_path = self.dir / "origin.db"
        shutil.copyfile(self.template, self.db_path)
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.provider = Provider()
        self.net = "up"
        self.partition_keys: set[str] = set()
        self.violations: list[str] = []
        self.held: dict[str, Held] = {}
        self.restarts = 0
        self.config = origin_config()
        self.origin_poster = ProviderSeam(self.provider, "origin", self)
        self.edge_db = self.run(new_edge_db())
        self.edge = EdgeApp(
            config=edge_config(),
            db=self.edge_db,
            poster=ProviderSeam(self.provider, "edge", self),
            clock=self.clock,
        )
        self.db: SqliteDatabase
        self.services: OriginServices
        self.api: MessageApi
        self.double_sends_at_open = 0
        self.run(self._open_origin())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    # -- the origin process ---------------------------------------------------------------------------------------

    async def _open_origin(self) -> None:
        self.db = SqliteDatabase(str(self.db_path))
        await migrate(self.db)
        edge = EdgeClient(
            EDGE_URL,
            ServiceToken(SECRET, self.clock),
            timeout_s=self.config.edge_timeout_s,
            transport=httpx2.MockTransport(self._edge_network),
        )
        self.services = build_services(self.config, self.db, clock=self.clock, poster=self.origin_poster, edge=edge)
        # The refused-connection retry pauses (0.1 s, 0.2 s) move the manual clock instead of sleeping.
        self.services.ledgers.parts = dataclasses.replace(self.services.ledgers.parts, sleep=self._sleep)
        self.api = build_message_api(self.services)
        self.double_sends_at_open = await self._double_sends_count()

    async def _close_origin(self) -> None:
        held = self.held.pop("origin", None)
        if held is not None:  # the process dies with the provider call in flight
            held.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held.task
        await self.services.aclose()
        await self.db.close()

    async def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def _double_sends_count(self) -> int:
        return await self.services.double_sends.count(WS)

    async def _double_sent_keys(self) -> set[str]:
        rows = await self.db.fetch("SELECT idempotency_key FROM double_sends WHERE workspace_id = ?", (WS,))
        return {str(r["idempotency_key"]) for r in rows}

    async def _switch_state(self) -> str:
        return await self.services.settings.switch_state(WS)

    # -- the network between the origin and the edge --------------------------------------------------------------

    async def _edge_network(self, request: httpx2.Request) -> httpx2.Response:
        mode = self.net
        if mode == "unreachable":
            raise httpx2.ConnectError("connection refused", request=request)
        if mode == "slow_before":
            raise httpx2.ReadTimeout("timed out before the edge saw the request", request=request)
        if mode == "error":
            return httpx2.Response(503, json={"error": {"code": "gateway", "message": "bad gateway"}})
        if mode == "auth":
            return httpx2.Response(401, json={"error": {"code": "unauthorized", "message": "wrong secret"}})
        answer = await self.edge.handle(
            ApiRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.url.params),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=request.content,
            )
        )
        path = request.url.path
        expected = {200, 404} if request.method == "GET" and path.startswith("/v1/ledger/") else {200}
        if answer.status not in expected:
            self.violations.append(f"the edge answered {request.method} {path} with {answer.status}: {answer.body}")
        if mode == "slow_after":
            raise httpx2.ReadTimeout("timed out after the edge handled the request", request=request)
        return httpx2.Response(answer.status, json=answer.body, headers=dict(answer.headers))

    # -- the provider's hook --------------------------------------------------------------------------------------

    async def provider_took(self, endpoint: str, key: str) -> None:
        """Called as the provider takes a message: an origin send on its local ledger alone while the switch is
        not off is the declared partition, and the origin may do that only in degraded mode."""
        if endpoint != "origin":
            return
        rows = await self.db.fetch(
            "SELECT ledger FROM messages WHERE workspace_id = ? AND idempotency_key = ? ORDER BY seq DESC LIMIT 1",
            (WS, key),
        )
        ledger = str(rows[0]["ledger"]) if rows else "?"
        state = await self._switch_state()
        if ledger == "local" and state != OFF:
            if not self.services.degraded:
                self.violations.append(f"{key}: sent on the local ledger with the switch {state}, not degraded")
            self.partition_keys.add(key)
        elif ledger not in {"local", "edge"}:
            self.violations.append(f"{key}: the origin's write-ahead row says ledger {ledger!r}")

    # -- requests -------------------------------------------------------------------------------------------------

    def _request(self, key: str) -> ApiRequest:
        token = issue_token(SECRET, workspace_id=WS, now=self.clock.time())
        body = json.dumps({"to": TO, "content": BODY[key], "workspace_id": WS}).encode()
        headers = {"authorization": f"Bearer {token}", "idempotency-key": key, "content-type": "application/json"}
        return ApiRequest("POST", "/v1/messages", {}, headers, body)

    async def _post(self, endpoint: str, key: str) -> ApiResponse | None:
        request = self._request(key)
        if endpoint == "origin":
            return await self.api.handle(request)
        return await self.edge.handle(request)

    def check_send(
        self, endpoint: str, key: str, response: ApiResponse | None, taken_by_it: int, switch_state: str
    ) -> None:
        assert response is not None, "the send route did not answer"
        status, body = response.status, response.body
        assert status != 500, f"{endpoint} answered 500: {body}"
        assert status in ALLOWED[endpoint], f"{endpoint} answered {status}: {body}"
        if status in ALLOWED_CODES:
            assert error_code(response) in ALLOWED_CODES[status], f"{endpoint} answered {status}: {body}"
        if status == 201:
            assert taken_by_it == 1, f"{endpoint} answered 201 after {taken_by_it} provider calls"
            assert body.get("endpoint") == endpoint
        else:
            assert taken_by_it == 0, f"{endpoint} answered {status} {body} yet the provider took the message"
        if status in (200, 201):
            assert body.get("idempotency_key") == key
            if body.get("status") in OK_STATUSES:
                assert self.provider.taken[key] >= 1, f"{endpoint} says {body.get('status')}: never sent"
            if (
                status == 201
                and endpoint == "origin"
                and body.get("ledger") == "local"
                and switch_state != OFF
                and key not in self.partition_keys
            ):
                raise AssertionError(f"{key}: a local-ledger send with the switch {switch_state} went unrecorded")

    def _send(self, endpoint: str, key: str) -> None:
        state = self.run(self._switch_state())
        before = self.provider.taken[key]
        response = self.run(self._post(endpoint, key))
        self.check_send(endpoint, key, response, self.provider.taken[key] - before, state)

    # -- rules ----------------------------------------------------------------------------------------------------

    @initialize(start_on=st.booleans())
    def start(self, start_on: bool) -> None:
        if start_on:
            self.run(self.services.set_failover(WS, True))
            self.run(self._settle(rounds=10))
            assert self.run(self._switch_state()) == ON

    @rule(key=st.sampled_from(KEYS))
    def send_at_origin(self, key: str) -> None:
        self._send("origin", key)

    @rule(key=st.sampled_from(KEYS))
    def send_at_edge(self, key: str) -> None:
        self._send("edge", key)

    @rule(endpoint=st.sampled_from(("origin", "edge")), key=st.sampled_from(KEYS))
    def send_and_hold_the_provider(self, endpoint: str, key: str) -> None:
        """The send's provider call takes the message and then does not answer (yet)."""
        if endpoint in self.held:
            return
        state = self.run(self._switch_state())
        before = self.provider.taken[key]
        gate = Gate()
        self.provider.gates[endpoint] = gate
        task = self.loop.create_task(self._post(endpoint, key))
        self.run(self._until_held_or_done(task, gate))
        if task.done():  # it never got as far as a provider that took it
            self.provider.gates.pop(endpoint, None)
            self.check_send(endpoint, key, task.result(), self.provider.taken[key] - before, state)
        else:
            self.held[endpoint] = Held(key, task, gate, state)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def provider_answers(self, data: st.DataObject) -> None:
        endpoint = data.draw(st.sampled_from(sorted(self.held)))
        self._finish_held(endpoint)

    @rule(enabled=st.booleans())
    def toggle_failover(self, enabled: bool) -> None:
        self.run(self.services.set_failover(WS, enabled))

    @rule(mode=st.sampled_from(NET_MODES))
    def set_network(self, mode: str) -> None:
        self.net = mode

    @rule(mode=st.sampled_from(PROVIDER_MODES))
    def set_provider(self, mode: str) -> None:
        self.provider.mode = mode

    @rule(seconds=st.sampled_from((0.2, 1.0, 2.5, 10.0, LEASE_S + 1)))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(task=st.sampled_from(("reconcile", "sync", "switch", "outbox")))
    def background_round(self, task: str) -> None:
        self.run(self._round(task))

    @rule()
    def background_settles(self) -> None:
        """The background tasks run, time passing, until the switch rests (or a bounded number of rounds)."""
        self.run(self._settle(rounds=12))

    @rule()
    def restart_origin(self) -> None:
        self.restarts += 1
        self.run(self._close_origin())
        self.run(self._open_origin())

    @rule(endpoint=st.sampled_from(("origin", "edge")), key=st.sampled_from(KEYS))
    def look_up(self, endpoint: str, key: str) -> None:
        response = self.run(self._look_up(endpoint, key))
        assert response is not None
        assert response.status in {200, 404, 409}, f"{endpoint} lookup answered {response.status}: {response.body}"
        if response.status == 200 and response.body.get("status") in OK_STATUSES:
            assert self.provider.taken[key] >= 1, f"{endpoint} lookup says {response.body.get('status')}: never sent"

    # -- invariants -----------------------------------------------------------------------------------------------

    @invariant()
    def nothing_went_wrong_out_of_sight(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def at_most_once_outside_a_declared_partition(self) -> None:
        for key, taken in self.provider.taken.items():
            assert taken <= 1 or key in self.partition_keys, (
                f"{key} was sent {taken} times ({self.provider.log}) and no declared partition touched it"
            )

    # -- helpers --------------------------------------------------------------------------------------------------

    async def _until_held_or_done(self, task: asyncio.Task[ApiResponse | None], gate: Gate) -> None:
        waiter = asyncio.ensure_future(gate.waiting.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

    def _finish_held(self, endpoint: str) -> None:
        held = self.held.pop(endpoint)
        held.gate.release.set()
        response = self.run(held.task)
        self.check_send(endpoint, held.key, response, 1, held.switch_state)

    async def _look_up(self, endpoint: str, key: str) -> ApiResponse | None:
        token = issue_token(SECRET, workspace_id=WS, now=self.clock.time())
        request = ApiRequest("GET", "/v1/messages", {"idempotency_key": key}, {"authorization": f"Bearer {token}"})
        return await (self.api.handle(request) if endpoint == "origin" else self.edge.handle(request))

    async def _round(self, task: str) -> None:
        services = self.services
        if task == "reconcile":
            await services.reconcile()
        elif task == "sync":
            with contextlib.suppress(EdgeUnavailable):  # the periodic task logs it and tries again
                await services.sync_edge_messages()
        elif task == "switch":
            await services.advance_switches()
        else:
            await services.push_outbox()

    async def _settle(self, rounds: int) -> None:
        for _ in range(rounds):
            for task in ("outbox", "switch", "reconcile", "sync"):
                await self._round(task)
            if await self._switch_state() in (ON, OFF) and not await self.services.outbox.pending_count():
                return
            self.clock.advance(3.0)

    # -- the end: the network comes back, reconcile runs, and the counts must add up --------------------------------

    def teardown(self) -> None:
        failed = sys.exc_info()[1] is not None
        try:
            if not failed:
                self._final_checks()
        finally:
            self._close_everything()

    def _final_checks(self) -> None:
        self.net = "up"
        self.provider.mode = "ok"
        for endpoint in sorted(self.held):
            self._finish_held(endpoint)
        for _ in range(3):
            self.clock.advance(LEASE_S + 1)  # every open claim is final or unknown by now
            for task in ("reconcile", "sync", "switch", "outbox", "reconcile"):
                self.run(self._round(task))
        self.nothing_went_wrong_out_of_sight()
        self.at_most_once_outside_a_declared_partition()
        doubled = {key for key, taken in self.provider.taken.items() if taken > 1}
        counted = self.run(self._double_sent_keys())
        assert doubled <= counted, (
            f"sent twice but not counted by reconcile: {sorted(doubled - counted)} ({self.provider.log})"
        )
        assert counted <= doubled, f"counted as sent twice but sent once: {sorted(counted - doubled)}"
        metric = self.services.metrics.registry.get_sample_value("smsfailover_origin_double_sends_total") or 0.0
        found_here = self.run(self._double_sends_count()) - self.double_sends_at_open
        assert metric == found_here, f"the metric says {metric}, this process stored {found_here}"
        for key, taken in self.provider.taken.items():
            if taken:
                response = self.run(self._look_up("origin", key))
                assert response is not None
                assert response.status != 404, f"{key} was sent ({self.provider.log}) but the origin does not know it"

    def _close_everything(self) -> None:
        with contextlib.suppress(Exception):
            for held in self.held.values():
                held.gate.release.set()
            self.run(self._close_origin())
            for held in self.held.values():
                with contextlib.suppress(BaseException):
                    self.run(held.task)
        self.edge_db.close()
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)


MODEL_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_one_key_life(tmp_path: Path) -> None:
    OneKeyLife.workdir = tmp_path
    OneKeyLife.template = tmp_path / "template.db"
    asyncio.run(make_origin_template(OneKeyLife.template))
    run_state_machine_as_test(OneKeyLife, settings=MODEL_SETTINGS)
