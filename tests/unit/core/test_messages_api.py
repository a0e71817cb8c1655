"""MessageApi, the routes both endpoints serve: SQLite-backed ledger and messages, Twilio behind a MockTransport."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from smsfailover.core.auth import SigningKeys, issue_token
from smsfailover.core.clock import ManualClock
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import Claimed, ClaimOutcome, IdempotencyLedger, LedgerRecord
from smsfailover.core.message import MAX_BODY_BYTES, fingerprint, parse_send_request
from smsfailover.core.messages_api import (
    ApiRequest,
    ApiResponse,
    Begin,
    Conclusion,
    Endpoint,
    MessageApi,
    Settle,
)
from smsfailover.core.provider import HttpxPoster, TwilioProvider
from smsfailover.core.ratelimit import TokenBucketLimiter
from smsfailover.core.sql import SqliteExecutor, SqlLedgerStore, SqlMessageStore

SECRET = "messages-api-unit-test-secret-0123456789abcdef"
SERVICE_KEY = "messages-api-unit-test-service-key-0123456789"
WS = "15213"
TO = "+16266635938"
CALLBACK = "https://origin.example/v1/provider/twilio/status"

Step = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


def created(sid: str = "SM0001", status: str = "queued", num_segments: str | None = "1") -> Step:
    async def step(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(201, json={"sid": sid, "status": status, "num_segments": num_segments})

    return step


def answer(status: int, body: dict[str, object] | None = None) -> Step:
    async def step(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body or {})

    return step


def fail_with(exc: Exception) -> Step:
    async def step(request: httpx2.Request) -> httpx2.Response:
        raise exc

    return step


class FakeTwilio:
    """Answers from a script, then 201 with a fresh sid; `gate` holds a request in flight until it is set."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.script: list[Step] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.entered.set()
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), timeout=5)
        step = self.script.pop(0) if self.script else created(f"SM{len(self.requests):04d}")
        return await step(request)

    def form(self, index: int = -1) -> list[tuple[str, str]]:
        from urllib.parse import parse_qsl

        return parse_qsl(self.requests[index].content.decode())


@asynccontextmanager
async def mock_poster(handler: FakeTwilio) -> AsyncIterator[HttpxPoster]:
    poster = HttpxPoster()
    await poster.aclose()  # swap its client for one on the mock transport
    poster._client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    try:
        yield poster
    finally:
        await poster.aclose()


