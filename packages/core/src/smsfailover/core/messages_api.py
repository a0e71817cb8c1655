"""The routes both endpoints serve, as plain async Python over injected ledger, store, provider and clock.

    POST /v1/messages                       send one message, at most once per (workspace, Idempotency-Key)
    GET  /v1/messages/{id}                  one message this endpoint recorded
    GET  /v1/messages?idempotency_key=K     the outcome for a key: 200, 409 while in flight, 404
    GET  /v1/health                         liveness, no auth

The host (Starlette on the origin, the Worker on the edge) turns its request into an ApiRequest and the
ApiResponse back; `handle` returns None for a path that is not one of these, so the host can answer 404.
Order of a send: auth, size, key, payload, workspace, rate limit, ledger claim, a write-ahead message row with
status "unknown" (a crash mid-send leaves an honest unknown), the provider call, then the row and the ledger.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from smsfailover.core.auth import Principal, SigningKeys, fleet_caller, require_workspace, verify_bearer
from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ids import rfc3339
from smsfailover.core.ledger import (
    Claimed,
    ClaimOutcome,
    IdempotencyLedger,
    InProgress,
    KeyReused,
    LedgerMoved,
    LedgerRecord,
    LedgerState,
    NotSent,
    Replay,
    Unknown,
    is_not_sent,
    ledger_body,
)
from smsfailover.core.log import log_event
from smsfailover.core.message import (
    MAX_BODY_BYTES,
    SendRequest,
    encoding_and_segments,
    fingerprint,
    parse_send_request,
    validate_idempotency_key,
)
from smsfailover.core.provider import ProviderRejected, ProviderResult, ProviderUnavailable, TwilioProvider
from smsfailover.core.ratelimit import TokenBucketLimiter
from smsfailover.core.sql import release_call

Endpoint = Literal["origin", "edge"]
LedgerFor = Callable[[str], Awaitable[IdempotencyLedger]]
Observer = Callable[[Mapping[str, object]], Awaitable[None]]

# Twilio's statuses folded into the contract's six.
_PROVIDER_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: dict[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)


def error_response(error: ApiError) -> ApiResponse:
    return ApiResponse(error.status, error.envelope(), dict(error.headers))


class MessageStore(Protocol):
    async def insert(self, message: Mapping[str, Any]) -> None: ...

    async def update(self, workspace_id: str, message_id: str, fields: Mapping[str, Any], now: float) -> None: ...

    async def get(self, workspace_id: str, message_id: str) -> dict[str, object] | None: ...

    async def get_by_key(self, workspace_id: str, key: str) -> dict[str, object] | None: ...


@dataclass(frozen=True, slots=True)
class Conclusion:
    """A send's last step: the provider's answer applied to the message row, and the claim completed with the
    message (or released, when `message` is None and nothing was sent)."""

    claim: LedgerRecord
    fields: Mapping[str, object]
    now: float
    message: dict[str, object] | None


# An endpoint whose store can apply a Conclusion as one transaction supplies this (the edge: one D1 batch; the
# origin: one SQL transaction). Used only for a standalone ledger (IdempotencyLedger.standalone).
Settle = Callable[[Conclusion], Awaitable[None]]
# ... and one that can claim a key and write its message row (status unknown) as one transaction supplies this:
# the claim's outcome; the row is written only if the claim was taken. Also only for a standalone ledger.
Begin = Callable[[LedgerRecord, dict[str, object]], Awaitable[ClaimOutcome]]
Execute = Callable[[str, Sequence[object]], Awaitable[object]]  # one SQL statement, as a store's executor runs it


class MessageApi:
    def __init__(
        self,
        *,
        endpoint: Endpoint,
        ledger_for: LedgerFor,
        messages: MessageStore,
        provider: TwilioProvider,
        keys: SigningKeys,
        clock: Clock,
        limiter: TokenBucketLimiter,
        version: str,
        status_callback_url: str | None = None,
        health: Callable[[bool], Awaitable[dict[str, object]]] | None = None,
        on_recorded: Observer | None = None,
        settle: Settle | None = None,
        begin: Begin | None = None,
    ) -> None:
        self.endpoint: Endpoint = endpoint
        self._ledger_for = ledger_for
        self._messages = messages
        self._provider = provider
        self._keys = keys
        self._clock = clock
        self._limiter = limiter
        self._version = version
        self._status_callback_url = status_callback_url
        self._health = health
        self._on_recorded = on_recorded
        self._settle = settle
        self._begin = begin

    async def handle(self, request: ApiRequest) -> ApiResponse | None:
        path = request.path.rstrip("/") or "/"
        try:
            if path == "/v1/health":
                _allow(request, "GET")
                return await self.health(request)
            if path == "/v1/messages":
                _allow(request, "GET", "POST")
                return await (self.send(request) if request.method == "POST" else self.get_by_key(request))
            if path.startswith("/v1/messages/") and path.count("/") == 3:
                _allow(request, "GET")
                return await self.get_message(request, path.rsplit("/", 1)[1])
        except ApiError as exc:
            return error_response(exc)
        return None

    # ---- routes -------------------------------------------------------------------------------------------------

    async def health(self, request: ApiRequest) -> ApiResponse:
        """No auth; what is wrong (`problems`) only for a service or operator token: it names configuration."""
        if self._health is not None:
            return ApiResponse(200, await self._health(self._fleet_caller(request)))
        body: dict[str, object] = {"status": "ok", "endpoint": self.endpoint, "version": self._version}
        body["ledger"] = "edge" if self.endpoint == "edge" else "local"
        return ApiResponse(200, body)

    async def send(self, request: ApiRequest) -> ApiResponse:
        principal = self._authenticate(request)
        if len(request.body) > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KiB.")
        key = validate_idempotency_key(request.headers.get("idempotency-key"))
        req = parse_send_request(request.body)
        require_workspace(principal, req.workspace_id)
        wait_s = self._limiter.acquire(req.workspace_id)
        if wait_s > 0:
            raise ApiError(
                429,
                "rate_limited",
                "Too many messages for this workspace; retry after the time in Retry-After.",
                headers={"Retry-After": self._limiter.retry_after_header(wait_s)},
            )
        ledger = await self._ledger_for(req.workspace_id)
        if self._begin is not None and ledger.standalone:
            record = ledger.new_claim(req.workspace_id, key, fingerprint(req), self.endpoint)
            message = self._new_message(req, key, record, ledger.mode)
            try:
                outcome = await self._begin(record, message)
            except LedgerMoved:  # the setting changed under this send: nothing was written, claim where it says now
                ledger = await self._ledger_for(req.workspace_id)
            else:
                if isinstance(outcome, Claimed):
                    return await self._call_provider(req, ledger, record, message)
                return await self._answer_existing(outcome, ledger, req.content)
        outcome = await ledger.claim(req.workspace_id, key, fingerprint(req), self.endpoint)
        if isinstance(outcome, Claimed):
            return await self._send_claimed(req, key, ledger, outcome.record)
        return await self._answer_existing(outcome, ledger, req.content)

    async def get_message(self, request: ApiRequest, message_id: str) -> ApiResponse:
        principal = self._authenticate(request)
        workspace_id = _workspace_of(principal)
        message = await self._messages.get(workspace_id, message_id)
        if message is None:
            raise _not_found(f"No message {message_id} in this workspace on the {self.endpoint}.")
        return ApiResponse(200, _public(message))

    async def get_by_key(self, request: ApiRequest) -> ApiResponse:
        principal = self._authenticate(request)
        workspace_id = _workspace_of(principal)
        if "idempotency_key" not in request.query:
            raise ApiError(
                400,
                "invalid_request",
                "Give ?idempotency_key=K to look a message up.",
                field="idempotency_key",
            )
        key = validate_idempotency_key(request.query["idempotency_key"])
        ledger = await self._ledger_for(workspace_id)
        outcome = await ledger.lookup(workspace_id, key)
        if outcome is None:
            message = await self._messages.get_by_key(workspace_id, key)
            if message is None or message.get("status") == "unknown":
                raise _not_found("No message with this idempotency key.")
            return ApiResponse(200, _public(message))
        if isinstance(outcome, Claimed):  # pragma: no cover - lookup never claims
            raise AssertionError("lookup returned a claim")
        if isinstance(outcome, Replay):  # the message as it is now, not as its send ended (a POST replay's body)
            return ApiResponse(200, await self._current_message(outcome))
        response = await self._answer_existing(outcome, ledger)
        headers = {k: v for k, v in response.headers.items() if k != "Idempotent-Replayed"}
        return ApiResponse(response.status, response.body, headers)

    async def _current_message(self, replay: Replay) -> dict[str, object]:
        """This endpoint's row of the replayed message: delivery callbacks advance the row, never the ledger's
        completion snapshot. The snapshot when the store does not hold the message (the other endpoint sent it
        and it is not synced here), cannot be read, or holds it as written before the send ended (`unknown`: its
        update after the provider call failed, while the ledger was completed)."""
        snapshot = replay.message
        message_id = str(snapshot.get("id") or replay.record.message_id)
        workspace_id, key = replay.record.workspace_id, replay.record.key
        try:
            stored = await self._messages.get_by_key(workspace_id, key)
            if stored is None or stored.get("id") != message_id:  # the newest row of the key is another attempt's
                stored = await self._messages.get(workspace_id, message_id)
        except Exception as exc:
            log_event(
                "lookup.record_unreadable", level=logging.WARNING, endpoint=self.endpoint, error=type(exc).__name__
            )
            return snapshot
        if stored is None or stored.get("id") != message_id:
            return snapshot
        if stored.get("status") == "unknown" and snapshot.get("status") != "unknown":
            return snapshot
        return _public(stored)

    # ---- the send -----------------------------------------------------------------------------------------------

    async def _answer_existing(
        self,
        outcome: Replay | InProgress | Unknown | NotSent | KeyReused,
        ledger: IdempotencyLedger,
        content: str | None = None,
    ) -> ApiResponse:
        """`content`: the replaying request's. The record keeps no content (ledger.ledger_body), and a Replay means
        the request's fingerprint, which covers the content, equals the record's: its content is the original."""
        if isinstance(outcome, Replay):
            body = outcome.message
            if content is not None and "content" not in body:
                body = {**body, "content": content}
            return ApiResponse(200, body, {"Idempotent-Replayed": "true"})
        if isinstance(outcome, InProgress):
            raise ApiError(
                409,
                "idempotency_in_progress",
                "A send with this Idempotency-Key is in flight; ask again after Retry-After seconds.",
                headers={"Retry-After": str(outcome.retry_after_s)},
            )
        if isinstance(outcome, KeyReused):
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different message; use a new key for a new message.",
                field="Idempotency-Key",
            )
        if isinstance(outcome, NotSent):
            body = await self.resolve_not_sent(ledger, outcome.record)
            return ApiResponse(200, body, {"Idempotent-Replayed": "true"})
        log_event(
            "ledger.unknown",
            endpoint=self.endpoint,
            workspace_id=outcome.record.workspace_id,
            claimed_by=outcome.record.endpoint,
        )
        return ApiResponse(200, await self._unknown_message(outcome.record), {"Idempotent-Replayed": "true"})

    async def resolve_not_sent(self, ledger: IdempotencyLedger, record: LedgerRecord) -> dict[str, object]:
        """A claim whose call never began, lease over: its message `failed` with the reason `not_sent` (final for
        the key; CONTRACT §1.8)."""
        log_event("ledger.not_sent", endpoint=self.endpoint, workspace_id=record.workspace_id)
        return await settle_not_sent(ledger, self._messages, record, self._clock.time())

    async def _unknown_message(self, record: LedgerRecord) -> dict[str, object]:
        stored = await self._messages.get_by_key(record.workspace_id, record.key)
        if stored is not None and stored.get("status") == "unknown":
            return stored
        return bare_message(record)

    async def _send_claimed(
        self, req: SendRequest, key: str, ledger: IdempotencyLedger, claim: LedgerRecord
    ) -> ApiResponse:
        message = self._new_message(req, key, claim, ledger.mode)
        try:
            await self._messages.insert(message)
        except Exception as exc:  # nothing was sent: free the key so a retry (here or at the other endpoint) may send
            log_event("send.record_failed", level=logging.ERROR, endpoint=self.endpoint, error=type(exc).__name__)
            await self._finish(ledger.release(claim), "release")
            raise storage_unavailable() from None
        return await self._call_provider(req, ledger, claim, message)

    async def _call_provider(
        self, req: SendRequest, ledger: IdempotencyLedger, claim: LedgerRecord, message: dict[str, object]
    ) -> ApiResponse:
        if not await self._mark_call_began(ledger, claim):
            body = await self.resolve_not_sent(ledger, claim)  # the lease passed first: no call may begin now
            return ApiResponse(201, body)
        started = self._clock.monotonic()
        try:
            result = await self._provider.send(req, status_callback=self._callback_for(claim))
        except ProviderRejected as exc:
            return await self._rejected(message, ledger, claim, exc, started)
        except ProviderUnavailable as exc:
            return await self._unavailable(message, ledger, claim, exc, started)
        except Exception as exc:  # a bug or an unexpected client error: the message may have gone out
            log_event("send.provider_error", level=logging.ERROR, endpoint=self.endpoint, error=type(exc).__name__)
            return await self._unavailable(
                message, ledger, claim, ProviderUnavailable(type(exc).__name__, maybe_sent=True), started
            )
        return await self._sent(message, ledger, claim, result, started)

    async def _mark_call_began(self, ledger: IdempotencyLedger, claim: LedgerRecord) -> bool:
        """The call-began mark; a store that cannot take it means no call: the key is freed, 503, nothing sent."""
        try:
            return await ledger.mark_call_began(claim)
        except Exception as exc:
            log_event("send.mark_failed", level=logging.ERROR, endpoint=self.endpoint, error=type(exc).__name__)
            await self._finish(ledger.release(claim), "release")
            raise storage_unavailable() from None

    def _callback_for(self, claim: LedgerRecord) -> str | None:
        """This message's own status callback URL: Twilio signs the whole URL, so the id in it is as trustworthy as
        the callback, and a callback can resolve a message whose send answer never arrived."""
        if not self._status_callback_url:
            return None
        joiner = "&" if "?" in self._status_callback_url else "?"
        return f"{self._status_callback_url}{joiner}{urlencode({'message_id': claim.message_id})}"

    def _new_message(self, req: SendRequest, key: str, claim: LedgerRecord, ledger_mode: str) -> dict[str, object]:
        encoding, segments = encoding_and_segments(req.content, has_media=bool(req.media_urls))
        created = rfc3339(self._clock.time())
        return {
            "id": claim.message_id,
            "workspace_id": req.workspace_id,
            "to": req.to,
            "content": req.content,
            "contact_id": req.contact_id,
            "media_urls": list(req.media_urls),
            "status": "unknown",
            "endpoint": self.endpoint,
            "ledger": ledger_mode,
            "idempotency_key": key,
            "provider_message_id": None,
            "segments": segments,
            "encoding": encoding,
            "latency_ms": None,
            "error": None,
            "created_at": created,
            "updated_at": created,
            "requires_refresh": self.endpoint == "edge",
        }

    async def _sent(
        self,
        message: dict[str, object],
        ledger: IdempotencyLedger,
        claim: LedgerRecord,
        result: ProviderResult,
        started: float,
    ) -> ApiResponse:
        fields: dict[str, object] = {
            "status": _PROVIDER_STATUS.get(result.status, "queued"),
            "provider_message_id": result.sid,
            "latency_ms": self._elapsed_ms(started),
        }
        if result.num_segments:
            fields["segments"] = result.num_segments
        message = await self._conclude(message, fields, ledger, claim, complete=True)
        log_event("send.sent", endpoint=self.endpoint, workspace_id=claim.workspace_id, ledger=ledger.mode)
        return ApiResponse(201, message)

    async def _rejected(
        self,
        message: dict[str, object],
        ledger: IdempotencyLedger,
        claim: LedgerRecord,
        exc: ProviderRejected,
        started: float,
    ) -> ApiResponse:
        error = {"code": "provider_rejected", "message": exc.message, "provider_code": exc.code}
        fields = {"status": "failed", "error": error, "latency_ms": self._elapsed_ms(started)}
        await self._conclude(message, fields, ledger, claim, complete=False)  # nothing was sent: the key is free
        log_event("send.rejected", endpoint=self.endpoint, workspace_id=claim.workspace_id, provider_code=exc.code)
        raise ApiError(
            422,
            "provider_rejected",
            f"The SMS provider refused this message: {exc.message}",
            extra={"provider_code": exc.code},
        )

    async def _unavailable(
        self,
        message: dict[str, object],
        ledger: IdempotencyLedger,
        claim: LedgerRecord,
        exc: ProviderUnavailable,
        started: float,
    ) -> ApiResponse:
        latency = self._elapsed_ms(started)
        if exc.maybe_sent:
            error = {
                "code": "outcome_unknown",
                "message": f"The provider did not confirm the send ({exc.reason}); it may have been sent. "
                "It will not be re-sent automatically.",
            }
            fields = {"status": "unknown", "error": error, "latency_ms": latency}
            message = await self._conclude(message, fields, ledger, claim, complete=True)
            log_event("send.unknown", level=logging.WARNING, endpoint=self.endpoint, workspace_id=claim.workspace_id)
            return ApiResponse(201, message)
        error = {"code": "provider_unavailable", "message": exc.reason}
        fields = {"status": "failed", "error": error, "latency_ms": latency}
        await self._conclude(message, fields, ledger, claim, complete=False)
        log_event("send.unavailable", level=logging.WARNING, endpoint=self.endpoint, workspace_id=claim.workspace_id)
        raise ApiError(
            503,
            "provider_unavailable",
            "The SMS provider could not be reached; nothing was sent. Retry with the same Idempotency-Key.",
            headers={"Retry-After": "1"},
        )

    async def _conclude(
        self,
        message: dict[str, object],
        fields: dict[str, object],
        ledger: IdempotencyLedger,
        claim: LedgerRecord,
        *,
        complete: bool,
    ) -> dict[str, object]:
        """Apply the provider's answer to the message row, then complete (or release) the claim; a store failure is
        logged, never turned into a lie."""
        now = self._clock.time()
        updated = {**message, **fields, "updated_at": rfc3339(now)}
        what = "complete" if complete else "release"
        if self._settle is not None and ledger.standalone:
            release_allowed = complete or ledger.may_release(claim, now)
            conclusion = Conclusion(claim, fields, now, ledger_body(updated) if complete else None)
            step = self._settle(conclusion) if release_allowed else self._record(updated, fields, now)
            await self._finish(step, what)
        else:
            await self._record(updated, fields, now)
            step = ledger.complete(claim, ledger_body(updated)) if complete else ledger.release(claim)
            await self._finish(step, what)
        await self._observe(updated)
        return updated

    async def _record(self, updated: dict[str, object], fields: dict[str, object], now: float) -> None:
        try:
            await self._messages.update(str(updated["workspace_id"]), str(updated["id"]), fields, now)
        except Exception as exc:
            log_event("send.record_failed", level=logging.ERROR, endpoint=self.endpoint, error=type(exc).__name__)

    async def _observe(self, updated: dict[str, object]) -> None:
        if self._on_recorded is not None:
            try:
                await self._on_recorded(updated)
            except Exception as exc:
                log_event("send.observer_failed", level=logging.ERROR, error=type(exc).__name__)

    async def _finish(self, step: Awaitable[None], what: str) -> None:
        """Complete or release the claim. If that fails the send still stands: the lease then expires to unknown,
        which is the honest state for a key whose ledger entry could not be closed."""
        try:
            await step
        except Exception as exc:
            log_event(f"ledger.{what}_failed", level=logging.ERROR, endpoint=self.endpoint, error=type(exc).__name__)

    def _authenticate(self, request: ApiRequest) -> Principal:
        return verify_bearer(self._keys, request.headers.get("authorization"), now=self._clock.time())

    def _fleet_caller(self, request: ApiRequest) -> bool:
        return fleet_caller(self._keys, request.headers.get("authorization"), self._clock.time())

    def _elapsed_ms(self, started: float) -> float:
        return round((self._clock.monotonic() - started) * 1000, 3)


async def abandon_claim(execute: Execute, record: LedgerRecord, endpoint: str, error: BaseException) -> ApiError:
    """A `begin` that failed may have committed with its answer lost: free our claim (fenced; nothing was sent), so
    the retry the answer asks for is not held off for a lease and then told "unknown". The error to raise."""
    log_event("send.begin_failed", level=logging.ERROR, endpoint=endpoint, error=type(error).__name__)
    with contextlib.suppress(Exception):
        await execute(*release_call(record.workspace_id, record.key, record.updated_at, record.message_id))
    return storage_unavailable()


def bare_message(record: LedgerRecord) -> dict[str, object]:
    """The message as its ledger record alone knows it (this endpoint has no row of it): unknown."""
    created = rfc3339(record.created_at)
    return {
        "id": record.message_id,
        "workspace_id": record.workspace_id,
        "idempotency_key": record.key,
        "status": "unknown",
        "endpoint": record.endpoint,
        "requires_refresh": record.endpoint == "edge",
        "provider_message_id": None,
        "created_at": created,
        "updated_at": created,
        "error": {
            "code": "outcome_unknown",
            "message": "The send's lease ran out before it finished; it may or may not have been sent. "
            "It will not be re-sent automatically.",
        },
    }


async def settle_open_claim(
    ledger: IdempotencyLedger,
    messages: MessageStore,
    record: LedgerRecord,
    fields: dict[str, object],
    now: float,
) -> dict[str, object]:
    """Close a claim whose send never answered (lease over): `fields` (status, provider id, error: what is now known)
    applied to its row here, if this endpoint has one, and the claim completed with that body, fenced by its
    message id, so a second resolution of the same claim changes nothing. The message as answered.

    A `not_sent` settlement completes first and touches the row only if that completion applied: the store refuses
    it once a call-began mark exists (one may have committed since `record` was read), and then the key stays
    unknown, its row as it is, until the provider's record says what happened."""
    stored = await messages.get_by_key(record.workspace_id, record.key)
    base = stored if stored is not None and stored.get("id") == record.message_id else None
    body = {**(base or bare_message(record)), **fields, "updated_at": rfc3339(now)}
    try:
        if is_not_sent(body):
            await ledger.complete(record, ledger_body(body))
            if not await _completed_not_sent(ledger, record):
                log_event("ledger.not_sent_refused", level=logging.WARNING, workspace_id=record.workspace_id)
                current = await messages.get(record.workspace_id, record.message_id)
                return _public(current if current is not None else bare_message(record))
            if base is not None:
                await messages.update(record.workspace_id, record.message_id, fields, now)
            return _public(body)
        if base is not None:
            await messages.update(record.workspace_id, record.message_id, fields, now)
        await ledger.complete(record, ledger_body(body))
    except Exception as exc:  # the claim stays open: the next resolution round (or lookup) tries again
        log_event(
            "ledger.resolve_failed", level=logging.ERROR, workspace_id=record.workspace_id, error=type(exc).__name__
        )
    return _public(body)


