"""Delivery status: each accepted message advances queued -> sent -> delivered (or failed / undelivered for
the designated numbers) in a background task, calling its StatusCallback with Twilio-signed form posts.

Twilio posts a callback per status change and does not retry on the answer's status; neither does this.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2
from smsfailover.express_shim.simulator.config import SimulatorConfig
from smsfailover.express_shim.simulator.numbers import outcome_for
from smsfailover.express_shim.simulator.signature import twilio_signature
from smsfailover.express_shim.simulator.store import API_VERSION, CallbackAttempt, SimMessage

log = logging.getLogger("smsfailover.simulator")


def status_steps(message: SimMessage) -> list[str]:
    """The statuses after the first answer's: a Messaging Service send is `accepted`, then `queued`."""
    outcome = outcome_for(message.to)
    first = ["queued"] if message.status == "accepted" else []
    if outcome.status == "failed":
        return [*first, "failed"]
    return [*first, "sent", outcome.status]


def callback_params(message: SimMessage) -> dict[str, str]:
    params = {
        "AccountSid": message.account_sid,
        "ApiVersion": API_VERSION,
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": message.status,
        "SmsStatus": message.status,
        "To": message.to,
    }
    if message.from_:
        params["From"] = message.from_
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.error_code is not None:
        params["ErrorCode"] = str(message.error_code)
    return params


class StatusAdvancer:
    """Owns the background tasks; `aclose()` (the app's shutdown) cancels whatever is still running."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx2.AsyncClient | None = None

    def start(self, message: SimMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._advance(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def _advance(self, message: SimMessage) -> None:
        for status in status_steps(message):
            await asyncio.sleep(self._config.callback_delay_s)
            self._apply(message, status)
            if message.status_callback:
                await self._post(message)

    @staticmethod
    def _apply(message: SimMessage, status: str) -> None:
        now = time.time()
        message.status, message.updated_at = status, now
        if status == "sent":
            message.sent_at = now
        outcome = outcome_for(message.to)
        if status == outcome.status and outcome.error_code is not None:
            message.error_code, message.error_message = outcome.error_code, outcome.error_message

    async def _post(self, message: SimMessage) -> None:
        assert message.status_callback is not None
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=self._config.callback_timeout_s)
        params = callback_params(message)
        headers = {
            "X-Twilio-Signature": twilio_signature(message.status_callback, params, self._config.auth_token),
            "User-Agent": "TwilioProxy/1.1",
        }
        try:
            reply = await self._http.post(message.status_callback, data=params, headers=headers)
        except httpx2.HTTPError as exc:
            message.callbacks.append(CallbackAttempt(message.status, None, type(exc).__name__))
            log.info("status callback for %s failed: %s", message.sid, type(exc).__name__)
            return
        message.callbacks.append(CallbackAttempt(message.status, reply.status_code, None))
