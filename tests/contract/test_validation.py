"""Every client mistake of CONTRACT §3 gets its error envelope on both endpoints; nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.contract.kit import Api, Simulator, assert_error, new_workspace, send_body, unique_content


def _send_invalid(api: Api, sim: Simulator, ws: str, body: dict[str, Any], code: str, field: str) -> None:
    """422 with code; the error's field is `field` or one of its items (`media_urls[3]`)."""
    marker = unique_content("invalid")
    if isinstance(body.get("content"), str):
        body["content"] = marker + body["content"]
    error = assert_error(api.send(ws, body), 422, code)
    assert error.get("field") == field or str(error.get("field")).startswith(field + "["), error
    assert sim.received(marker) == []


@pytest.mark.parametrize(
    "to",
    [
        "12345",
        "6266635938",  # no +: the API wants strict E.164 (the SDK normalises friendlier input)
        "+1626663593a",
        "+1 626 663 5938",
        "+1234567",  # 7 digits
        "+1234567890123456",  # 16 digits
        "+10000000000",  # the right shape, not a valid number
        "",
        12345,
        None,
    ],
)
def test_invalid_phone_number(api: Api, sim: Simulator, to: object) -> None:
    ws = new_workspace()
    _send_invalid(api, sim, ws, send_body(ws, to=to), "invalid_phone_number", "to")  # type: ignore[arg-type]


def test_missing_phone_number(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    body = send_body(ws)
    del body["to"]
    _send_invalid(api, sim, ws, body, "invalid_phone_number", "to")


@pytest.mark.parametrize("content", ["", "   \n\t ", 42, ["a"]])
def test_invalid_content(api: Api, sim: Simulator, content: object) -> None:
    ws = new_workspace()
    body = send_body(ws)
    body["content"] = content
    assert_error(api.send(ws, body), 422, "invalid_content", field="content")


def test_content_absent_without_media_is_invalid(api: Api) -> None:
    ws = new_workspace()
    body = send_body(ws)
    del body["content"]
    assert_error(api.send(ws, body), 422, "invalid_content", field="content")


def test_content_over_1600_code_points_is_invalid(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    _send_invalid(api, sim, ws, send_body(ws, content="a" * 1601), "invalid_content", "content")


@pytest.mark.parametrize(
    "media_urls",
    [
        ["http://example.com/image.jpg"],
        ["not a url"],
        ["https://"],
        ["ftp://example.com/a.jpg"],
        [f"https://example.com/{i}.jpg" for i in range(11)],
        "https://example.com/image.jpg",
        [42],
    ],
)
def test_invalid_media_urls(api: Api, sim: Simulator, media_urls: object) -> None:
    ws = new_workspace()
    _send_invalid(api, sim, ws, send_body(ws, media_urls=media_urls), "invalid_media_url", "media_urls")


def test_ten_media_urls_are_accepted(api: Api) -> None:
    ws = new_workspace()
    body = send_body(ws, media_urls=[f"https://example.com/{i}.jpg" for i in range(10)])
    assert api.send(ws, body).status_code == 201


@pytest.mark.parametrize("workspace_id", ["has space", "x" * 65, "", "semi;colon", 15213, None])
def test_invalid_workspace_id(api: Api, sim: Simulator, workspace_id: object) -> None:
    ws = new_workspace()
    body = send_body(ws)
    body["workspace_id"] = workspace_id
    marker = body["content"]
    assert_error(api.send(ws, body), 422, "invalid_workspace_id", field="workspace_id")
    assert sim.received(marker) == []


def test_contact_id_must_be_a_string(api: Api) -> None:
    ws = new_workspace()
    error = assert_error(api.send(ws, send_body(ws, contact_id=42)), 422, "invalid_contact_id")
    assert error.get("field") == "contact_id"


def test_missing_idempotency_key_is_400(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    body = send_body(ws)
    assert_error(api.send(ws, body, key=None), 400, "missing_idempotency_key")
    assert sim.received(body["content"]) == []


@pytest.mark.parametrize("key", ["k" * 256, "has space", "tab\tkey", "ключ"])
def test_invalid_idempotency_key_is_422(api: Api, key: str) -> None:
    ws = new_workspace()
    headers: dict[str, str | bytes] = {"Idempotency-Key": key.encode()}  # raw UTF-8 bytes on the wire
    resp = api.send(ws, send_body(ws), key=None, headers=headers)
    assert_error(resp, 422, "invalid_idempotency_key", field="Idempotency-Key")


def test_longest_idempotency_key_is_accepted(api: Api) -> None:
    ws = new_workspace()
    assert api.send(ws, send_body(ws), key="K" * 255).status_code == 201


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"to": "+16266635938"'])
def test_invalid_json_is_400(api: Api, raw: bytes) -> None:
    ws = new_workspace()
    assert_error(api.send(ws, raw=raw), 400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_422_invalid_request(api: Api, raw: bytes) -> None:
    ws = new_workspace()
    assert_error(api.send(ws, raw=raw), 422, "invalid_request")


def test_body_over_64_kib_is_413(api: Api, sim: Simulator) -> None:
    ws = new_workspace()
    marker = unique_content("big")
    raw = json.dumps(send_body(ws, content=marker, padding="p" * (64 * 1024))).encode()
    assert_error(api.send(ws, raw=raw), 413, "payload_too_large")
    assert sim.received(marker) == []


def test_unknown_fields_do_not_break_a_send(api: Api) -> None:
    ws = new_workspace()
    assert api.send(ws, send_body(ws, priority="high")).status_code == 201