@dataclass
class Stack:
    api: MessageApi
    clock: ManualClock
    ledger: IdempotencyLedger
    messages: SqlMessageStore
    twilio: FakeTwilio
    recorded: list[Mapping[str, object]] = field(default_factory=list)

    def token(self, workspace_id: str = WS) -> str:
        return issue_token(SECRET, workspace_id=workspace_id, now=self.clock.time())

    async def send(
        self,
        key: str | None = "key-1",
        *,
        token: str | None = None,
        auth: str | None = None,
        **fields: Any,
    ) -> ApiResponse:
        payload: dict[str, Any] = {"to": TO, "content": "Hello", "workspace_id": WS, **fields}
        return await self.call(
            "POST", "/v1/messages", body=json.dumps(payload).encode(), key=key, token=token, auth=auth
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        key: str | None = None,
        token: str | None = None,
        auth: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        headers = {"authorization": auth if auth is not None else f"Bearer {token or self.token()}"}
        if key is not None:
            headers["idempotency-key"] = key
        response = await self.api.handle(ApiRequest(method, path, dict(query or {}), headers, body))
        assert response is not None
        return response


StepsFactory = Callable[[IdempotencyLedger, SqlMessageStore], tuple[Begin, Settle]]


class AskingLedger(IdempotencyLedger):
    """A ledger that would ask another one between its steps (the origin's, while the edge may accept sends)."""

    @property
    def standalone(self) -> bool:
        return False


@asynccontextmanager
async def stack_of(
    *,
    endpoint: Endpoint = "edge",
    rate: float = 50,
    messages: SqlMessageStore | None = None,
    ledger_store: SqlLedgerStore | None = None,
    from_number: str | None = "+15005550006",
    on_recorded: bool = True,
    steps: StepsFactory | None = None,
    standalone: bool = True,
) -> AsyncIterator[Stack]:
    clock = ManualClock()
    db = SqliteExecutor(":memory:")
    db.create_schema()
    ledger = (IdempotencyLedger if standalone else AskingLedger)(
        ledger_store or SqlLedgerStore(db),
        clock,
        lease_s=30,
        mode="edge" if endpoint == "edge" else "local",
        owner=endpoint,  # this endpoint marks its own sends' calls (the call-began mark)
    )
    store = messages or SqlMessageStore(db)
    begin, settle = steps(ledger, store) if steps else (None, None)
    twilio = FakeTwilio()
    recorded: list[Mapping[str, object]] = []

    async def ledger_for(workspace_id: str) -> IdempotencyLedger:
        return ledger

    async def observe(message: Mapping[str, object]) -> None:
        recorded.append(message)

    async with mock_poster(twilio) as poster:
        provider = TwilioProvider(
            poster,
            base_url="https://api.twilio.test",
            account_sid="AC123",
            auth_token="auth-tok",
            from_number=from_number,
        )
        api = MessageApi(
            endpoint=endpoint,
            ledger_for=ledger_for,
            messages=store,
            provider=provider,
            keys=SigningKeys(SECRET, SERVICE_KEY),
            clock=clock,
            limiter=TokenBucketLimiter(rate=rate, clock=clock),
            version="1.2.3",
            status_callback_url=CALLBACK if endpoint == "origin" else None,
            on_recorded=observe if on_recorded else None,
            begin=begin,
            settle=settle,
        )
        try:
            yield Stack(api, clock, ledger, store, twilio, recorded)
        finally:
            db.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with stack_of() as opened:
        yield opened


def error_of(response: ApiResponse) -> dict[str, Any]:
    error = response.body["error"]
    assert isinstance(error, dict)
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def assert_error(response: ApiResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response.body
    error = error_of(response)
    assert error["code"] == code
    return error


# ---- a first send -----------------------------------------------------------------------------------------------


async def test_a_first_send_answers_201_with_the_contract_fields(stack: Stack) -> None:
    response = await stack.send(contact_id="c-1", content="Hello there")
    assert response.status == 201
    body = response.body
    assert {
        "id",
        "status",
        "endpoint",
        "idempotency_key",
        "provider_message_id",
        "segments",
        "encoding",
        "created_at",
        "requires_refresh",
        "ledger",
    } <= set(body)
    assert str(body["id"]).startswith("msg_")
    assert body["status"] == "queued"
    assert body["endpoint"] == "edge"
    assert body["requires_refresh"] is True
    assert body["ledger"] == "edge"
    assert body["idempotency_key"] == "key-1"
    assert body["provider_message_id"] == "SM0001"
    assert (body["segments"], body["encoding"]) == (1, "GSM-7")
    assert body["created_at"] == rfc3339(stack.clock.time())
    assert (body["to"], body["content"], body["contact_id"], body["workspace_id"]) == (TO, "Hello there", "c-1", WS)
    assert body["error"] is None
    assert body["latency_ms"] == 0.0
    assert "Idempotent-Replayed" not in response.headers
    # the stored row says the same
    assert await stack.messages.get(WS, str(body["id"])) == {**body, "seq": 2}
    assert stack.recorded == [body]


async def test_the_provider_gets_to_from_body_and_media(stack: Stack) -> None:
    response = await stack.send(content="Look", media_urls=["https://example.com/a.png", "https://example.com/b.png"])
    assert response.status == 201
    request = stack.twilio.requests[0]
    assert request.url == "https://api.twilio.test/2010-04-01/Accounts/AC123/Messages.json"
    assert request.headers["authorization"].startswith("Basic ")
    assert stack.twilio.form() == [
        ("To", TO),
        ("From", "+15005550006"),
        ("Body", "Look"),
        ("MediaUrl", "https://example.com/a.png"),
        ("MediaUrl", "https://example.com/b.png"),
    ]
    assert response.body["segments"] == 1


async def test_the_origin_answers_as_the_origin_and_asks_for_status_callbacks() -> None:
    async with stack_of(endpoint="origin") as stack:
        response = await stack.send()
        assert response.status == 201
        assert (response.body["endpoint"], response.body["requires_refresh"], response.body["ledger"]) == (
            "origin",
            False,
            "local",
        )
        # each message its own callback URL: Twilio signs the whole URL, so the id is as good as the callback
        assert ("StatusCallback", f"{CALLBACK}?message_id={response.body['id']}") in stack.twilio.form()


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [
        ("accepted", "queued"),
        ("sending", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("something-new", "queued"),
    ],
)
async def test_the_providers_status_is_folded_into_the_contracts(stack: Stack, twilio_status: str, status: str) -> None:
    stack.twilio.script.append(created(status=twilio_status))
    response = await stack.send()
    assert response.body["status"] == status


async def test_the_providers_segment_count_wins_over_ours(stack: Stack) -> None:
    stack.twilio.script.append(created(num_segments="3"))
    assert (await stack.send(content="short")).body["segments"] == 3
    stack.twilio.script.append(created(num_segments=None))
    response = await stack.send("key-2", content="ж" * 71)
    assert (response.body["segments"], response.body["encoding"]) == (2, "UCS-2")


async def test_latency_is_measured_on_the_injected_clock(stack: Stack) -> None:
    async def slow(request: httpx2.Request) -> httpx2.Response:
        stack.clock.advance(0.25)
        return httpx2.Response(201, json={"sid": "SMslow", "status": "queued"})

    stack.twilio.script.append(slow)
    assert (await stack.send()).body["latency_ms"] == 250.0


# ---- the same key again -----------------------------------------------------------------------------------------


async def test_a_replay_answers_200_with_the_original_body_and_sends_nothing(stack: Stack) -> None:
    first = await stack.send()
    stack.clock.advance(60)
    again = await stack.send()
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    assert len(stack.twilio.requests) == 1


async def test_a_key_in_flight_answers_409_with_retry_after(stack: Stack) -> None:
    stack.twilio.gate = asyncio.Event()
    first = asyncio.create_task(stack.send())
    await asyncio.wait_for(stack.twilio.entered.wait(), timeout=5)
    second = await stack.send()
    error = assert_error(second, 409, "idempotency_in_progress")
    assert second.headers["Retry-After"] == "5"
    assert "field" not in error
    lookup = await stack.call("GET", "/v1/messages", query={"idempotency_key": "key-1"})
    assert_error(lookup, 409, "idempotency_in_progress")
    assert lookup.headers["Retry-After"] == "5"
    stack.twilio.gate.set()
    assert (await asyncio.wait_for(first, timeout=5)).status == 201
    assert len(stack.twilio.requests) == 1


async def test_the_same_key_with_another_payload_is_422_reused(stack: Stack) -> None:
    assert (await stack.send()).status == 201
    error = assert_error(await stack.send(content="Something else"), 422, "idempotency_key_reused")
    assert error["field"] == "Idempotency-Key"
    assert_error(await stack.send(to="+442079460958"), 422, "idempotency_key_reused")
    assert len(stack.twilio.requests) == 1


async def test_contact_id_is_not_part_of_the_payload_identity(stack: Stack) -> None:
    first = await stack.send(contact_id="a")
    again = await stack.send(contact_id="b")
    assert again.status == 200
    assert again.body == first.body


async def test_a_claim_whose_lease_ran_out_answers_unknown_and_is_not_sent(stack: Stack) -> None:
    req = parse_send_request(json.dumps({"to": TO, "content": "Hello", "workspace_id": WS}).encode())
    claim = await stack.ledger.claim(WS, "key-1", fingerprint(req), "origin")  # a sender that then crashed
    assert isinstance(claim, Claimed)
    stack.clock.advance(31)
    response = await stack.send()
    assert response.status == 200
    assert response.headers["Idempotent-Replayed"] == "true"
    body = response.body
    assert (body["id"], body["status"], body["endpoint"], body["requires_refresh"]) == (
        claim.record.message_id,
        "unknown",
        "origin",
        False,
    )
    assert body["provider_message_id"] is None
    assert body["created_at"] == rfc3339(claim.record.created_at)
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "outcome_unknown"
    assert stack.twilio.requests == []
    lookup = await stack.call("GET", "/v1/messages", query={"idempotency_key": "key-1"})
    assert (lookup.status, lookup.body) == (200, body)
    assert "Idempotent-Replayed" not in lookup.headers


async def test_a_send_that_died_mid_flight_is_reported_from_its_write_ahead_row(stack: Stack) -> None:
    stack.twilio.gate = asyncio.Event()
    task = asyncio.create_task(stack.send(contact_id="c-9"))
    await asyncio.wait_for(stack.twilio.entered.wait(), timeout=5)
    task.cancel()  # the process died while the provider held the request
    with pytest.raises(asyncio.CancelledError):
        await task
    stack.clock.advance(31)
    stack.twilio.gate = None
    response = await stack.send(contact_id="c-9")
    assert response.status == 200
    assert (response.body["status"], response.body["to"], response.body["contact_id"]) == ("unknown", TO, "c-9")
    assert len(stack.twilio.requests) == 1


# ---- provider outcomes ------------------------------------------------------------------------------------------


async def test_a_provider_refusal_is_422_with_its_code_and_frees_the_key(stack: Stack) -> None:
    stack.twilio.script.append(answer(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}))
    response = await stack.send()
    error = assert_error(response, 422, "provider_rejected")
    assert error["provider_code"] == 21211
    assert "Invalid 'To' Phone Number" in error["message"]
    failed = stack.recorded[-1]
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "provider_rejected",
        "message": "Invalid 'To' Phone Number",
        "provider_code": 21211,
    }
    assert await stack.messages.get(WS, str(failed["id"])) is not None
    # nothing was sent, so the key is free: the same request may be sent again
    stack.clock.advance(1)
    retry = await stack.send()
    assert retry.status == 201
    assert retry.body["id"] != failed["id"]
    assert len(stack.twilio.requests) == 2


