"""A few idempotency keys' lives across the real origin and the real edge, as a hypothesis state machine.

Everything is the production code, in one process and one event loop, with no network: the origin is
`build_services` over its SQLite file (storage/sqlite.py, migrated) answering through `build_message_api`; the edge
is `EdgeApp` over stdlib SQLite with its D1 migrations; the origin reaches the edge through an httpx2
MockTransport whose network the machine controls; both endpoints post to one fake SMS provider that counts the
messages it took, per key (each key has its own body). One ManualClock for everything; nothing sleeps.

Rules: a client sends a key to the origin (a retry) or to the edge (its failover), either answered at once or left
in flight inside the provider call (before the provider took it, or after: its answer is slow) while other rules
run; the operator toggles failover; the network from origin to edge goes up, slow (the answer is lost before or
after the edge handled the request), unreachable (refused), 5xx or 401; the provider takes, loses its reply,
refuses or cannot be reached; time passes (past the 30 s lease too); one of the origin's background rounds runs
(reconcile, sync, switch, outbox), or all of them until the switch rests; the origin process restarts (a send in
flight there dies with it; the database stays; the detector and caches do not); a send dies at one of its own
database writes, on either endpoint (every write site in turn, before or after the write commits: the origin
restarts, the edge's request is simply gone); the network blips (connects time out).

Invariants (shared/DESIGN.md "Ledger authority", CONTRACT.md section 1 items 5 and 8), after every step:
- the provider takes a key at most once, unless a declared partition touched it: the origin sent it on its local
  ledger alone (its message says `ledger: "local"`) while the workspace's switch was not `off`, which it may do only
  while its detector holds the edge ledger unreachable;
- no answer is a 500 (neither endpoint's, nor an edge service route's), and every answer is one the contract lists;
- no false outcome: a 201 means that request's provider call took the message, any other answer that it made
  none; a queued/sent/delivered answer names a key the provider took; a `failed` answer names a key the provider
  never took (truth after a crash); outside a declared partition a key is answered as sent under one message id
  only.
And at the end, once the network is back and reconcile and sync have run:
- every key the provider took twice is in the origin's double-send count (the `double_sends` table; this process's
  `smsfailover_origin_double_sends` metric counts what it found), and nothing else is, except a key one of whose
  attempts died in flight or answered after its lease (its claim expired: outcome unknown, so a possible double
  send, counted);
- a key the provider took is known at the origin (never 404), and a key nothing was sent for can still be sent
  (unless an attempt of it died in flight or answered after its lease: then it reads unknown, by design).

The plain tests after the machine are what it found, replayed step by step. A longer exploration than the default
run: `MODEL_EXAMPLES=5000 MODEL_STEPS=40 pytest tests/model -s` (about 10 minutes; -s prints what the examples met).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
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
SERVICE_KEY = "model-test-service-key-long-enough-for-hs256-0123"
EDGE_URL = "http://edge.test"
WS = "ws_model"
TO = "+16266635938"
KEYS = ("key-a", "key-b", "key-c")
BODY = {key: f"the message of {key}" for key in KEYS}
KEY_OF_BODY = {body: key for key, body in BODY.items()}
LEASE_S = 30.0
OK_STATUSES = frozenset({"queued", "sent", "delivered"})
ENDPOINTS = ("origin", "edge")

# The network from the origin to the edge ("up" twice: the usual state; "unreachable" twice: the partition), and the
# provider.
NET_MODES = ("up", "up", "slow_before", "slow_after", "unreachable", "unreachable", "blip", "error", "auth")
WRITE_SITES = 6  # a send's database writes, counted from its first: each may be where its process dies
PROVIDER_MODES = ("ok", "ok", "lost", "down", "reject")
ALLOWED = {"origin": {200, 201, 409, 422, 503}, "edge": {200, 201, 403, 409, 422, 503}}
ALLOWED_CODES = {
    403: {"failover_disabled"},
    409: {"idempotency_in_progress"},
    422: {"provider_rejected"},
    503: {"ledger_unavailable", "provider_unavailable"},
}


def origin_config() -> OriginConfig:
    return OriginConfig(
        jwt_secret=SECRET,
        service_key=SERVICE_KEY,
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
        "SMSFAILOVER_SERVICE_KEY": SERVICE_KEY,
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


# -- one send attempt, and the SMS provider -------------------------------------------------------------------------


@dataclass
class Attempt:
    """One client request, as the provider's seam sees it (a context variable of the task that runs it)."""

    endpoint: str
    key: str
    switch_state: str  # the workspace's switch as the request began (its claim is made at once)
    started_at: float
    took: bool = False  # the provider took this request's message


