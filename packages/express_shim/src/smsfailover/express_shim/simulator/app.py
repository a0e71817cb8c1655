"""The simulator's Starlette app: Twilio's Messages routes and the /_sim test routes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from smsfailover.express_shim.simulator.callbacks import StatusAdvancer
from smsfailover.express_shim.simulator.config import SimulatorConfig
from smsfailover.express_shim.simulator.connections import ConnectionRegistry, client_address
from smsfailover.express_shim.simulator.errors import TwilioError, error_for_status
from smsfailover.express_shim.simulator.faults import FaultDice, FaultPlanError, parse_plan
from smsfailover.express_shim.simulator.listing import list_page, parse_query
from smsfailover.express_shim.simulator.numbers import check_sender, check_to
from smsfailover.express_shim.simulator.segments import num_segments
from smsfailover.express_shim.simulator.store import API_VERSION, MessageLog, SimMessage, new_message_sid
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
RESET_WAIT_ROUNDS = 100  # event-loop turns to let uvicorn notice the aborted connection


class Simulator:
    """The simulator's state, shared by its routes."""

    def __init__(self, config: SimulatorConfig, connections: ConnectionRegistry | None) -> None:
        self.config = config
        self.connections = connections
        self.messages = MessageLog()
        self.faults = FaultDice()
        self.advancer = StatusAdvancer(config)

    def authenticate(self, request: Request, account_sid: str) -> None:
        """HTTP Basic with the account SID and auth token, compared in constant time (20003 otherwise)."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        expected = f"{self.config.account_sid}:{self.config.auth_token}".encode()
        given = f"{user}:{password}".encode()
        ok = scheme.lower() == "basic" and hmac.compare_digest(given, expected)
        if not ok or account_sid != self.config.account_sid:
            raise TwilioError(20003, "Authenticate", 401)

    async def before(self, request: Request, *, create: bool) -> Response | None:
        """Apply outage and error faults; an answer returned here replaces the route's work."""
        plan = self.faults.plan
        if plan.outage == "reset":
            return await self._reset(request)
        if plan.outage == "503":
            return error_for_status(503).response()
        if self.faults.hits():
            if create and plan.reject_code is not None:
                return TwilioError(plan.reject_code, f"Simulated rejection {plan.reject_code}").response()
            if plan.status is not None:
                return error_for_status(plan.status).response()
        return None

    async def _reset(self, request: Request) -> Response:
        if self.connections is None or not self.connections.reset(client_address(dict(request.scope))):
            # Not served by the simulator's own server (e.g. an in-process test client): a 503 is the nearest.
            return error_for_status(503).response()
        for _ in range(RESET_WAIT_ROUNDS):
            if await request.is_disconnected():
                break
            await asyncio.sleep(0)
        return Response(status_code=503)  # never reaches the peer: its connection is gone

    async def late(self, *, create: bool) -> None:
        delay = self.faults.delay_s(create=create)
        if delay > 0:
            await asyncio.sleep(delay)


def _sim(request: Request) -> Simulator:
    sim: Simulator = request.app.state.simulator
    return sim


def _check_url(field: str, url: str, code: int) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TwilioError(code, f"The {field} URL {url!r} is not a valid URL.")