@pytest.mark.parametrize("status", [429, 503, 401])
async def test_a_provider_that_cannot_take_the_message_is_503_and_frees_the_key(stack: Stack, status: int) -> None:
    stack.twilio.script.append(answer(status, {"code": 20003, "message": "nope"}))
    response = await stack.send()
    assert_error(response, 503, "provider_unavailable")
    assert response.headers["Retry-After"] == "1"
    assert stack.recorded[-1]["status"] == "failed"
    retry = await stack.send()
    assert retry.status == 201
    assert len(stack.twilio.requests) == 2


async def test_a_refused_connection_is_retried_once_then_503(stack: Stack) -> None:
    stack.twilio.script += [fail_with(httpx2.ConnectError("refused")), fail_with(httpx2.ConnectError("refused"))]
    assert_error(await stack.send(), 503, "provider_unavailable")
    assert len(stack.twilio.requests) == 2
    assert (await stack.send()).status == 201


@pytest.mark.parametrize(
    "step",
    [answer(500, {"message": "boom"}), fail_with(httpx2.ReadTimeout("slow")), answer(201, {"status": "queued"})],
    ids=["http-500", "read-timeout", "no-sid"],
)
async def test_a_send_that_may_have_gone_out_is_201_unknown_and_never_resent(stack: Stack, step: Step) -> None:
    stack.twilio.script.append(step)
    response = await stack.send()
    assert response.status == 201
    assert response.body["status"] == "unknown"
    assert response.body["provider_message_id"] is None
    error = response.body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "outcome_unknown"
    again = await stack.send()
    assert (again.status, again.body) == (200, response.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stack.twilio.requests) == 1


