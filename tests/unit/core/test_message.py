"""CONTRACT §3: what a valid send request is, how its text is encoded, and its idempotency fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smsfailover.core.errors import ApiError
from smsfailover.core.message import (
    MAX_BODY_BYTES,
    SendRequest,
    decode_json_object,
    encoding_and_segments,
    fingerprint,
    normalize_phone,
    parse_send_request,
    validate_e164,
    validate_idempotency_key,
    validate_workspace_id,
)

TO = "+16266635938"


def body(**fields: Any) -> bytes:
    payload: dict[str, Any] = {"to": TO, "content": "Hello", "workspace_id": "15213"}
    payload.update(fields)
    return json.dumps({k: v for k, v in payload.items() if v is not _ABSENT}).encode()


_ABSENT: Any = object()


def refusal(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_send_request(raw)
    return caught.value


def assert_refused(raw: bytes, status: int, code: str, field: str | None) -> None:
    error = refusal(raw)
    assert (error.status, error.code, error.field) == (status, code, field)
    envelope = error.envelope()["error"]
    assert isinstance(envelope, dict)
    assert envelope["code"] == code
    assert envelope["message"]


# ---- a valid request ------------------------------------------------------------------------------------------


def test_a_full_valid_request_parses() -> None:
    req = parse_send_request(
        body(contact_id="97241048-3d5f-4236-90c6-de499ccd6462", media_urls=["https://example.com/image.jpg"])
    )
    assert req == SendRequest(
        to=TO,
        content="Hello",
        workspace_id="15213",
        contact_id="97241048-3d5f-4236-90c6-de499ccd6462",
        media_urls=("https://example.com/image.jpg",),
    )


def test_optional_fields_may_be_absent_or_null() -> None:
    req = parse_send_request(body(contact_id=None, media_urls=None))
    assert req.contact_id is None
    assert req.media_urls == ()


# ---- to -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", [TO, "+442079460958", "+4915112345678", "+33612345678"])
def test_valid_e164_numbers_are_accepted(to: str) -> None:
    assert validate_e164(to) == to
    assert parse_send_request(body(to=to)).to == to


@pytest.mark.parametrize(
    "to",
    [
        "16266635938",  # no plus
        "+1 626 663 5938",  # spaces
        "(626) 663-5938",
        "+1626663593",  # too short for the US
        "+0123456789",  # a country code never starts with 0
        "+1234567",  # 7 digits
        "+1234567890123456",  # 16 digits
        "+12005550100",  # the right shape but not a valid number
        "+999123456789",  # no such country
        f"{TO}\n",
        "+١٦٢٦٦٦٣٥٩٣٨",  # Arabic-Indic digits
        "",
        16266635938,
        None,
        ["+16266635938"],
    ],
)
def test_invalid_phone_numbers_are_refused(to: object) -> None:
    assert_refused(body(to=to), 422, "invalid_phone_number", "to")


def test_a_missing_to_is_refused() -> None:
    assert_refused(body(to=_ABSENT), 422, "invalid_phone_number", "to")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(626) 663-5938", "US", TO),
        ("626.663.5938", "US", TO),
        ("  +1 626 663 5938 ", "US", TO),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_normalize_phone_accepts_friendlier_input(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["not a number", "", "+1 200 555 0100", "12"])
def test_normalize_phone_refuses_what_is_no_valid_number(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        normalize_phone(raw)


# ---- content --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["x", "a" * 1600, "😀" * 1600, " leading and trailing "])
def test_content_of_one_to_1600_code_points_is_accepted(content: str) -> None:
    assert parse_send_request(body(content=content)).content == content


@pytest.mark.parametrize("content", ["a" * 1601, "😀" * 1601])
def test_content_over_1600_code_points_is_refused(content: str) -> None:
    assert_refused(body(content=content), 422, "invalid_content", "content")


@pytest.mark.parametrize("content", ["", " ", "\t\n ", "\u00a0\u2003", _ABSENT, None])
def test_empty_or_whitespace_content_without_media_is_refused(content: object) -> None:
    assert_refused(body(content=content), 422, "invalid_content", "content")


@pytest.mark.parametrize("content", ["", _ABSENT, None])
def test_content_may_be_empty_or_absent_with_media(content: object) -> None:
    req = parse_send_request(body(content=content, media_urls=["https://example.com/a.png"]))
    assert req.content == ""
    assert req.media_urls == ("https://example.com/a.png",)


def test_whitespace_only_content_is_refused_even_with_media() -> None:
    assert_refused(body(content="   ", media_urls=["https://example.com/a.png"]), 422, "invalid_content", "content")


@pytest.mark.parametrize("content", [42, ["Hello"], {"text": "Hello"}, True])
def test_content_that_is_not_a_string_is_refused(content: object) -> None:
    assert_refused(body(content=content), 422, "invalid_content", "content")


def test_content_with_a_lone_surrogate_is_refused() -> None:
    raw = b'{"to": "+16266635938", "workspace_id": "w", "content": "hi \\ud800"}'
    assert_refused(raw, 422, "invalid_content", "content")


# ---- media_urls -----------------------------------------------------------------------------------------------


def test_ten_media_urls_are_accepted_and_keep_their_order() -> None:
    urls = [f"https://cdn.example.com/{i}.png" for i in range(10)]
    assert parse_send_request(body(media_urls=urls)).media_urls == tuple(urls)


def test_eleven_media_urls_are_refused() -> None:
    urls = [f"https://cdn.example.com/{i}.png" for i in range(11)]
    assert_refused(body(media_urls=urls), 422, "invalid_media_url", "media_urls")


@pytest.mark.parametrize("media", ["https://example.com/a.png", {"url": "https://example.com"}, 3])
def test_media_urls_that_are_not_a_list_are_refused(media: object) -> None:
    assert_refused(body(media_urls=media), 422, "invalid_media_url", "media_urls")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.png",
        "ftp://example.com/a.png",
        "https://",
        "https:///path-only",
        "//example.com/a.png",
        "example.com/a.png",
        "https://exa mple.com/a.png",
        "https://example.com/a b.png",
        "https://[::1",  # urlsplit raises on it
        "https://example.com/" + "a" * 2048,
        "https://example.com/\ud800",
        "",
        None,
        7,
    ],
)
def test_bad_media_urls_are_refused_with_their_index(url: object) -> None:
    raw = json.dumps({"to": TO, "content": "x", "workspace_id": "w", "media_urls": ["https://ok.example", url]})
    assert_refused(raw.encode(), 422, "invalid_media_url", "media_urls[1]")


def test_an_empty_media_list_does_not_excuse_empty_content() -> None:
    assert_refused(body(content="", media_urls=[]), 422, "invalid_content", "content")


# ---- contact_id -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("contact_id", ["c", "x" * 255, "97241048-3d5f-4236-90c6-de499ccd6462", "ü"])
def test_contact_ids_of_1_to_255_characters_are_accepted(contact_id: str) -> None:
    assert parse_send_request(body(contact_id=contact_id)).contact_id == contact_id


@pytest.mark.parametrize("contact_id", ["", "x" * 256, 97241048, ["c"], "\ud800"])
def test_bad_contact_ids_are_refused(contact_id: object) -> None:
    assert_refused(body(contact_id=contact_id), 422, "invalid_contact_id", "contact_id")


# ---- workspace_id ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workspace_id", ["15213", "a", "A-b_9", "w" * 64])
def test_workspace_ids_matching_the_pattern_are_accepted(workspace_id: str) -> None:
    assert validate_workspace_id(workspace_id) == workspace_id
    assert parse_send_request(body(workspace_id=workspace_id)).workspace_id == workspace_id


@pytest.mark.parametrize("workspace_id", ["", "w" * 65, "a b", "a/b", "a.b", "ü", "a\n", 15213, None, _ABSENT])
def test_bad_workspace_ids_are_refused(workspace_id: object) -> None:
    assert_refused(body(workspace_id=workspace_id), 422, "invalid_workspace_id", "workspace_id")


def test_validate_workspace_id_names_the_field_it_was_given() -> None:
    with pytest.raises(ApiError) as caught:
        validate_workspace_id("a b", field="workspace")
    assert caught.value.field == "workspace"


# ---- Idempotency-Key ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "x" * 255, "!~", "order-42:retry/1", "a" + "".join(map(chr, range(33, 127)))])
def test_keys_of_1_to_255_visible_ascii_characters_are_accepted(key: str) -> None:
    assert validate_idempotency_key(key) == key


@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_key_is_a_400(key: object) -> None:
    with pytest.raises(ApiError) as caught:
        validate_idempotency_key(key)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "missing_idempotency_key",
        "Idempotency-Key",
    )


@pytest.mark.parametrize("key", ["x" * 256, "with space", "tab\t", "é", "new\nline", "\x7f", 42])
def test_a_malformed_key_is_a_422(key: object) -> None:
    with pytest.raises(ApiError) as caught:
        validate_idempotency_key(key)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422,
        "invalid_idempotency_key",
        "Idempotency-Key",
    )


# ---- the body as a whole --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe\xfa", b"{'to': 1}", b"[" * 60_000])
def test_a_body_that_is_not_json_is_a_400(raw: bytes) -> None:
    assert_refused(raw, 400, "invalid_json", None)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"1", b'"text"', b"true", b'[{"to": "+16266635938"}]'])
def test_json_that_is_not_an_object_is_a_422(raw: bytes) -> None:
    assert_refused(raw, 422, "invalid_request", None)


def test_a_body_of_exactly_64_kib_is_read_and_one_byte_more_is_a_413() -> None:
    prefix = b'{"pad": "'
    suffix = b'"}'
    exact = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(exact) == MAX_BODY_BYTES
    assert decode_json_object(exact)["pad"]
    over = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - len(suffix) + 1) + suffix
    assert_refused(over, 413, "payload_too_large", None)


def test_utf16_json_is_read_as_json() -> None:
    assert decode_json_object('{"a": 1}'.encode("utf-16")) == {"a": 1}


def test_unknown_fields_are_ignored() -> None:
    assert parse_send_request(body(priority="high")).content == "Hello"


# ---- encoding and segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("a", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("a" * 1600, ("GSM-7", 11)),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà\n\r", ("GSM-7", 1)),
        # extension characters cost two septets each
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 159 + "€", ("GSM-7", 2)),
        ("a" * 158 + "{", ("GSM-7", 1)),
        ("^{}\\[~]|€\f" * 16, ("GSM-7", 3)),  # 160 characters, 320 septets
        # one character outside GSM-7 makes the whole message UCS-2
        ("ж" * 70, ("UCS-2", 1)),
        ("ж" * 71, ("UCS-2", 2)),
        ("ж" * 134, ("UCS-2", 2)),
        ("ж" * 135, ("UCS-2", 3)),
        ("a" * 69 + "ç", ("UCS-2", 1)),  # lower-case c-cedilla is not in GSM-7 (only Ç is)
        ("a" * 70 + "ç", ("UCS-2", 2)),
        # an emoji is two UTF-16 units
        ("😀" * 35, ("UCS-2", 1)),
        ("😀" * 36, ("UCS-2", 2)),
        ("a" * 68 + "😀", ("UCS-2", 1)),
        ("a" * 69 + "😀", ("UCS-2", 2)),
        ("😀" * 67, ("UCS-2", 2)),  # 134 units
        ("😀" * 68, ("UCS-2", 3)),  # 136 units
    ],
)
def test_encoding_and_segment_counts(content: str, expected: tuple[str, int]) -> None:
    assert encoding_and_segments(content) == expected


def test_a_message_with_media_is_one_mms_whatever_its_length() -> None:
    assert encoding_and_segments("a" * 1600, has_media=True) == ("GSM-7", 1)
    assert encoding_and_segments("😀" * 800, has_media=True) == ("UCS-2", 1)


# ---- fingerprint ----------------------------------------------------------------------------------------------


def _req(**changes: Any) -> SendRequest:
    fields: dict[str, Any] = {
        "to": TO,
        "content": "Hello",
        "workspace_id": "15213",
        "contact_id": "c1",
        "media_urls": ("https://example.com/a.png",),
    }
    fields.update(changes)
    return SendRequest(**fields)


def test_the_fingerprint_is_stable_sha256_hex() -> None:
    assert fingerprint(_req()) == fingerprint(_req())
    # a fixed formula: both endpoints and every release must agree, or a replay across them would be "key reused"
    expected = hashlib.sha256(json.dumps([TO, "Hello", []], ensure_ascii=False).encode()).hexdigest()
    assert fingerprint(SendRequest(TO, "Hello", "w", None, ())) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"to": "+442079460958"},
        {"content": "Hello!"},
        {"content": "hello"},
        {"media_urls": ()},
        {"media_urls": ("https://example.com/b.png",)},
        {"media_urls": ("https://example.com/a.png", "https://example.com/a.png")},
    ],
)
def test_the_fingerprint_changes_with_to_content_and_media(changes: dict[str, Any]) -> None:
    assert fingerprint(_req(**changes)) != fingerprint(_req())


def test_media_order_is_part_of_the_fingerprint() -> None:
    a, b = "https://example.com/a.png", "https://example.com/b.png"
    assert fingerprint(_req(media_urls=(a, b))) != fingerprint(_req(media_urls=(b, a)))


@pytest.mark.parametrize("changes", [{"workspace_id": "other"}, {"contact_id": None}, {"contact_id": "c2"}])
def test_the_fingerprint_ignores_workspace_and_contact(changes: dict[str, Any]) -> None:
    assert fingerprint(_req(**changes)) == fingerprint(_req())


def test_the_fingerprint_does_not_confuse_content_with_media() -> None:
    # a naive concatenation would make these two equal
    one = _req(content="x", media_urls=("https://example.com/a.png",))
    two = _req(content='x", "https://example.com/a.png', media_urls=())
    assert fingerprint(one) != fingerprint(two)


# ---- properties -----------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(["to", "content", "workspace_id", "contact_id", "media_urls"]) | st.text(max_size=6)
_plausible_values = st.one_of(
    _json_values,
    st.sampled_from([TO, "+442079460958", "+12005550100", "15213", "", " ", "😀", "\ud800"]),
    st.lists(st.sampled_from(["https://example.com/a.png", "http://x", "https://", "\ud800", ""]), max_size=12),
)


def parse_or_error(raw: bytes) -> SendRequest | ApiError:
    """Anything but an ApiError escapes and fails the test."""
    try:
        return parse_send_request(raw)
    except ApiError as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_nothing_but_api_errors(raw: bytes) -> None:
    result = parse_or_error(raw)
    if isinstance(result, ApiError):
        assert result.status in {400, 413, 422}


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_field_names, _plausible_values, max_size=7))
def test_arbitrary_json_objects_raise_nothing_but_api_errors(data: dict[str, Any]) -> None:
    req = parse_or_error(json.dumps(data).encode())
    if isinstance(req, ApiError):
        assert req.status in {400, 413, 422}
        assert req.envelope()["error"]
    else:
        # whatever parses can be hashed, encoded and stored as UTF-8 without error
        assert len(fingerprint(req)) == 64
        encoding, segments = encoding_and_segments(req.content, has_media=bool(req.media_urls))
        assert encoding in {"GSM-7", "UCS-2"}
        assert segments >= 1
        json.dumps([req.content, req.contact_id, list(req.media_urls)], ensure_ascii=False).encode("utf-8")


_EXTENSION = "\f^{}\\[~]|€"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ0 @€{ж😀\n"), max_size=400) | st.text(max_size=400))
def test_segments_hold_the_text_and_no_more_than_needed(content: str) -> None:
    encoding, segments = encoding_and_segments(content)
    if encoding == "GSM-7":
        units, single, part = sum(2 if c in _EXTENSION else 1 for c in content), 160, 153
    else:
        units, single, part = len(content.encode("utf-16-le")) // 2, 70, 67
    if units <= single:
        assert segments == 1
    else:
        assert (segments - 1) * part < units <= segments * part
