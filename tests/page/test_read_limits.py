"""The status route and the settings page's live poll are rate limited per workspace: 429 rate_limited with
Retry-After in the contract's envelope, never for pages polling every 2.5 s in up to a dozen tabs. The limiter's clock
is a ManualClock: nothing here sleeps or depends on how fast the requests go."""

from __future__ import annotations

import httpx2
import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.errors import ApiError
from smsfailover.express_shim.read_limits import LIVE, STATUS, ReadLimiter

from tests.page.conftest import PAGE, PageOrigin, signed_in

RATE = 5.0  # the default SMSFAILOVER_STATUS_RATE_LIMIT
BURST = 10


@pytest.fixture
def clock(page_origin: PageOrigin) -> ManualClock:
    """The origin's read limiter, on a clock the test moves."""
    manual = ManualClock()
    services = page_origin.services
    services.read_limiter = ReadLimiter(rate=RATE, clock=manual, on_refused=services.metrics.rate_limited.inc)
    return manual


def _status_url(ws: str) -> str:
    return f"/v1/workspaces/{ws}/sms-failover/status"


async def _status(origin: PageOrigin, http: httpx2.AsyncClient, ws: str) -> httpx2.Response:
    return await http.get(_status_url(ws), headers={"authorization": f"Bearer {origin.token(ws)}"})


def _assert_rate_limited(resp: httpx2.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["retry-after"] == "1"
    error = resp.json()["error"]
    assert error["code"] == "rate_limited"
    assert "retry after 1 s" in error["message"]


async def test_status_answers_429_with_retry_after_past_the_burst(page_origin: PageOrigin, clock: ManualClock) -> None:
    async with page_origin.client() as http:
        for _ in range(BURST):
            assert (await _status(page_origin, http, "ws_busy")).status_code == 200
        _assert_rate_limited(await _status(page_origin, http, "ws_busy"))
        assert (await _status(page_origin, http, "ws_other")).status_code == 200  # per workspace
        clock.advance(1 / RATE)  # one call's worth of time: one more call
        assert (await _status(page_origin, http, "ws_busy")).status_code == 200
        _assert_rate_limited(await _status(page_origin, http, "ws_busy"))


async def test_calls_without_the_workspaces_token_do_not_spend_its_budget(
    page_origin: PageOrigin, clock: ManualClock
) -> None:
    async with page_origin.client() as http:
        for _ in range(3 * BURST):
            refused = await http.get(_status_url("ws_a"), headers={"authorization": "Bearer not-a-token"})
            assert refused.status_code == 401
        assert (await _status(page_origin, http, "ws_a")).status_code == 200


async def test_the_live_poll_answers_429_in_the_envelope_and_has_its_own_budget(
    page_origin: PageOrigin, clock: ManualClock
) -> None:
    async with page_origin.client() as http:
        await signed_in(page_origin, http, "ws_page")
        for _ in range(BURST):
            assert (await http.get(f"{PAGE}/live", params={"workspace": "ws_page"})).status_code == 200
        _assert_rate_limited(await http.get(f"{PAGE}/live", params={"workspace": "ws_page"}))
        # a script spending the API's budget does not blank the page, nor the page the API's
        assert (await _status(page_origin, http, "ws_page")).status_code == 200


def test_pages_polling_every_2_5_s_never_hit_the_limit() -> None:
    clock = ManualClock()
    limiter = ReadLimiter(rate=RATE, clock=clock)
    for _ in range(240):  # ten minutes of ten tabs polling at the same instants (the worst case for the burst)
        for _tab in range(10):
            limiter.check(LIVE, "ws_in_step")
        clock.advance(2.5)
    for _ in range(12 * 240):  # and of a dozen tabs, each at its own moment: 4.8 polls a second
        limiter.check(LIVE, "ws_spread")
        clock.advance(2.5 / 12)
    for _ in range(BURST):
        limiter.check(STATUS, "ws_in_step")  # the API's own budget is untouched
    with pytest.raises(ApiError) as refused:
        limiter.check(STATUS, "ws_in_step")
    assert (refused.value.status, refused.value.headers) == (429, {"Retry-After": "1"})