async def test_an_unexpected_client_error_counts_as_maybe_sent(stack: Stack) -> None:
    stack.twilio.script.append(fail_with(RuntimeError("a bug in the client")))
    response = await stack.send()
    assert (response.status, response.body["status"]) == (201, "unknown")


async def test_an_unconfigured_provider_is_503_and_frees_the_key() -> None:
    async with stack_of(from_number=None) as stack:
        assert_error(await stack.send(), 503, "provider_unavailable")
        assert stack.twilio.requests == []
        assert await stack.ledger.lookup(WS, "key-1") is None


# ---- stores failing after the provider answered -----------------------------------------------------------------


class BrokenUpdates(SqlMessageStore):
    async def update(self, workspace_id: str, message_id: str, fields: Mapping[str, Any], now: float) -> None:
        raise RuntimeError("database went away")


class BrokenLedgerWrites(SqlLedgerStore):
    async def complete(
        self, workspace_id: str, key: str, message: dict[str, object], now: float, *, message_id: str
    ) -> None:
        raise RuntimeError("ledger went away")

    async def release(self, workspace_id: str, key: str, now: float, *, message_id: str) -> None:
        raise RuntimeError("ledger went away")


async def test_a_store_failure_after_a_successful_send_still_answers_201(caplog: pytest.LogCaptureFixture) -> None:
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(messages=BrokenUpdates(db), ledger_store=BrokenLedgerWrites(db)) as stack:
            with caplog.at_level(logging.INFO, logger="smsfailover"):
                response = await stack.send()
            assert response.status == 201
            assert response.body["provider_message_id"] == "SM0001"
            events = [getattr(r, "event", None) for r in caplog.records]
            assert "send.record_failed" in events
            assert "ledger.complete_failed" in events
            # the ledger could not be closed: the key stays claimed, so a retry is told to wait, never re-sent
            assert (await stack.send()).status == 409
            assert len(stack.twilio.requests) == 1
    finally:
        db.close()


