"""A small real HTTP server speaking the part of Twilio's Messages API the edge uses.

It records what it received (never logs it) and can be told to reject, fail or stall the next sends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT_SID = "AC00000000000000000000000000000000"
AUTH_TOKEN = "test-auth-token"
FROM = "+15005550006"


@dataclass
class Fault:
    status: int = 500
    body: dict[str, Any] = field(default_factory=lambda: {"code": 20500, "message": "Internal Server Error"})
    delay_s: float = 0.0


@dataclass
class Received:
    path: str
    fields: dict[str, list[str]]
    authorized: bool


class FakeProvider:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self) -> list[str]:
        with self._lock:
            return [r.fields.get("Body", [""])[0] for r in self.received]

    def count(self, body: str) -> int:
        return self.bodies().count(body)

    @contextmanager
    def fault(self, fault: Fault, times: int = 1) -> Iterator[None]:
        with self._lock:
            self.faults.extend([fault] * times)
        try:
            yield
        finally:
            with self._lock:
                self.faults.clear()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # message content stays out of logs
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                authorized = self.headers.get("authorization") == f"Basic {expected}"
                fault = provider._next_fault()
                if fault is not None:
                    if fault.status < 300:  # a slow success: the message goes out, the answer comes late
                        provider._record(Received(self.path, urllib.parse.parse_qs(raw), authorized))
                    if fault.delay_s:
                        time.sleep(fault.delay_s)
                    with contextlib.suppress(OSError):  # the caller may have given up by now
                        self._reply(fault.status, fault.body)
                    return
                if not authorized:
                    self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                    return
                fields = urllib.parse.parse_qs(raw)
                provider._record(Received(self.path, fields, authorized))
                self._reply(
                    201,
                    {
                        "sid": "SM" + uuid.uuid4().hex,
                        "status": "queued",
                        "num_segments": "1",
                        "to": fields.get("To", [""])[0],
                    },
                )

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