async def create_message(request: Request) -> Response:
    sim = _sim(request)
    account_sid = request.path_params["account_sid"]
    sim.authenticate(request, account_sid)
    if (answer := await sim.before(request, create=True)) is not None:
        return answer
    form = await request.form()
    text = {key: str(form.get(key, "")).strip() for key in ("To", "From", "MessagingServiceSid", "StatusCallback")}
    body = str(form.get("Body", ""))
    media = tuple(str(url) for url in form.getlist("MediaUrl"))
    check_to(text["To"])
    check_sender(text["From"], text["MessagingServiceSid"])
    if not body.strip() and not media:
        raise TwilioError(21602, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        raise TwilioError(21617, "The concatenated message body exceeds the 1600 character limit.")
    if len(media) > MAX_MEDIA:
        raise TwilioError(21623, "Number of media files exceeds allowed limit.")
    for url in media:
        _check_url("media", url, 21620)
    if text["StatusCallback"]:
        _check_url("StatusCallback", text["StatusCallback"], 21609)
    now = time.time()
    message = SimMessage(
        sid=new_message_sid(),
        account_sid=account_sid,
        to=text["To"],
        from_=text["From"] or None,
        messaging_service_sid=text["MessagingServiceSid"] or None,
        body=body,
        media_urls=media,
        num_segments=num_segments(body),
        status_callback=text["StatusCallback"] or None,
        created_at=now,
        # Through a Messaging Service a message is first "accepted", then queued for a sender.
        status="queued" if text["From"] else "accepted",
        updated_at=now,
    )
    sim.messages.add(message)
    answer_body = message.twilio_resource()  # the status as of acceptance, even if the answer comes late
    sim.advancer.start(message)
    await sim.late(create=True)
    return JSONResponse(answer_body, status_code=201)


async def fetch_message(request: Request) -> Response:
    sim = _sim(request)
    account_sid = request.path_params["account_sid"]
    sim.authenticate(request, account_sid)
    if (answer := await sim.before(request, create=False)) is not None:
        return answer
    await sim.late(create=False)
    message = sim.messages.get(request.path_params["sid"])
    if message is None or message.account_sid != account_sid:
        raise TwilioError(20404, f"The requested resource {request.url.path} was not found", 404)
    return JSONResponse(message.twilio_resource())


async def list_messages(request: Request) -> Response:
    """Twilio's Messages list: filtered, newest first, a page at a time (listing.py)."""
    sim = _sim(request)
    account_sid = request.path_params["account_sid"]
    sim.authenticate(request, account_sid)
    if (answer := await sim.before(request, create=False)) is not None:
        return answer
    await sim.late(create=False)
    query = parse_query(request.query_params)
    path = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
    return JSONResponse(list_page(sim.messages.newest_first(account_sid), query, path=path))


async def list_received(request: Request) -> Response:
    return JSONResponse(_sim(request).messages.listing())


async def clear_received(request: Request) -> Response:
    return JSONResponse({"cleared": _sim(request).messages.clear()})


async def get_faults(request: Request) -> Response:
    return JSONResponse({"faults": _sim(request).faults.plan.describe()})


async def set_faults(request: Request) -> Response:
    try:
        raw = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _sim_error(400, "invalid_json", "the body must be a JSON object of faults")
    if not isinstance(raw, dict):
        return _sim_error(400, "invalid_json", "the body must be a JSON object of faults")
    try:
        plan = parse_plan(raw)
    except FaultPlanError as exc:
        return _sim_error(422, "invalid_fault", str(exc), field=exc.field)
    _sim(request).faults.set(plan)
    return JSONResponse({"faults": plan.describe()})


async def clear_faults(request: Request) -> Response:
    sim = _sim(request)
    sim.faults.set(parse_plan({}))
    return JSONResponse({"faults": sim.faults.plan.describe()})


def _sim_error(status: int, code: str, message: str, *, field: str | None = None) -> JSONResponse:
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return JSONResponse({"error": error}, status_code=status)


async def _twilio_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TwilioError)
    return exc.response()


SIM_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing and parsing errors, in the shape of whichever API the path belongs to."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if request.url.path.startswith("/_sim/"):
        return _sim_error(status, SIM_CODES.get(status, "error"), str(exc.detail))
    if status == 404:
        return TwilioError(20404, f"The requested resource {request.url.path} was not found", 404).response()
    if status == 405:
        return TwilioError(20004, "Method not allowed", 405).response()
    return TwilioError(20001 if status == 400 else 20500, str(exc.detail), status).response()


def create_app(config: SimulatorConfig, *, connections: ConnectionRegistry | None = None) -> Starlette:
    simulator = Simulator(config, connections)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await simulator.advancer.aclose()

    base = "/2010-04-01/Accounts/{account_sid}/Messages"
    app = Starlette(
        routes=[
            Route(base + ".json", create_message, methods=["POST"]),
            Route(base + ".json", list_messages, methods=["GET"]),
            Route(base + "/{sid}.json", fetch_message, methods=["GET"]),
            Route("/_sim/messages", list_received, methods=["GET"]),
            Route("/_sim/messages", clear_received, methods=["DELETE"]),
            Route("/_sim/faults", get_faults, methods=["GET"]),
            Route("/_sim/faults", set_faults, methods=["POST"]),
            Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        ],
        exception_handlers={TwilioError: _twilio_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.simulator = simulator
    return app