async def test_a_ledger_release_failure_still_answers_the_refusal() -> None:
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(ledger_store=BrokenLedgerWrites(db)) as stack:
            stack.twilio.script.append(answer(400, {"code": 21610, "message": "unsubscribed"}))
            assert_error(await stack.send(), 422, "provider_rejected")
    finally:
        db.close()


async def test_an_observer_failure_does_not_change_the_answer(stack: Stack) -> None:
    async def broken(message: Mapping[str, object]) -> None:
        raise RuntimeError("observer bug")

    stack.api._on_recorded = broken
    assert (await stack.send()).status == 201


async def test_without_an_observer_sends_work_the_same() -> None:
    async with stack_of(on_recorded=False) as stack:
        assert (await stack.send()).status == 201
        assert stack.recorded == []


def recording_steps(calls: list[str]) -> StepsFactory:
    """An endpoint's begin and settle, done as the separate steps would be, noting each call."""

    def make(ledger: IdempotencyLedger, messages: SqlMessageStore) -> tuple[Begin, Settle]:
        async def begin(record: LedgerRecord, message: dict[str, object]) -> ClaimOutcome:
            calls.append("begin")
            outcome = await ledger.claim_record(record)
            if isinstance(outcome, Claimed):
                await messages.insert(message)
            return outcome

        async def settle(conclusion: Conclusion) -> None:
            calls.append("settle")
            claim = conclusion.claim
            await messages.update(claim.workspace_id, claim.message_id, conclusion.fields, conclusion.now)
            if conclusion.message is not None:
                await ledger.complete(claim, conclusion.message)
            else:
                await ledger.release(claim)

        return begin, settle

    return make


@pytest.mark.parametrize(("standalone", "calls"), [(True, ["begin", "settle", "begin"]), (False, [])])
async def test_begin_and_settle_serve_only_a_standalone_ledger(standalone: bool, calls: list[str]) -> None:
    made: list[str] = []
    async with stack_of(steps=recording_steps(made), standalone=standalone) as stack:
        first = await stack.send()
        again = await stack.send()
        assert (first.status, again.status) == (201, 200)
        assert again.body == first.body
        assert made == calls
        assert len(stack.twilio.requests) == 1