ATTEMPT: ContextVar[Attempt | None] = ContextVar("attempt", default=None)


@dataclass
class Gate:
    """Holds one provider call: before the provider took the message (`before`), or after (its answer is slow)."""

    before: bool
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
        attempt = ATTEMPT.get()
        if attempt is None or attempt.key != KEY_OF_BODY[dict(fields)["Body"]]:
            self._machine.violations.append(f"a provider call outside a known attempt: {attempt}")
            raise ConnectFailed("not a model attempt")
        gate = provider.gates.pop(self._endpoint, None)
        if gate is not None and gate.before:
            await self._hold(gate)
        mode = provider.mode
        if mode == "down":
            raise ConnectFailed("connection refused")
        if mode == "reject":
            return HttpReply(400, json.dumps({"code": 21211, "message": "The 'To' number is not valid."}).encode())
        provider.taken[attempt.key] += 1
        provider.log.append((self._endpoint, attempt.key))
        attempt.took = True
        await self._machine.provider_took(attempt, right_after_the_claim=gate is None or not gate.before)
        if gate is not None and not gate.before:
            await self._hold(gate)
        if mode == "lost":
            raise ReplyLost("connection reset after the request was written")
        sid = f"SM{len(provider.log):032d}"
        return HttpReply(201, json.dumps({"sid": sid, "status": "queued", "num_segments": "1"}).encode())

    @staticmethod
    async def _hold(gate: Gate) -> None:
        gate.waiting.set()
        await gate.release.wait()


@dataclass
class Held:
    """A send whose provider call is in flight."""

    attempt: Attempt
    task: asyncio.Task[ApiResponse | None]
    gate: Gate


