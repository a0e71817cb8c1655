"""What the contract, end-to-end and fuzz suites share: tokens, a thin HTTP client, the simulator, checks.

Everything here speaks the public contract (shared/CONTRACT.md) over real HTTP; nothing imports the code under
test,
so the same checks hold for the origin, the edge and any future endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import jwt

T = TypeVar("T")

MESSAGE_ID = re.compile(r"^msg_[0-9A-HJKMNP-TV-Z]{26}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")
SEND_FIELDS = frozenset(
    {
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
    }
)
STATUSES = frozenset({"queued", "sent", "delivered", "failed", "undelivered", "unknown"})
VALID_TO = "+16266635938"
OTHER_VALID_TO = "+447911123456"


def new_workspace(prefix: str = "ws") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def new_key(prefix: str = "key") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def unique_content(label: str = "hello") -> str:
    """Message text with a marker, so a test can count its own messages at the shared simulator."""
    return f"{label} {uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Mints HS256 tokens the way CONTRACT §3 describes them, independently of the code under test."""

    secret: str
    service_key: str

    def workspace(self, workspace_id: str, *, ttl_s: float = 3600) -> str:
        claims = {"workspace_id": workspace_id, "exp": int(time.time() + ttl_s)}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def service(self, *, ttl_s: float = 3600) -> str:
        return jwt.encode({"role": "service", "exp": int(time.time() + ttl_s)}, self.service_key, algorithm="HS256")

    def operator(self, *, ttl_s: float = 3600) -> str:
        return jwt.encode({"role": "operator", "exp": int(time.time() + ttl_s)}, self.service_key, algorithm="HS256")

    def expired(self, workspace_id: str) -> str:
        return self.workspace(workspace_id, ttl_s=-120)

    def forged(self, workspace_id: str) -> str:
        """A well-formed token signed with another secret."""
        claims = {"workspace_id": workspace_id, "exp": int(time.time() + 3600)}
        return jwt.encode(claims, "not-the-secret-" + "x" * 32, algorithm="HS256")


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def send_body(workspace_id: str, *, to: str = VALID_TO, content: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"to": to, "workspace_id": workspace_id}
    body["content"] = unique_content() if content is None else content
    body.update(extra)
    return body


class Api:
    """One endpoint's HTTP API (origin or edge) as the contract describes it."""

    def __init__(self, name: str, base_url: str, tokens: Tokens, *, timeout_s: float = 15.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.http = httpx2.Client(base_url=self.base_url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        workspace_id: str,
        body: Mapping[str, Any] | None = None,
        *,
        key: str | None = "",
        token: str | None = "",
        raw: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> httpx2.Response:
        """POST /v1/messages. key "" mints a fresh key, None omits the header; token "" is the workspace's."""
        hdrs: dict[str, str | bytes] = {"Content-Type": "application/json"}
        hdrs.update(bearer(self.tokens.workspace(workspace_id) if token == "" else token))
        if key is not None:
            hdrs["Idempotency-Key"] = new_key() if key == "" else key
        hdrs.update(headers or {})
        content = raw if raw is not None else json.dumps(body or send_body(workspace_id)).encode()
        raw_headers = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in hdrs.items()]
        return self.http.post("/v1/messages", content=content, headers=raw_headers)

    def get(self, path: str, *, token: str | None = None, params: Mapping[str, str] | None = None) -> httpx2.Response:
        return self.http.get(path, headers=bearer(token), params=params)

    def ws_get(self, workspace_id: str, path: str, params: Mapping[str, str] | None = None) -> httpx2.Response:
        return self.get(path, token=self.tokens.workspace(workspace_id), params=params)

    def message_by_key(self, workspace_id: str, key: str) -> httpx2.Response:
        return self.ws_get(workspace_id, "/v1/messages", {"idempotency_key": key})


class EnabledEdgeApi(Api):
    """The edge's API for workspaces it holds as failover-enabled, as the contract suite needs it: before a
    workspace's first send the edge mirror is told `enabled` (the origin's failover switch does that in
    production). The edge refuses every other workspace with 403 failover_disabled (tests/e2e cover that)."""

    def __init__(self, base_url: str, tokens: Tokens) -> None:
        super().__init__("edge", base_url, tokens)
        self._enabled: set[str] = set()

    def send(self, workspace_id: str, body: Mapping[str, Any] | None = None, **kwargs: Any) -> httpx2.Response:
        if workspace_id not in self._enabled:
            mirror = {"sms_failover_enabled": True, "updated_at": int(time.time() * 1000)}
            put = self.http.put(
                f"/v1/settings-mirror/{workspace_id}", json=mirror, headers=bearer(self.tokens.service())
            )
            assert put.status_code == 200, put.text
            self._enabled.add(workspace_id)
        return super().send(workspace_id, body, **kwargs)


class Simulator:
    """The provider simulator's test API: what it received, and faults."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx2.Client(base_url=self.base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def messages(self) -> list[dict[str, Any]]:
        resp = self.http.get("/_sim/messages")
        resp.raise_for_status()
        items = resp.json()["messages"]
        assert isinstance(items, list)
        return [m for m in items if isinstance(m, dict)]

    def received(self, marker: str) -> list[dict[str, Any]]:
        """Messages whose body contains marker (each test tags its content with a unique marker)."""
        return [m for m in self.messages() if marker in str(m.get("body", ""))]

    def set_faults(self, **faults: Any) -> None:
        resp = self.http.post("/_sim/faults", json=faults)
        resp.raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults").raise_for_status()


def poll(probe: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.05, what: str = "condition") -> T:
    """Call probe until it returns something other than None; bounded by timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


async def apoll(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """The async twin of poll, for probes that go through the SDK."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)


def json_body(resp: httpx2.Response) -> dict[str, Any]:
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    assert "Traceback" not in resp.text
    body = resp.json()
    assert isinstance(body, dict), body
    return body


def assert_error(resp: httpx2.Response, status: int, code: str, *, field: str | None = None) -> dict[str, Any]:
    """The contract's error envelope, with the expected status, code and (when given) field."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = json_body(resp)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert error.get("code") == code, error
    assert isinstance(error.get("message"), str), error
    assert error["message"].strip(), error
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
    if field is not None:
        assert error.get("field") == field, error
    return error


def assert_rfc3339_utc(value: object) -> dt.datetime:
    assert isinstance(value, str), value
    assert RFC3339_UTC.fullmatch(value), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == dt.timedelta(0)
    return parsed


def assert_sent_message(body: Mapping[str, Any], *, endpoint: str, key: str | None = None) -> None:
    """A 201/200 body of POST /v1/messages, or a message object from a GET."""
    missing = SEND_FIELDS - set(body)
    assert not missing, (missing, body)
    assert MESSAGE_ID.fullmatch(str(body["id"])), body["id"]
    assert body["status"] in STATUSES, body
    assert body["endpoint"] == endpoint, body
    assert body["requires_refresh"] is (endpoint == "edge"), body
    assert body["ledger"] in {"edge", "local"}, body
    assert body["encoding"] in {"GSM-7", "UCS-2"}, body
    assert isinstance(body["segments"], int), body
    assert body["segments"] >= 0, body
    assert_rfc3339_utc(body["created_at"])
    if key is not None:
        assert body["idempotency_key"] == key
    assert "content" not in body or isinstance(body["content"], str)