async def test_logs_carry_neither_content_nor_token(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    token = stack.token()
    stack.twilio.script.append(answer(500, {}))
    with caplog.at_level(logging.DEBUG, logger="smsfailover"):
        await stack.send(content="my secret words", token=token)
        await stack.send("key-2", content="my secret words", token=token)
    assert caplog.records
    text = "\n".join(r.getMessage() + repr(getattr(r, "fields", "")) for r in caplog.records)
    assert "my secret words" not in text
    assert token not in text
    assert SECRET not in text


# ---- refusals before the ledger ---------------------------------------------------------------------------------


async def test_the_rate_limit_answers_429_with_retry_after_and_claims_nothing() -> None:
    async with stack_of(rate=1) as stack:
        assert (await stack.send("a")).status == 201
        limited = await stack.send("b")
        assert_error(limited, 429, "rate_limited")
        assert limited.headers["Retry-After"] == "1"
        assert await stack.ledger.lookup(WS, "b") is None
        stack.clock.advance(1)
        assert (await stack.send("b")).status == 201
        # the limit is per workspace
        assert (await stack.send("c", workspace_id="other", token=stack.token("other"))).status == 201


@pytest.mark.parametrize("auth", ["", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer"])
async def test_no_or_a_bad_token_is_401(stack: Stack, auth: str) -> None:
    for response in (
        await stack.send(auth=auth),
        await stack.call("GET", "/v1/messages/msg_x", auth=auth),
        await stack.call("GET", "/v1/messages", auth=auth, query={"idempotency_key": "k"}),
    ):
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert stack.twilio.requests == []


async def test_an_expired_token_or_another_secret_is_401(stack: Stack) -> None:
    expired = issue_token(SECRET, workspace_id=WS, ttl_s=60, now=stack.clock.time() - 3600)
    assert_error(await stack.send(token=expired), 401, "unauthorized")
    forged = issue_token("a-different-secret-of-plenty-of-bytes-000", workspace_id=WS, now=stack.clock.time())
    assert_error(await stack.send(token=forged), 401, "unauthorized")


async def test_a_token_for_another_workspace_is_403(stack: Stack) -> None:
    error = assert_error(await stack.send(token=stack.token("other")), 403, "forbidden")
    assert error["field"] == "workspace_id"
    assert stack.twilio.requests == []


async def test_a_service_token_is_403_on_every_workspace_route(stack: Stack) -> None:
    service = issue_token(SERVICE_KEY, service=True, now=stack.clock.time())
    assert_error(await stack.send(token=service), 403, "forbidden")
    assert_error(await stack.call("GET", "/v1/messages/msg_x", token=service), 403, "forbidden")
    by_key = await stack.call("GET", "/v1/messages", token=service, query={"idempotency_key": "k"})
    assert_error(by_key, 403, "forbidden")


async def test_auth_comes_before_everything_else(stack: Stack) -> None:
    response = await stack.call("POST", "/v1/messages", body=b"x" * (MAX_BODY_BYTES + 1), auth="")
    assert_error(response, 401, "unauthorized")


async def test_a_body_over_64_kib_is_413_even_without_a_key(stack: Stack) -> None:
    response = await stack.call("POST", "/v1/messages", body=b"x" * (MAX_BODY_BYTES + 1))
    assert_error(response, 413, "payload_too_large")


async def test_a_missing_key_is_400_and_a_malformed_one_422(stack: Stack) -> None:
    error = assert_error(await stack.send(None), 400, "missing_idempotency_key")
    assert error["field"] == "Idempotency-Key"
    assert_error(await stack.send(""), 400, "missing_idempotency_key")
    assert_error(await stack.send("has space"), 422, "invalid_idempotency_key")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 422, "invalid_request"),
        (json.dumps({"to": "6266635938", "content": "x", "workspace_id": WS}).encode(), 422, "invalid_phone_number"),
        (json.dumps({"to": TO, "content": " ", "workspace_id": WS}).encode(), 422, "invalid_content"),
        (json.dumps({"to": TO, "content": "x", "workspace_id": "a b"}).encode(), 422, "invalid_workspace_id"),
    ],
)
async def test_bad_payloads_get_the_contracts_codes(stack: Stack, body: bytes, status: int, code: str) -> None:
    assert_error(await stack.call("POST", "/v1/messages", body=body, key="k"), status, code)
    assert stack.twilio.requests == []


# ---- reads ------------------------------------------------------------------------------------------------------


async def test_get_by_id_returns_the_message_of_the_callers_workspace_only(stack: Stack) -> None:
    sent = await stack.send()
    message_id = str(sent.body["id"])
    mine = await stack.call("GET", f"/v1/messages/{message_id}")
    assert mine.status == 200
    assert {k: v for k, v in mine.body.items() if k != "seq"} == sent.body
    theirs = await stack.call("GET", f"/v1/messages/{message_id}", token=stack.token("other"))
    assert_error(theirs, 404, "not_found")
    assert_error(await stack.call("GET", "/v1/messages/msg_nothing"), 404, "not_found")


async def test_get_by_key_answers_200_then_404_for_unknown_keys(stack: Stack) -> None:
    sent = await stack.send()
    found = await stack.call("GET", "/v1/messages", query={"idempotency_key": "key-1"})
    assert (found.status, found.body) == (200, sent.body)
    assert "Idempotent-Replayed" not in found.headers
    assert_error(await stack.call("GET", "/v1/messages", query={"idempotency_key": "nope"}), 404, "not_found")
    other = await stack.call("GET", "/v1/messages", token=stack.token("other"), query={"idempotency_key": "key-1"})
    assert_error(other, 404, "not_found")


async def test_get_by_key_of_a_released_key_shows_the_failed_attempt(stack: Stack) -> None:
    stack.twilio.script.append(answer(400, {"code": 21211, "message": "bad number"}))
    assert (await stack.send()).status == 422
    found = await stack.call("GET", "/v1/messages", query={"idempotency_key": "key-1"})
    assert found.status == 200
    assert found.body["status"] == "failed"


async def test_get_by_key_needs_the_query_parameter(stack: Stack) -> None:
    error = assert_error(await stack.call("GET", "/v1/messages"), 400, "invalid_request")
    assert error["field"] == "idempotency_key"
    assert_error(await stack.call("GET", "/v1/messages", query={"idempotency_key": ""}), 400, "missing_idempotency_key")