class Dying:
    """A database (the origin's, or the edge's D1) whose armed write never returns: the process (or the edge's
    request) dies there, before the write or just after it committed. Reads and unarmed writes pass through."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._armed: tuple[int, bool] | None = None  # (write number from arming, after the commit)
        self._writes = 0
        self.died = asyncio.Event()

    def arm(self, site: int, after: bool) -> None:
        self._armed, self._writes, self.died = (site, after), 0, asyncio.Event()

    def disarm(self) -> None:
        self._armed = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        return await self._write(sql, lambda: self._db.fetch(sql, params))

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return await self._write(sql, lambda: self._db.execute(sql, params))

    async def transaction(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[int]:
        return await self._write("UPDATE", lambda: self._db.transaction(statements))

    async def batch(self, statements: Sequence[tuple[str, Sequence[object]]]) -> list[list[dict[str, object]]]:
        writes = any(not sql.lstrip().upper().startswith("SELECT") for sql, _ in statements)
        return await self._write("UPDATE" if writes else "SELECT", lambda: self._db.batch(statements))

    async def _write(self, sql: str, call: Callable[[], Awaitable[T]]) -> T:
        if self._armed is None or sql.lstrip().upper().startswith("SELECT"):
            return await call()
        self._writes += 1
        site, after = self._armed
        if self._writes != site:
            return await call()
        self._armed = None
        if after:
            await call()
        self.died.set()
        await asyncio.Event().wait()  # never: the process is gone
        raise AssertionError("unreachable")


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
        self.partition_keys: set[str] = set()  # keys a declared partition touched
        self.died_in_flight: set[str] = set()  # keys with an origin attempt that died with its process
        self.outlived_lease: set[str] = set()  # keys with an attempt that answered after its claim's lease ran out
        self.unknowable: Counter[str] = Counter()  # per key, attempts whose outcome no ledger can know (either kind)
        self.sent_ids: dict[str, set[str]] = {key: set() for key in KEYS}  # ids answered as sent, per key
        self.violations: list[str] = []  # what went wrong where an assertion would be swallowed
        self.held: dict[str, Held] = {}
        self.config = origin_config()
        self.origin_poster = ProviderSeam(self.provider, "origin", self)
        self.edge_db = self.run(new_edge_db())
        self.edge_dying = Dying(self.edge_db)
        self.edge = EdgeApp(
            config=edge_config(),
            db=self.edge_dying,
            poster=ProviderSeam(self.provider, "edge", self),
            clock=self.clock,
        )
        self.db: SqliteDatabase
        self.services: OriginServices
        self.api: MessageApi
        self.double_sends_at_open = 0
        self.run(self._open_origin())

    def run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(step)

    # -- the origin process ---------------------------------------------------------------------------------------

    async def _open_origin(self) -> None:
        self.raw_db = SqliteDatabase(str(self.db_path))
        self.origin_dying = Dying(self.raw_db)
        self.db = self.origin_dying  # type: ignore[assignment]
        await migrate(self.db)
        edge = EdgeClient(
            EDGE_URL,
            ServiceToken(SERVICE_KEY, self.clock),
            timeout_s=self.config.edge_timeout_s,
            transport=httpx2.MockTransport(self._edge_network),
        )
        self.services = build_services(self.config, self.db, clock=self.clock, poster=self.origin_poster, edge=edge)
        # The refused-connection retry pauses (0.1 s, 0.2 s) move the manual clock instead of sleeping.
        self.services.ledgers.parts = dataclasses.replace(self.services.ledgers.parts, sleep=self._sleep)
        self.api = build_message_api(self.services)
        self.double_sends_at_open = await self.services.double_sends.count(WS)

    async def _close_origin(self) -> None:
        held = self.held.pop("origin", None)
        if held is not None:  # the process dies with the send in flight
            self.died_in_flight.add(held.attempt.key)
            self.unknowable[held.attempt.key] += 1
            held.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held.task
        await self.services.aclose()
        await self.db.close()

    async def _sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def _switch_state(self) -> str:
        return await self.services.settings.switch_state(WS)

    # -- the network from the origin to the edge ------------------------------------------------------------------

    async def _edge_network(self, request: httpx2.Request) -> httpx2.Response:
        mode = self.net
        if mode == "unreachable":
            raise httpx2.ConnectError("connection refused", request=request)
        if mode == "blip":
            raise httpx2.ConnectTimeout("a lost SYN: the connect timed out", request=request)
        if mode == "slow_before":
            raise httpx2.ReadTimeout("timed out before the edge saw the request", request=request)
        if mode == "error":
            return httpx2.Response(503, json={"error": {"code": "bad_gateway", "message": "no upstream"}})
        if mode == "auth":
            return httpx2.Response(401, json={"error": {"code": "unauthorized", "message": "bad token"}})
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

    async def provider_took(self, attempt: Attempt, *, right_after_the_claim: bool) -> None:
        """The provider took an attempt's message. An origin send on its local ledger alone while the switch was
        not off is the declared partition, which the origin may enter only in degraded mode (rule 5)."""
        if attempt.endpoint != "origin":
            return
        rows = await self.db.fetch(  # this attempt's write-ahead row: the origin's newest of the key still open
            "SELECT ledger FROM messages WHERE workspace_id = ? AND idempotency_key = ? AND endpoint = 'origin' "
            "AND status = 'unknown' AND error IS NULL ORDER BY seq DESC LIMIT 1",
            (WS, attempt.key),
        )
        ledger = str(rows[0]["ledger"]) if rows else "?"
        if ledger not in {"local", "edge"}:
            self.violations.append(f"{attempt.key}: the origin's write-ahead row says ledger {ledger!r}")
        if ledger == "local" and attempt.switch_state != OFF:
            self.partition_keys.add(attempt.key)
            if right_after_the_claim and not self.services.degraded:
                self.violations.append(f"{attempt.key}: sent on the local ledger alone, switch {attempt.switch_state}")

    # -- requests -------------------------------------------------------------------------------------------------

    def _request(self, key: str) -> ApiRequest:
        token = issue_token(SECRET, workspace_id=WS, now=self.clock.time())
        body = json.dumps({"to": TO, "content": BODY[key], "workspace_id": WS}).encode()
        headers = {"authorization": f"Bearer {token}", "idempotency-key": key, "content-type": "application/json"}
        return ApiRequest("POST", "/v1/messages", {}, headers, body)

    async def _post(self, attempt: Attempt) -> ApiResponse | None:
        ATTEMPT.set(attempt)  # this task's own context
        request = self._request(attempt.key)
        if attempt.endpoint == "origin":
            return await self.api.handle(request)
        return await self.edge.handle(request)

    async def _attempt(self, endpoint: str, key: str) -> Attempt:
        return Attempt(endpoint, key, await self._switch_state(), self.clock.time())

    def check_send(self, attempt: Attempt, response: ApiResponse | None) -> None:
        endpoint, key = attempt.endpoint, attempt.key
        assert response is not None, "the send route did not answer"
        status, body = response.status, response.body
        STATS[f"{endpoint} {status} {error_code(response) or body.get('status')} ledger={body.get('ledger')}"] += 1
        assert status != 500, f"{endpoint} answered 500: {body}"
        assert status in ALLOWED[endpoint], f"{endpoint} answered {status}: {body}"
        if status in ALLOWED_CODES:
            assert error_code(response) in ALLOWED_CODES[status], f"{endpoint} answered {status}: {body}"
        if status == 201:
            assert attempt.took, f"{endpoint} answered 201 {body.get('status')} but its provider call took nothing"
            assert body.get("endpoint") == endpoint
        else:
            assert not attempt.took, f"{endpoint} answered {status} {body} yet the provider took the message"
        if status in (200, 201):
            self._answered(key, body)
        if status == 201 and endpoint == "origin" and body.get("ledger") == "local" and attempt.switch_state != OFF:
            assert key in self.partition_keys, f"{key}: a local-ledger send with the switch on went unrecorded"

    def _answered(self, key: str, body: dict[str, object]) -> None:
        assert body.get("idempotency_key") == key
        if body.get("status") in OK_STATUSES:
            assert self.provider.taken[key] >= 1, f"{key} answered {body.get('status')} but never sent"
            self.sent_ids[key].add(str(body.get("id")))
        if body.get("status") == "failed" and key not in self.partition_keys:
            assert self.provider.taken[key] == 0, f"{key} answered failed ({body.get('error')}) but the provider has it"

    def _send(self, endpoint: str, key: str) -> None:
        attempt = self.run(self._attempt(endpoint, key))
        self.check_send(attempt, self.run(self._post(attempt)))

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

    @rule(endpoint=st.sampled_from(ENDPOINTS), key=st.sampled_from(KEYS), before=st.booleans())
    def send_with_the_provider_in_flight(self, endpoint: str, key: str, before: bool) -> None:
        """The send's provider call does not answer (yet): before the provider took the message, or after."""
        if endpoint in self.held:
            return
        attempt = self.run(self._attempt(endpoint, key))
        gate = Gate(before)
        self.provider.gates[endpoint] = gate
        task = self.loop.create_task(self._post(attempt))
        self.run(self._until_held_or_done(task, gate))
        if task.done():  # answered without reaching the provider
            self.provider.gates.pop(endpoint, None)
            self.check_send(attempt, task.result())
        else:
            self.held[endpoint] = Held(attempt, task, gate)

    @precondition(lambda self: bool(self.held))
    @rule(endpoint=st.sampled_from(ENDPOINTS))
    def provider_answers(self, endpoint: str) -> None:
        if endpoint in self.held:
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
        """Every background task, time passing, until the switch rests (or a bounded number of rounds)."""
        self.run(self._settle(rounds=12))

    @rule()
    def restart_origin(self) -> None:
        self.run(self._close_origin())
        self.run(self._open_origin())

    @rule(
        endpoint=st.sampled_from(ENDPOINTS),
        key=st.sampled_from(KEYS),
        site=st.integers(1, WRITE_SITES),
        after=st.booleans(),
    )
    def dies_at_a_write(self, endpoint: str, key: str, site: int, after: bool) -> None:
        """A send at `endpoint` dies at its `site`-th database write (before it, or once it committed): the origin
        process restarts; the edge's request is gone (its isolate died; D1 keeps what was committed)."""
        if endpoint in self.held:
            return
        dying = self.origin_dying if endpoint == "origin" else self.edge_dying
        attempt = self.run(self._attempt(endpoint, key))
        dying.arm(site, after)
        task = self.loop.create_task(self._post(attempt))
        self.run(self._until_died_or_done(task, dying.died))
        dying.disarm()
        if task.done():  # fewer writes than `site`: it answered
            self.check_send(attempt, task.result())
            return
        STATS[f"died at {endpoint} write {site} {'after' if after else 'before'} the commit"] += 1
        self.died_in_flight.add(key)
        self.unknowable[key] += 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.run(task)
        if endpoint == "origin":
            self.run(self._close_origin())
            self.run(self._open_origin())

    @rule(endpoint=st.sampled_from(ENDPOINTS), key=st.sampled_from(KEYS))
    def look_up(self, endpoint: str, key: str) -> None:
        response = self.run(self._look_up(endpoint, key))
        assert response is not None
        assert response.status in {200, 404, 409}, f"{endpoint} lookup answered {response.status}: {response.body}"
        if response.status == 200:
            self._answered(key, response.body)

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

    @invariant()
    def one_sent_message_per_key_outside_a_declared_partition(self) -> None:
        for key, ids in self.sent_ids.items():
            assert len(ids) <= 1 or key in self.partition_keys, f"{key} was answered as sent as {sorted(ids)}"

    # -- helpers --------------------------------------------------------------------------------------------------

    async def _until_died_or_done(self, task: asyncio.Task[ApiResponse | None], died: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(died.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

    async def _until_held_or_done(self, task: asyncio.Task[ApiResponse | None], gate: Gate) -> None:
        waiter = asyncio.ensure_future(gate.waiting.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

    def _finish_held(self, endpoint: str) -> None:
        held = self.held.pop(endpoint)
        if self.clock.time() >= held.attempt.started_at + LEASE_S:
            self.outlived_lease.add(held.attempt.key)  # too late to free the key: it reads unknown (by design)
            self.unknowable[held.attempt.key] += 1
        held.gate.release.set()
        self.check_send(held.attempt, self.run(held.task))

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
        self.one_sent_message_per_key_outside_a_declared_partition()
        for key in KEYS:  # what each endpoint now says of each key must not contradict the provider
            for endpoint in ENDPOINTS:
                self.look_up(endpoint, key)
        log = self.provider.log
        doubled = {key for key, taken in self.provider.taken.items() if taken > 1}
        STATS[f"final: partitions={len(self.partition_keys)} doubled={len(doubled)}"] += 1
        counted = self.run(self._double_sent_keys())
        assert doubled <= counted, f"sent twice but not counted by reconcile: {sorted(doubled - counted)} ({log})"
        # An attempt that died in flight, or answered after its lease (too late to release its claim), is an expired
        # claim in the ledger: outcome unknown, as the endpoints answer for it. Beside another send it is counted as
        # a possible double send, whether or not its own provider call took the message.
        # Two such attempts of one key (say one at each endpoint, both past their call-began mark) are each a possible
        # send: reconcile counts the pair, though the provider may have taken neither.
        unknowable = self.died_in_flight | self.outlived_lease
        possible = {key for key in unknowable if self.provider.taken[key] or self.unknowable[key] >= 2}
        assert counted <= doubled | possible, f"counted as sent twice but sent once: {sorted(counted - doubled)}"
        metric = self.services.metrics.registry.get_sample_value("smsfailover_origin_double_sends_total") or 0.0
        found_here = self.run(self.services.double_sends.count(WS)) - self.double_sends_at_open
        assert metric == found_here, f"the metric says {metric}, this process stored {found_here}"
        for key in KEYS:
            if self.provider.taken[key]:
                response = self.run(self._look_up("origin", key))
                assert response is not None
                assert response.status != 404, f"{key} was sent ({log}) but the origin does not know it"
            elif key not in self.died_in_flight | self.outlived_lease:
                attempt = self.run(self._attempt("origin", key))
                response = self.run(self._post(attempt))
                self.check_send(attempt, response)
                assert response is not None
                # Sendable again, or an honest unknown: a claim whose lease ran out before its release reached the
                # edge stays unknown (a caller may have been told so); issue 15's "not sent" mark resolves those.
                stuck_unknown = response.status == 200 and response.body.get("status") == "unknown"
                # a claim whose call never began and whose lease ran out is failed / not_sent: final for the key
                error = response.body.get("error")
                not_sent = response.status == 200 and isinstance(error, dict) and error.get("code") == "not_sent"
                outcome = "reads unknown" if stuck_unknown else "failed, not sent" if not_sent else "sent now"
                STATS[f"final: never sent, {outcome}"] += 1
                assert response.status == 201 or stuck_unknown or not_sent, (
                    f"{key} was never sent and cannot be now: {response.body}"
                )

    async def _double_sent_keys(self) -> set[str]:
        rows = await self.db.fetch("SELECT idempotency_key FROM double_sends WHERE workspace_id = ?", (WS,))
        return {str(r["idempotency_key"]) for r in rows}

    def _close_everything(self) -> None:
        for held in self.held.values():
            held.gate.release.set()
        with contextlib.suppress(Exception):
            self.run(self._close_origin())
        for held in self.held.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
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


STATS: Counter[str] = Counter()  # what the examples met (printed with -s)
MODEL_SETTINGS = settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "300")),  # MODEL_EXAMPLES=5000 for a long exploration
    stateful_step_count=int(os.environ.get("MODEL_STEPS", "30")),
    deadline=None,
    database=None,
    # The same examples every run (make test and CI reproduce each other); MODEL_RANDOM=1 explores new ones.
    derandomize=os.environ.get("MODEL_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def prepare(tmp_path: Path) -> None:
    OneKeyLife.workdir = tmp_path
    OneKeyLife.template = tmp_path / "template.db"
    asyncio.run(make_origin_template(OneKeyLife.template))


def fresh_machine(tmp_path: Path) -> OneKeyLife:
    prepare(tmp_path)
    return OneKeyLife()


def test_one_key_life(tmp_path: Path) -> None:
    prepare(tmp_path)
    run_state_machine_as_test(OneKeyLife, settings=MODEL_SETTINGS)
    for name, n in sorted(STATS.items()):
        print(f"{n:6d}  {name}")


# -- deterministic reproductions of what the model found ------------------------------------------------------------


def test_found_a_degraded_send_cut_short_by_a_crash_then_sent_by_the_edge_is_counted(tmp_path: Path) -> None:
    """The origin, cut off from the edge (degraded), sends key-a on its local ledger; the provider takes it and the
    origin process dies before the answer. The client fails over and the edge, which never heard of key-a, sends it
    too. Once the network is back, reconcile pushes the origin's record (an expired claim: outcome unknown) and
    the edge holds another attempt's completed send: a double send (DESIGN.md rule 6), which must be counted."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.set_network(mode="unreachable")
    state.time_passes(seconds=10.0)  # past the failover budget (7 s) without a ledger round trip
    state.background_round(task="reconcile")  # the liveness round: degraded (rule 5)
    state.send_with_the_provider_in_flight(endpoint="origin", key="key-a", before=False)
    state.restart_origin()
    state.send_at_edge(key="key-a")
    assert state.provider.taken["key-a"] == 2
    state.teardown()  # network up, reconcile: the double send must be counted


def test_found_a_key_in_flight_at_the_origin_when_failover_is_enabled_is_not_sent_again_by_the_edge(
    tmp_path: Path,
) -> None:
    """Failover off: the origin sends key-a on its own ledger and the provider's answer is slow (the claim is in
    flight). Failover is turned on: the switch seeds the edge ledger and tells the edge `enabled`. The client fails
    over to the edge with key-a: the edge must not send it (DESIGN.md rule 4: the edge ledger is seeded with every
    key whose outcome is not final before the edge is told enabled)."""
    state = fresh_machine(tmp_path)
    state.start(start_on=False)
    state.send_with_the_provider_in_flight(endpoint="origin", key="key-a", before=False)
    state.toggle_failover(enabled=True)
    state.background_settles()
    assert state.run(state._switch_state()) == ON
    state.send_at_edge(key="key-a")
    state.at_most_once_outside_a_declared_partition()
    state.teardown()


def test_a_crash_between_the_origin_and_the_edge_claim_never_makes_the_origin_answer_failed(tmp_path: Path) -> None:
    """Truth after a crash: the origin commits its own claim of key-a and dies before its edge claim; the client fails
    over and the edge sends key-a. After the lease the restarted origin must not judge its own claim alone (no
    call-began mark: "failed, not sent"): it asks the edge, whose record is the answer."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.dies_at_a_write(endpoint="origin", key="key-a", site=1, after=True)
    state.send_at_edge(key="key-a")
    assert state.provider.taken["key-a"] == 1
    state.time_passes(seconds=LEASE_S + 1)
    state.look_up(endpoint="origin", key="key-a")  # the invariant: a `failed` answer for a key the provider took
    state.background_round(task="sync")
    state.look_up(endpoint="origin", key="key-a")
    state.teardown()


def test_a_seeded_claim_the_origin_then_releases_is_freed_at_the_edge(tmp_path: Path) -> None:
    """The seed puts an origin claim in flight into the edge ledger as a claim (the test above); if that send then
    fails at the provider (nothing sent, the key released), reconcile frees the claim at the edge too, so the key
    can be sent later instead of reading unknown for ever."""
    state = fresh_machine(tmp_path)
    state.start(start_on=False)
    state.send_with_the_provider_in_flight(endpoint="origin", key="key-a", before=True)
    state.toggle_failover(enabled=True)
    state.background_settles()
    state.set_provider(mode="down")
    state.provider_answers(endpoint="origin")  # 503 provider_unavailable: nothing was sent
    state.time_passes(seconds=LEASE_S + 1)
    state.background_round(task="reconcile")
    state.teardown()  # the final checks send key-a once more: it must go out (201)


def test_found_two_attempts_that_died_after_their_marks_are_a_possible_double_send(tmp_path: Path) -> None:
    """Found by a random run: with the provider down and the origin degraded, an origin send dies before settling
    (its claim marked: the call began) and so does an edge send of the same key. Neither reached the provider, but no
    ledger can know that: reconcile counts a possible double send, which the final checks must allow."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.set_network(mode="slow_before")
    state.set_provider(mode="down")
    state.time_passes(seconds=10.0)
    state.background_settles()
    state.dies_at_a_write(endpoint="origin", key="key-a", site=5, after=False)
    state.dies_at_a_write(endpoint="edge", key="key-a", site=3, after=False)
    state.teardown()


def test_found_reconcile_does_not_revive_a_claim_the_edge_released(tmp_path: Path) -> None:
    """Failover on: the edge claims key-a for a client and its provider call is slow to start. The operator turns
    failover off and on again; the sync copies the edge's in-flight send into the origin's ledger (a claim) and the
    enable's seed queues it, as a key in flight, to be pushed to the edge once final. The provider cannot be
    reached: the edge releases key-a (nothing sent). The lease runs out, and reconcile runs before the next sync:
    it pushes the origin's stale copy (the same attempt, an expired claim), which must not turn the edge's released
    row back into a claim (the key would then read unknown for ever at both endpoints, though never sent)."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.send_with_the_provider_in_flight(endpoint="edge", key="key-a", before=True)
    state.toggle_failover(enabled=False)
    state.toggle_failover(enabled=True)
    state.background_settles()
    state.set_provider(mode="down")
    state.provider_answers(endpoint="edge")  # 503 provider_unavailable: released at the edge
    state.time_passes(seconds=LEASE_S + 1)
    state.background_round(task="reconcile")
    state.background_round(task="sync")
    state.teardown()  # the final checks send key-a once more: it must go out (201)


def test_edge_first_then_a_degraded_origin_send_is_a_declared_and_counted_double_send(tmp_path: Path) -> None:
    """Rule 7's second case: the edge sends key-a; the origin, cut off from the edge before the sync brought key-a
    over, sends it again on its local ledger (a declared partition); reconcile counts the double send."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.send_at_edge(key="key-a")
    state.set_network(mode="unreachable")
    state.time_passes(seconds=10.0)  # past the failover budget (7 s) without a ledger round trip
    state.background_round(task="reconcile")  # the liveness round: degraded (rule 5)
    state.send_with_the_provider_in_flight(endpoint="origin", key="key-a", before=True)
    state.set_network(mode="up")
    state.background_settles()  # the sync copies the edge's send beside the origin's open claim
    state.provider_answers(endpoint="origin")
    assert state.provider.taken["key-a"] == 2
    assert state.partition_keys == {"key-a"}
    state.teardown()


def test_a_claim_answered_after_its_lease_beside_another_send_counts_as_a_possible_double_send(
    tmp_path: Path,
) -> None:
    """The trade-off of counting expired claims (the first test above): the edge sends key-a; the origin, cut off,
    claims key-a on its local ledger and its provider call only answers (a refusal: nothing sent) after the lease,
    too late to release the claim, so the origin's record stays an expired claim (the origin itself answers
    "unknown" for it). Reconcile counts key-a as a double send: a possible one, though the provider took it once."""
    state = fresh_machine(tmp_path)
    state.start(start_on=True)
    state.send_at_edge(key="key-a")
    state.set_network(mode="unreachable")
    state.time_passes(seconds=10.0)  # past the failover budget (7 s) without a ledger round trip
    state.background_round(task="reconcile")  # the liveness round: degraded (rule 5)
    state.send_with_the_provider_in_flight(endpoint="origin", key="key-a", before=True)
    state.time_passes(seconds=LEASE_S + 1)
    state.set_provider(mode="reject")
    state.provider_answers(endpoint="origin")  # 422 provider_rejected, after the lease: the claim is not released
    state.set_network(mode="up")
    assert state.provider.taken["key-a"] == 1
    try:
        state._final_checks()
        assert state.run(state._double_sent_keys()) == {"key-a"}
    finally:
        state._close_everything()
