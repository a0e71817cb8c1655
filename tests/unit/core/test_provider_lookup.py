"""Looking an unknown outcome up at the provider: the matcher (a table), the list's parsing, and
TwilioProvider.list_messages / find_unknown over a scripted GET (and HttpxPoster.get over MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from smsfailover.core.clock import ManualClock
from smsfailover.core.provider import (
    ConnectFailed,
    HttpReply,
    HttpxPoster,
    ReplyLost,
    TwilioProvider,
)
from smsfailover.core.provider_lookup import (
    LOOKUP_SKEW_S,
    TRIAL_PREFIX,
    Ambiguous,
    Found,
    LookupFailed,
    LookupResult,
    Match,
    NotFound,
    ProviderLookupError,
    ProviderMessage,
    contract_status,
    match_unknown,
    parse_page,
)

TO = "+16266635938"
OURS = "+15005550006"
SERVICE = "MG" + "1" * 32
BASE = "https://api.twilio.test"
LIST = f"{BASE}/2010-04-01/Accounts/AC123/Messages.json"
T0 = 1_800_000_000.0  # the provider call began
T1 = T0 + 30.0  # the claim's lease ended


def msg(sid: str, *, created: float = T0 + 1, body: str = "hello", **changes: object) -> ProviderMessage:
    base = ProviderMessage(
        sid=sid,
        status="delivered",
        provider_status="delivered",
        to=TO,
        from_=OURS,
        messaging_service_sid=None,
        body=body,
        date_created=created,
        date_sent=created + 1,
        error_code=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def match(candidates: Sequence[ProviderMessage], **overrides: object) -> Match:
    options: dict[str, object] = {
        "body": "hello",
        "from_number": OURS,
        "messaging_service_sid": None,
        "window_start": T0,
        "window_end": T1,
    }
    options.update(overrides)
    return match_unknown(candidates, **options)  # type: ignore[arg-type]


# ---- the matcher ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "overrides", "expected"),
    [
        pytest.param([], {}, NotFound(), id="nothing to this number"),
        pytest.param([msg("SM1")], {}, Found(msg("SM1")), id="one match"),
        pytest.param([msg("SM2", created=T0 + 5), msg("SM1")], {}, Ambiguous(("SM2", "SM1")), id="two identical"),
        pytest.param([msg("SM1", body="hello!")], {}, NotFound(), id="another body"),
        pytest.param([msg("SM1", body="Hello")], {}, NotFound(), id="bodies compare exactly"),
        pytest.param(
            [msg("SM1", body=TRIAL_PREFIX + "hello")],
            {},
            Found(msg("SM1", body=TRIAL_PREFIX + "hello")),
            id="a trial account's prefix",
        ),
        pytest.param([msg("SM1", created=T0 - LOOKUP_SKEW_S - 1)], {}, NotFound(), id="same body before the window"),
        pytest.param([msg("SM1", created=T1 + LOOKUP_SKEW_S + 1)], {}, NotFound(), id="same body after the window"),
        pytest.param(
            [msg("SM1", created=T0 - LOOKUP_SKEW_S)],
            {},
            Found(msg("SM1", created=T0 - LOOKUP_SKEW_S)),
            id="the skew's edge is inside",
        ),
        pytest.param([msg("SM1", created=T0 - 5)], {"skew_s": 0.0}, NotFound(), id="no skew"),
        pytest.param(
            [msg("SM2", created=T1 + 600), msg("SM1"), msg("SM0", created=T0 - 600)],
            {},
            Found(msg("SM1")),
            id="identical bodies outside the window do not count",
        ),
        pytest.param([msg("SM1", from_="+15005550099")], {}, NotFound(), id="another sender"),
        pytest.param(
            [msg("SM1", from_="+14155550123", messaging_service_sid=SERVICE)],
            {"from_number": None, "messaging_service_sid": SERVICE},
            Found(msg("SM1", from_="+14155550123", messaging_service_sid=SERVICE)),
            id="through our messaging service (Twilio picked the number)",
        ),
        pytest.param(
            [msg("SM1", from_=None, messaging_service_sid=SERVICE)],
            {"from_number": None, "messaging_service_sid": SERVICE},
            Found(msg("SM1", from_=None, messaging_service_sid=SERVICE)),
            id="through our messaging service, still accepted",
        ),
        pytest.param(
            [msg("SM1", from_=None, messaging_service_sid="MG" + "2" * 32)],
            {"from_number": None, "messaging_service_sid": SERVICE},
            NotFound(),
            id="another messaging service",
        ),
        pytest.param([msg("SM1")], {"from_number": None}, NotFound(), id="no sender of ours to match"),
        pytest.param([msg("SM1", to="+16266635939")], {"to": TO}, NotFound(), id="another recipient"),
        pytest.param(
            [msg("SM2"), msg("SM1")], {"exclude_sids": {"SM2"}}, Found(msg("SM1")), id="a sid another key already holds"
        ),
        pytest.param([msg("SM1"), msg("SM1")], {}, Found(msg("SM1")), id="a message seen on two pages is one"),
        pytest.param([msg("SM1", body="")], {"body": ""}, Found(msg("SM1", body="")), id="media alone"),
    ],
)
def test_match_unknown(candidates: list[ProviderMessage], overrides: dict[str, object], expected: Match) -> None:
    assert match(candidates, **overrides) == expected


def test_a_window_that_ends_before_it_starts_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="ends before"):
        match([], window_start=T1, window_end=T0)


# ---- parsing the list -------------------------------------------------------------------------------------------


def rfc2822(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC)).replace("-0000", "+0000")


def resource(sid: str, *, created: float = T0 + 1, status: str = "delivered", **fields: object) -> dict[str, object]:
    sent = None if status in ("queued", "accepted", "failed") else rfc2822(created + 1)
    data: dict[str, object] = {
        "sid": sid,
        "status": status,
        "to": TO,
        "from": OURS,
        "messaging_service_sid": None,
        "body": "hello",
        "date_created": rfc2822(created),
        "date_sent": sent,
        "date_updated": rfc2822(created + 2),
        "error_code": None,
        "num_segments": "1",
        "direction": "outbound-api",
    }
    data.update(fields)
    return data


def page_body(*messages: object, next_uri: str | None = None) -> bytes:
    return json.dumps({"messages": list(messages), "next_page_uri": next_uri, "page": 0, "page_size": 50}).encode()


def test_a_twilio_message_becomes_a_small_record() -> None:
    parsed = ProviderMessage.from_twilio(resource("SM1", status="undelivered", error_code=30003))
    assert parsed == ProviderMessage(
        sid="SM1",
        status="undelivered",
        provider_status="undelivered",
        to=TO,
        from_=OURS,
        messaging_service_sid=None,
        body="hello",
        date_created=T0 + 1,
        date_sent=T0 + 2,
        error_code=30003,
    )


def test_a_queued_message_has_no_date_sent_and_an_error_code_may_be_a_string() -> None:
    parsed = ProviderMessage.from_twilio(resource("SM1", status="queued", error_code="30008"))
    assert parsed is not None
    assert (parsed.date_sent, parsed.error_code, parsed.status) == (None, 30008, "queued")


@pytest.mark.parametrize(
    ("twilio", "contract"),
    [
        ("accepted", "queued"),
        ("scheduled", "queued"),
        ("queued", "queued"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("undelivered", "undelivered"),
        ("Delivered", "delivered"),
        ("receiving", None),
        ("", None),
    ],
)
def test_statuses_fold_as_the_origins_callbacks_fold_them(twilio: str, contract: str | None) -> None:
    assert contract_status(twilio) == contract


def test_a_page_skips_messages_it_cannot_read() -> None:
    page = parse_page(page_body(resource("SM1"), {"sid": "SM2"}, resource("SM3", date_created="yesterday"), "x"))
    assert [m.sid for m in page.messages] == ["SM1"]
    assert page.next_page_uri is None


@pytest.mark.parametrize("body", [b"", b"<html>", b"[]", b'{"messages": {}}', b'{"code": 20003}'])
def test_an_answer_that_is_not_a_page_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_page(body)


def test_describe_says_what_to_mark() -> None:
    checked = datetime(2026, 12, 1, 17, 0, tzinfo=UTC).timestamp()
    assert LookupResult(NotFound(), checked).describe() == "not found at the provider, checked 2026-12-01T17:00:00Z"
    assert (
        "ambiguous at the provider (2 matches: SM2, SM1)" in LookupResult(Ambiguous(("SM2", "SM1")), checked).describe()
    )
    assert LookupResult(Found(msg("SM1")), checked).describe().startswith("found at the provider as SM1 (delivered)")
    failed = LookupResult(LookupFailed("refused", "Authenticate (provider code 20003)", 401), checked)
    assert failed.describe().startswith("lookup at the provider failed (refused: Authenticate")


# ---- TwilioProvider over a scripted GET ---------------------------------------------------------------------------


Outcome = HttpReply | Exception


class ScriptedGetter:
    """An HttpPoster and HttpGetter whose GETs answer from a script (and may move a clock), recording each URL."""

    def __init__(self, *outcomes: Outcome, clock: ManualClock | None = None, seconds_per_get: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.urls: list[str] = []
        self.timeouts: list[float] = []
        self.clock = clock
        self.seconds_per_get = seconds_per_get

    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        raise AssertionError("a lookup never posts")

    async def get(self, url: str, auth: tuple[str, str], timeout_s: float) -> HttpReply:
        assert auth == ("AC123", "auth-tok")
        self.urls.append(url)
        self.timeouts.append(timeout_s)
        if self.clock is not None:
            self.clock.advance(self.seconds_per_get)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def provider(poster: object, clock: ManualClock | None = None, **overrides: object) -> TwilioProvider:
    options: dict[str, object] = {
        "base_url": BASE + "/",
        "account_sid": "AC123",
        "auth_token": "auth-tok",
        "from_number": OURS,
        "timeout_s": 4.0,
        "clock": clock or ManualClock(T1 + 120),
    }
    options.update(overrides)
    return TwilioProvider(poster, **options)  # type: ignore[arg-type]


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def ok(body: bytes) -> HttpReply:
    return HttpReply(200, body)


async def test_find_unknown_lists_to_the_number_from_our_sender_and_finds_the_one_match() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM9", body="other"), resource("SM1"))))
    clock = ManualClock(T1 + 120)

    result = await provider(getter, clock).find_unknown(to=TO, body="hello", window=(T0, T1))

    assert isinstance(result.outcome, Found)
    assert (result.outcome.sid, result.outcome.status) == ("SM1", "delivered")
    assert (result.checked_at, result.pages, result.scanned) == (T1 + 120, 1, 2)
    assert getter.urls[0].startswith(LIST + "?")
    assert query(getter.urls[0]) == [("To", TO), ("From", OURS), ("PageSize", "200")]
    assert getter.timeouts == [4.0]


async def test_through_a_messaging_service_there_is_no_from_filter() -> None:
    picked = resource("SM1", messaging_service_sid=SERVICE)
    picked["from"] = "+14155550123"  # the number Twilio picked from the service's pool
    getter = ScriptedGetter(ok(page_body(picked)))

    result = await provider(getter, messaging_service_sid=SERVICE).find_unknown(to=TO, body="hello", window=(T0, T1))

    assert isinstance(result.outcome, Found)
    assert query(getter.urls[0]) == [("To", TO), ("PageSize", "200")]


async def test_pages_are_followed_until_the_window_starts() -> None:
    old = T0 - LOOKUP_SKEW_S - 10
    getter = ScriptedGetter(
        ok(
            page_body(
                resource("SM5", created=T1 + 500),
                resource("SM4", created=T1 + 400),
                next_uri="/2010-04-01/Accounts/AC123/Messages.json?To=x&Page=1&PageToken=PASM4",
            )
        ),
        ok(
            page_body(
                resource("SM1"),
                resource("SM0", created=old),
                next_uri="/2010-04-01/Accounts/AC123/Messages.json?To=x&Page=2&PageToken=PASM0",
            )
        ),
    )

    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))

    assert result.outcome == Found(ProviderMessage.from_twilio(resource("SM1")))  # type: ignore[arg-type]
    assert getter.urls[1] == f"{BASE}/2010-04-01/Accounts/AC123/Messages.json?To=x&Page=1&PageToken=PASM4"
    assert (result.pages, result.scanned) == (2, 4)  # SM0 is older than the window: no third page


async def test_a_queued_message_older_than_the_window_start_does_not_stop_the_scan_early_if_sent_since() -> None:
    # Created before the window but sent inside it: in a list sorted by date_sent, newer creations may follow.
    straddling = resource("SM2", created=T0 - LOOKUP_SKEW_S - 10)
    straddling["date_sent"] = rfc2822(T0 + 3)
    getter = ScriptedGetter(
        ok(page_body(straddling, next_uri="/2010-04-01/Accounts/AC123/Messages.json?Page=1&PageToken=PASM2")),
        ok(page_body(resource("SM1"))),
    )

    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))

    assert isinstance(result.outcome, Found)
    assert result.pages == 2


async def test_two_identical_messages_in_the_window_are_ambiguous() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM2", created=T0 + 9), resource("SM1"))))
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert result.outcome == Ambiguous(("SM2", "SM1"))


async def test_nothing_in_the_window_is_not_found() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM1", created=T0 - 3600))))
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert result.outcome == NotFound()
    assert result.scanned == 1


async def test_exclude_sids_reaches_the_matcher() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM2", created=T0 + 9), resource("SM1"))))
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1), exclude_sids={"SM2"})
    assert isinstance(result.outcome, Found)
    assert result.outcome.sid == "SM1"


async def test_a_next_page_on_another_host_is_not_followed() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM9", created=T1 + 900), next_uri="https://evil.test/steal")))
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert result.outcome == NotFound()
    assert len(getter.urls) == 1


async def test_the_page_bound_is_a_lookup_failure_not_a_guess() -> None:
    pages = [
        ok(page_body(resource(f"SM{n}", created=T1 + 900 - n), next_uri=f"/2010-04-01/x?Page={n + 1}"))
        for n in range(3)
    ]
    getter = ScriptedGetter(*pages)

    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1), max_pages=3)

    assert result.outcome == LookupFailed("too_many", "more than 3 pages of messages to this number inside the window")
    assert (result.pages, result.scanned) == (3, 3)


async def test_the_time_budget_bounds_the_lookup_and_each_request() -> None:
    clock = ManualClock(T1 + 120)
    pages = [ok(page_body(resource(f"SM{n}", created=T1 + 900 - n), next_uri="/2010-04-01/x")) for n in range(5)]
    getter = ScriptedGetter(*pages, clock=clock, seconds_per_get=3.0)

    result = await provider(getter, clock).find_unknown(to=TO, body="hello", window=(T0, T1), time_budget_s=7.0)

    assert isinstance(result.outcome, LookupFailed)
    assert result.outcome.kind == "timed_out"
    assert result.pages == 3
    assert getter.timeouts == [4.0, 4.0, 1.0]  # the last request gets only what is left of the budget


@pytest.mark.parametrize(
    ("outcome", "kind", "http_status"),
    [
        (ConnectFailed("refused"), "unreachable", None),
        (ReplyLost("ReadTimeout"), "unreachable", None),
        (RuntimeError("a bug in the client"), "unreachable", None),
        (HttpReply(401, b'{"code": 20003, "message": "Authenticate", "status": 401}'), "refused", 401),
        (HttpReply(404, b'{"code": 20404, "message": "not found"}'), "refused", 404),
        (HttpReply(429, b'{"code": 20429, "message": "Too many requests"}'), "provider_error", 429),
        (HttpReply(500, b"oops"), "provider_error", 500),
        (HttpReply(503, b""), "provider_error", 503),
        (HttpReply(200, b"<html>maintenance</html>"), "bad_answer", 200),
    ],
)
async def test_a_list_that_cannot_be_read_is_a_typed_failure_never_an_exception(
    outcome: Outcome, kind: str, http_status: int | None
) -> None:
    result = await provider(ScriptedGetter(outcome)).find_unknown(to=TO, body="hello", window=(T0, T1))

    assert isinstance(result.outcome, LookupFailed)
    assert (result.outcome.kind, result.outcome.http_status) == (kind, http_status)
    assert result.outcome.reason
    assert result.checked_at == T1 + 120


async def test_a_window_given_backwards_is_its_start_not_an_exception() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM1", created=T0))))
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T0 - 3600))
    assert isinstance(result.outcome, Found)


async def test_a_failure_on_a_later_page_keeps_what_was_read() -> None:
    getter = ScriptedGetter(
        ok(page_body(resource("SM9", created=T1 + 900), next_uri="/2010-04-01/x")), HttpReply(503, b"")
    )
    result = await provider(getter).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert isinstance(result.outcome, LookupFailed)
    assert (result.pages, result.scanned) == (1, 1)


class PostOnly:
    async def post_form(
        self, url: str, fields: Sequence[tuple[str, str]], auth: tuple[str, str], timeout_s: float
    ) -> HttpReply:
        raise AssertionError("not used")


async def test_a_poster_that_cannot_get_is_not_configured_for_lookups() -> None:
    result = await provider(PostOnly()).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert isinstance(result.outcome, LookupFailed)
    assert result.outcome.kind == "not_configured"


async def test_a_separate_getter_serves_a_poster_that_cannot_get() -> None:
    getter = ScriptedGetter(ok(page_body(resource("SM1"))))
    result = await provider(PostOnly(), getter=getter).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert isinstance(result.outcome, Found)


async def test_an_unconfigured_provider_does_not_look() -> None:
    getter = ScriptedGetter()
    result = await provider(getter, from_number=None).find_unknown(to=TO, body="hello", window=(T0, T1))
    assert isinstance(result.outcome, LookupFailed)
    assert result.outcome.kind == "not_configured"
    assert getter.urls == []


async def test_list_messages_sends_twilios_filters_and_reads_up_to_max_pages() -> None:
    getter = ScriptedGetter(
        ok(
            page_body(
                resource("SM3"),
                resource("SM2"),
                next_uri="/2010-04-01/Accounts/AC123/Messages.json?Page=1&PageToken=PASM2",
            )
        ),
        ok(page_body(resource("SM1"), next_uri="/2010-04-01/Accounts/AC123/Messages.json?Page=2&PageToken=PASM1")),
    )

    listing = await provider(getter).list_messages(
        to=TO,
        from_=OURS,
        date_sent=date(2026, 12, 1),
        date_sent_after=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        date_sent_before=date(2026, 12, 2),
        page_size=2,
        max_pages=2,
    )

    assert [m.sid for m in listing.messages] == ["SM3", "SM2", "SM1"]
    assert listing.next_page_uri == "/2010-04-01/Accounts/AC123/Messages.json?Page=2&PageToken=PASM1"
    assert query(getter.urls[0]) == [
        ("To", TO),
        ("From", OURS),
        ("DateSent", "2026-12-01"),
        ("DateSent<", "2026-12-02"),
        ("DateSent>", "2026-11-30"),
        ("PageSize", "2"),
    ]
    assert "DateSent%3C=2026-12-02&DateSent%3E=2026-11-30" in getter.urls[0]


async def test_list_messages_raises_its_typed_error() -> None:
    with pytest.raises(ProviderLookupError) as caught:
        await provider(ScriptedGetter(HttpReply(401, b'{"code": 20003, "message": "Authenticate"}'))).list_messages(
            to=TO
        )
    assert (caught.value.kind, caught.value.http_status) == ("refused", 401)


@pytest.mark.parametrize(("page_size", "max_pages"), [(0, 1), (1001, 1), (50, 0)])
async def test_list_messages_bounds_are_checked(page_size: int, max_pages: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await provider(ScriptedGetter()).list_messages(to=TO, page_size=page_size, max_pages=max_pages)


# ---- HttpxPoster.get ------------------------------------------------------------------------------------------------


async def test_httpx_poster_gets_with_basic_auth_and_maps_errors() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.params.get("PageSize") == "0":
            raise httpx2.ConnectError("refused", request=request)
        if request.url.params.get("PageSize") == "1":
            raise httpx2.ReadTimeout("slow", request=request)
        return httpx2.Response(200, content=page_body(resource("SM1")))

    poster = HttpxPoster(max_connections=2)
    await poster.aclose()
    poster._client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    try:
        reply = await poster.get(LIST + "?To=%2B1&PageSize=50", ("AC123", "tok"), 3.0)
        with pytest.raises(ConnectFailed):
            await poster.get(LIST + "?PageSize=0", ("AC123", "tok"), 3.0)
        with pytest.raises(ReplyLost):
            await poster.get(LIST + "?PageSize=1", ("AC123", "tok"), 3.0)
    finally:
        await poster.aclose()
    assert reply.status == 200
    assert parse_page(reply.body).messages[0].sid == "SM1"
    assert seen[0].method == "GET"
    assert str(seen[0].url) == LIST + "?To=%2B1&PageSize=50"
    assert seen[0].headers["accept"] == "application/json"
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert seen[0].extensions["timeout"]["read"] == 3.0