async def _completed_not_sent(ledger: IdempotencyLedger, record: LedgerRecord) -> bool:
    """Whether this claim now stands completed as not sent: LedgerStore.complete says nothing of whether it applied,
    and a completed row of a claim never changes again, so reading it back answers."""
    current = await ledger.store.get(record.workspace_id, record.key)
    return (
        current is not None
        and current.state is LedgerState.COMPLETED
        and current.message_id == record.message_id
        and current.message is not None
        and is_not_sent(current.message)
    )


async def settle_not_sent(
    ledger: IdempotencyLedger, messages: MessageStore, record: LedgerRecord, now: float
) -> dict[str, object]:
    """settle_open_claim for a claim whose call never began: `failed` with the reason `not_sent`."""
    return await settle_open_claim(ledger, messages, record, {"status": "failed", "error": dict(NOT_SENT_ERROR)}, now)


NOT_SENT_ERROR = {
    "code": "not_sent",
    "message": "The send's lease ran out before its provider call began: it was not sent, and it will not be sent "
    "under this key. Send it again under a new key if it is still wanted.",
}


def storage_unavailable() -> ApiError:
    """The message could not be recorded before its provider call: nothing was sent."""
    return ApiError(
        503,
        "storage_unavailable",
        "This endpoint could not record the message; nothing was sent. Retry with the same Idempotency-Key.",
        headers={"Retry-After": "1"},
    )


def _allow(request: ApiRequest, *methods: str) -> None:
    if request.method not in methods:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here; use {' or '.join(methods)}.",
            headers={"Allow": ", ".join(methods)},
        )


def _workspace_of(principal: Principal) -> str:
    if principal.workspace_id is None:
        raise ApiError(403, "forbidden", "A service token cannot read messages; use a workspace token.")
    return principal.workspace_id


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _public(stored: dict[str, object]) -> dict[str, object]:
    """A stored row as the API answers it: without the store's change counter (`seq`, the sync feed's)."""
    return {k: v for k, v in stored.items() if k != "seq"}
