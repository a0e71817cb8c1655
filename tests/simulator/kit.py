"""Clients for the simulator suite: the simulator as Twilio's API, and a receiver for its status callbacks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import httpx2
from smsfailover.express_shim.devenv import DevSecrets


@dataclass(frozen=True, slots=True)
class Twilio:
    """A client of the simulator as Twilio's API, plus its test routes."""

    http: httpx2.Client
    secrets: DevSecrets

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.secrets.twilio_account_sid}/Messages.json"

    def create(self, **form: str | list[str]) -> httpx2.Response:
        fields = {"From": self.secrets.from_number, **form}
        return self.http.post(self.messages_path, data=fields)

    def fetch(self, sid: str) -> httpx2.Response:
        return self.http.get(self.messages_path.removesuffix(".json") + f"/{sid}.json")

    def received(self) -> dict[str, object]:
        body: dict[str, object] = self.http.get("/_sim/messages").json()
        return body

    def faults(self, **plan: object) -> None:
        self.http.post("/_sim/faults", json=plan).raise_for_status()


@dataclass(frozen=True, slots=True)
class Callback:
    url: str
    signature: str
    params: dict[str, str]


class CallbackReceiver:
    """A real HTTP server on an ephemeral port that records the status callbacks it gets."""

    def __init__(self) -> None:
        self.received: list[Callback] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                params = dict(parse_qsl(self.rfile.read(length).decode()))
                url = f"http://127.0.0.1:{receiver.port}{self.path}"
                receiver.received.append(Callback(url, self.headers.get("X-Twilio-Signature", ""), params))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_sid(self, sid: str, *, count: int, timeout_s: float = 10.0) -> list[Callback]:
        """Wait (bounded) until count callbacks for sid arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [c for c in self.received if c.params.get("MessageSid") == sid]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
