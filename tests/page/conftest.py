"""The origin with the settings page mounted, in the test's loop (uvicorn on an ephemeral port), over SQLite
and the small fake edge: what the page's plain-HTTP tests talk to."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import jwt
import pytest
from smsfailover.express_shim import settings_page
from smsfailover.express_shim.app import create_app
from smsfailover.express_shim.config import OriginConfig
from smsfailover.express_shim.devenv import DevSecrets
from smsfailover.express_shim.services import OriginServices
from smsfailover.express_shim.storage.base import Database
from smsfailover.express_shim.storage.sqlite import SqliteDatabase
from starlette.applications import Starlette

from tests.origin.fake_edge import FakeEdgeState, fake_edge
from tests.origin.servers import free_port, serve

PAGE = settings_page.PAGE_PATH
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class PageOrigin:
    url: str
    app: Starlette
    secret: str
    service_key: str
    edge: FakeEdgeState

    @property
    def services(self) -> OriginServices:
        services: OriginServices = self.app.state.services
        return services

    def token(self, ws: str, *, ttl_s: float = 3600) -> str:
        return jwt.encode({"workspace_id": ws, "exp": int(time.time() + ttl_s)}, self.secret, "HS256")

    def operator_token(self, *, ttl_s: float = 3600) -> str:
        return jwt.encode({"role": "operator", "exp": int(time.time() + ttl_s)}, self.service_key, "HS256")

    def client(self) -> httpx2.AsyncClient:
        """A browser-like client: its own cookie jar, no redirects followed (tests look at them)."""
        return httpx2.AsyncClient(base_url=self.url, timeout=10, follow_redirects=False)


def csrf_from(html: str) -> str:
    match = _CSRF_INPUT.search(html)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


async def signed_in(origin: PageOrigin, http: httpx2.AsyncClient, ws: str, token: str | None = None) -> str:
    """Sign http in to ws through the form (with ws's token unless another is given); returns the CSRF token its
    pages carry from then on (sign-in replaces it)."""
    form_page = await http.get(PAGE, params={"workspace": ws})
    csrf = csrf_from(form_page.text)
    data = {"workspace": ws, "token": token or origin.token(ws), "csrf_token": csrf}
    resp = await http.post(f"{PAGE}/session", data=data)
    assert resp.status_code == 303, resp.text
    return csrf_from((await http.get(PAGE, params={"workspace": ws})).text)


@pytest.fixture
async def page_origin(tmp_path: Path) -> AsyncIterator[PageOrigin]:
    async with page_origin_with(tmp_path) as origin:
        yield origin


@contextlib.asynccontextmanager
async def page_origin_with(tmp_path: Path, **overrides: object) -> AsyncIterator[PageOrigin]:
    """The page's origin; `overrides` change its OriginConfig (env, public_url, ...)."""
    secrets = DevSecrets.generate()
    edge_state = FakeEdgeState()

    async def open_db() -> Database:
        return SqliteDatabase(str(tmp_path / "origin.db"))

    async with serve(fake_edge(edge_state)) as edge_url:
        port = free_port()
        config = OriginConfig(
            jwt_secret=secrets.jwt_secret,
            service_key=secrets.service_key,
            env="development",  # plain http on 127.0.0.1: cookies without Secure (test_page_session: elsewhere)
            origin_url=f"http://127.0.0.1:{port}",
            edge_url=edge_url,
            provider_url="http://127.0.0.1:9",  # nothing is sent in these tests
            twilio_account_sid=secrets.twilio_account_sid,
            twilio_auth_token=secrets.twilio_auth_token,
            from_number=secrets.from_number,
            edge_timeout_s=0.5,
            outbox_interval_s=0.05,
            probe_interval_s=0.1,
            status_rate_limit=1000.0,  # tests poll /live every 20 ms; the limit's own tests: test_read_limits.py
        )
        config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
        app = create_app(config, extra_routes=settings_page.routes(), open_db=open_db)
        async with serve(app, port) as url:
            yield PageOrigin(url, app, secrets.jwt_secret, secrets.service_key, edge_state)