async def test_get_by_key_hides_a_stored_unknown_row_without_a_ledger_entry(stack: Stack) -> None:
    created_at = rfc3339(stack.clock.time())
    await stack.messages.insert(
        {
            "id": "msg_orphan",
            "workspace_id": WS,
            "idempotency_key": "orphan",
            "to": TO,
            "status": "unknown",
            "endpoint": "edge",
            "created_at": created_at,
        }
    )
    assert_error(await stack.call("GET", "/v1/messages", query={"idempotency_key": "orphan"}), 404, "not_found")


# ---- routing ----------------------------------------------------------------------------------------------------


async def test_health_needs_no_token(stack: Stack) -> None:
    for path in ("/v1/health", "/v1/health/"):
        response = await stack.api.handle(ApiRequest("GET", path))
        assert response is not None
        assert (response.status, response.body) == (
            200,
            {"status": "ok", "endpoint": "edge", "version": "1.2.3", "ledger": "edge"},
        )


async def test_the_origins_health_reports_a_local_ledger_or_its_own_body() -> None:
    async with stack_of(endpoint="origin") as stack:
        response = await stack.api.handle(ApiRequest("GET", "/v1/health"))
        assert response is not None
        assert response.body["ledger"] == "local"

        async def own_health(detailed: bool) -> dict[str, object]:
            body: dict[str, object] = {"status": "degraded", "endpoint": "origin", "version": "9", "ledger": "local"}
            return {**body, "problems": ["the provider is not configured"]} if detailed else body

        stack.api._health = own_health
        response = await stack.api.handle(ApiRequest("GET", "/v1/health"))
        assert response is not None
        assert response.body["status"] == "degraded"
        assert "problems" not in response.body


@pytest.mark.parametrize(
    ("token", "detailed"),
    [
        (lambda now: issue_token(SERVICE_KEY, service=True, now=now), True),
        (lambda now: issue_token(SERVICE_KEY, operator=True, now=now), True),
        (lambda now: issue_token(SECRET, workspace_id=WS, now=now), False),
        (lambda now: issue_token(SECRET, service=True, now=now), False),  # forged with the workspace key
        (lambda now: "not-a-token", False),
    ],
)
async def test_health_details_go_to_service_and_operator_tokens_only(
    token: Callable[[float], str], detailed: bool
) -> None:
    async with stack_of(endpoint="origin") as stack:
        seen: list[bool] = []

        async def own_health(details: bool) -> dict[str, object]:
            seen.append(details)
            return {"status": "ok"}

        stack.api._health = own_health
        headers = {"authorization": f"Bearer {token(stack.clock.time())}"}
        response = await stack.api.handle(ApiRequest("GET", "/v1/health", headers=headers))
        assert response is not None
        assert response.status == 200  # a bad token on health is no error: no details
        assert seen == [detailed]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/messages", "GET, POST"),
        ("DELETE", "/v1/messages", "GET, POST"),
        ("POST", "/v1/health", "GET"),
        ("DELETE", "/v1/messages/msg_1", "GET"),
        ("POST", "/v1/messages/msg_1", "GET"),
    ],
)
async def test_a_wrong_method_is_405_with_allow(stack: Stack, method: str, path: str, allow: str) -> None:
    response = await stack.call(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow


@pytest.mark.parametrize(
    "path", ["/", "/v2/messages", "/v1/messagesx", "/v1/messages/a/b", "/v1/workspaces/w/messages"]
)
async def test_other_paths_are_left_to_the_host(stack: Stack, path: str) -> None:
    assert await stack.api.handle(ApiRequest("GET", path)) is None


class BrokenInserts(SqlMessageStore):
    async def insert(self, message: Mapping[str, Any]) -> None:
        raise RuntimeError("database went away")


async def test_a_store_failure_before_the_provider_call_is_503_sends_nothing_and_frees_the_key() -> None:
    db = SqliteExecutor(":memory:")
    db.create_schema()
    try:
        async with stack_of(messages=BrokenInserts(db)) as stack:
            response = await stack.send()
            assert_error(response, 503, "storage_unavailable")
            assert response.headers["Retry-After"] == "1"
            assert stack.twilio.requests == []
            assert await stack.ledger.lookup(WS, "key-1") is None  # a retry, here or elsewhere, may send
    finally:
        db.close()
