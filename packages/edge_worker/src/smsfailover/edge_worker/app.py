"""EdgeApp: everything the edge answers, as plain Python over injected storage, provider transport and clock.

    POST /v1/messages, GET /v1/messages/{id}, GET /v1/messages?idempotency_key=  core's MessageApi ("edge")
    GET  /v1/health                                          health, with every D1 shard and the configuration
    ledger, sync feed, settings mirror                       service_api.ServiceApi
    anything else                                            404 / 405 in the envelope
    scheduled()                                              the retention (retention.py): old ledger records,
                                                             and old message rows the origin has synced

Every ApiError becomes the contract's envelope; anything unexpected becomes a 500 envelope without details
(the log gets the exception type, never a token or message content).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from smsfailover.core import failover_reason
from smsfailover.core.auth import fleet_caller, not_configured
from smsfailover.core.clock import Clock
from smsfailover.core.errors import ApiError
from smsfailover.core.ledger import IdempotencyLedger
from smsfailover.core.log import log_event
from smsfailover.core.messages_api import ApiRequest, ApiResponse, Conclusion, MessageApi
from smsfailover.core.provider import HttpPoster, TwilioProvider
from smsfailover.core.ratelimit import TokenBucketLimiter
from smsfailover.core.sql import BatchExecutor, SqlLedgerStore, conclusion_calls
from smsfailover.edge_worker.config import EdgeConfig
from smsfailover.edge_worker.mirror import SettingsMirror
from smsfailover.edge_worker.retention import EdgeRetention, PurgeResult
from smsfailover.edge_worker.routing import Route, Router
from smsfailover.edge_worker.send_ledger import FAILOVER_REASON, SendOpening
from smsfailover.edge_worker.service_api import ServiceApi
from smsfailover.edge_worker.shards import ShardedLedgerStore, ShardedMessageStore, Shards
from smsfailover.edge_worker.sync import SyncFeed

VERSION = "0.1.0"


class EdgeApp:
    def __init__(
        self,
        *,
        config: EdgeConfig,
        db: BatchExecutor | Sequence[BatchExecutor],
        poster: HttpPoster,
        clock: Clock,
        shard_names: Sequence[str] | None = None,
    ) -> None:
        """`db`: the D1 database, or the shards in shard order (shards.py)."""
        self._config = config
        self._shards = shards = Shards(list(db) if isinstance(db, Sequence) else [db], shard_names)
        self._clock = clock
        self._ledger_store = ShardedLedgerStore(shards, [SqlLedgerStore(d) for d in shards.databases])
        self._retention = EdgeRetention(shards, clock, config.retention_s)
        keys = config.signing_keys
        self._key_problems = config.key_problems()  # the config is fixed for the isolate's life: checked once
        # lookups and judging; the edge's own sends claim through SendOpening, enabled workspaces only (send_ledger.py)
        ledger = IdempotencyLedger(self._ledger_store, clock, lease_s=config.lease_s, owner="edge")
        messages = ShardedMessageStore(shards)

        async def settle(conclusion: Conclusion) -> None:
            """A send's row update and its claim's completion (or release): one D1 batch in the key's shard."""
            claim = conclusion.claim
            index = shards.index(claim.workspace_id, claim.key)
            await shards.batch(
                index,
                conclusion_calls(claim, conclusion.fields, conclusion.now, conclusion.message),
                round(conclusion.now * 1000),
            )

        async def ledger_for(workspace_id: str) -> IdempotencyLedger:
            return ledger  # the edge always uses its own D1 ledger

        self._messages = MessageApi(
            endpoint="edge",
            ledger_for=ledger_for,
            messages=messages,
            provider=TwilioProvider(
                poster,
                base_url=config.provider_url,
                account_sid=config.account_sid or "",
                auth_token=config.auth_token or "",
                from_number=config.from_number,
                messaging_service_sid=config.messaging_service_sid,
                timeout_s=config.provider_timeout_s,
            ),
            keys=keys,
            clock=clock,
            limiter=TokenBucketLimiter(rate=config.rate_limit, clock=clock),
            version=VERSION,
            status_callback_url=config.status_callback_url,
            health=self._health,
            settle=settle,
            begin=SendOpening(shards, ledger),
        )
        service = ServiceApi(
            ledger=self._ledger_store,
            shards=shards,
            feed=SyncFeed(shards, clock),
            mirror=SettingsMirror(shards.databases),
            keys=keys,
            clock=clock,
        )
        self._router = Router(
            [
                Route("GET", "/v1/health"),
                Route("POST", "/v1/messages"),
                Route("GET", "/v1/messages"),
                Route("GET", "/v1/messages/{id}"),
                Route("POST", "/v1/ledger/claim", service.claim),
                Route("POST", "/v1/ledger/batch", service.batch),
                Route("POST", "/v1/ledger/complete", service.complete),
                Route("POST", "/v1/ledger/release", service.release),
                Route("POST", "/v1/ledger/reconcile", service.reconcile),
                Route("GET", "/v1/ledger/ping", service.ping),
                Route("GET", "/v1/ledger/{ws}/{key}", service.get_record),
                Route("GET", "/v1/sync/messages", service.sync_messages),
                Route("PUT", "/v1/settings-mirror/{ws}", service.put_settings),
                Route("GET", "/v1/workspaces/{ws}/settings", service.get_settings),
            ]
        )

    async def handle(self, request: ApiRequest) -> ApiResponse:
        if request.method == "HEAD":  # answered as GET; the runtime drops the body of a HEAD response
            request = dataclasses.replace(request, method="GET")
        try:
            return await self._dispatch(request)
        except ApiError as exc:
            return ApiResponse(exc.status, exc.envelope(), dict(exc.headers))
        except Exception as exc:  # the one place an unexpected error becomes a 500 envelope
            log_event("edge.unhandled_error", level=logging.ERROR, error=type(exc).__name__, path=request.path)
            error = ApiError(500, "internal_error", "The edge could not handle this request; try again.")
            return ApiResponse(500, error.envelope(), {})

    async def _dispatch(self, request: ApiRequest) -> ApiResponse:
        match = self._router.match(request.method, request.path)
        if match.route.template != "/v1/health":
            if self._key_problems:
                log_event("edge.not_configured", level=logging.ERROR, problems="; ".join(self._key_problems))
                raise not_configured()
            await self._check_shards(request)
        if match.route.handler is not None:
            return await match.route.handler(request, match.params)
        # Why the router sent this here (core/failover_reason.py): checked, then stored with the message it sends.
        given = FAILOVER_REASON.set(failover_reason.parse(request.headers.get(failover_reason.HEADER_LOWER)))
        try:
            response = await self._messages.handle(request)
        finally:
            FAILOVER_REASON.reset(given)
        if response is None:  # MessageApi knows its routes; the router lists the same ones
            raise ApiError(404, "not_found", f"There is no route {request.path} on the edge.")
        return response

    async def _check_shards(self, request: ApiRequest) -> None:
        """Every route but health needs each D1 database to be the shard the configuration says (shards.py)."""
        problem = await self._shards.verify(round(self._clock.time() * 1000))
        if problem:
            log_event("edge.not_configured", level=logging.ERROR, problems=problem)
            fleet = fleet_caller(self._config.signing_keys, request.headers.get("authorization"), self._clock.time())
            raise not_configured(problem if fleet else None)

    async def _health(self, detailed: bool) -> dict[str, object]:
        """GET /v1/health (through MessageApi): degraded while the edge cannot send; the reasons name configuration,
        so only a service or operator token sees them (`detailed`)."""
        problems = list(self._config.problems())
        shards = await self._shards.health()
        problems += [f"D1 {s['binding']} is unreachable ({s['error']})" for s in shards if not s["ok"]]
        status = "degraded" if problems else "ok"
        body: dict[str, object] = {
            "status": status,
            "endpoint": "edge",
            "version": VERSION,
            "ledger": "edge",
            "shards": len(shards),
        }
        if problems and detailed:
            body["problems"] = problems
        return body

    async def scheduled(self) -> PurgeResult:
        """The Cron Trigger: drop ledger records older than the retention (never less than 24 h), and message rows
        as old that the origin has synced (retention.py). A failed statement raises PurgeFailed once the rest ran,
        so the invocation shows as failed."""
        purged = await self._retention.purge()
        log_event("edge.purge", ledger_records=purged.ledger_records, messages=purged.messages)
        return purged
