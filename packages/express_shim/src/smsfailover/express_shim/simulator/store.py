"""What the simulator received: one record per accepted message, in arrival order, in memory."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

API_VERSION = "2010-04-01"


def new_message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def rfc2822(epoch_s: float) -> str:
    """Twilio's date format: `Thu, 24 Aug 2023 05:01:45 +0000`."""
    return format_datetime(datetime.fromtimestamp(epoch_s, UTC).replace(microsecond=0)).replace("-0000", "+0000")


@dataclass(slots=True)
class CallbackAttempt:
    status: str
    http_status: int | None
    error: str | None


@dataclass(slots=True)
class SimMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    num_segments: int
    status_callback: str | None
    created_at: float
    status: str
    updated_at: float
    sent_at: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    callbacks: list[CallbackAttempt] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def twilio_resource(self) -> dict[str, object]:
        """The message as Twilio's API returns it (counts are strings there, as in Twilio's JSON)."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.created_at),
            "date_sent": rfc2822(self.sent_at) if self.sent_at is not None else None,
            "date_updated": rfc2822(self.updated_at),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }


class MessageLog:
    def __init__(self) -> None:
        self._messages: dict[str, SimMessage] = {}

    def add(self, message: SimMessage) -> None:
        self._messages[message.sid] = message

    def get(self, sid: str) -> SimMessage | None:
        return self._messages.get(sid)

    def newest_first(self, account_sid: str) -> list[SimMessage]:
        """The account's messages, newest first (the order of Twilio's list); a later arrival first on a tie."""
        mine = [m for m in reversed(self._messages.values()) if m.account_sid == account_sid]
        return sorted(mine, key=lambda m: m.created_at, reverse=True)

    def clear(self) -> int:
        count = len(self._messages)
        self._messages.clear()
        return count

    def listing(self) -> dict[str, object]:
        """Everything received, with how often each To+Body arrived: a duplicate is a second arrival."""
        per_pair = Counter((m.to, m.body) for m in self._messages.values())
        messages = [
            {
                **m.twilio_resource(),
                "media_urls": list(m.media_urls),
                "status_callback": m.status_callback,
                "same_to_and_body": per_pair[(m.to, m.body)],
                "callbacks": [
                    {"status": c.status, "http_status": c.http_status, "error": c.error} for c in m.callbacks
                ],
            }
            for m in self._messages.values()
        ]
        return {
            "count": len(messages),
            "duplicates": sum(n - 1 for n in per_pair.values()),
            "by_to_and_body": [{"to": to, "body": body, "count": n} for (to, body), n in per_pair.items()],
            "messages": messages,
        }
