"""The message model: what a valid send request is, how it is encoded, and its idempotency fingerprint.

Every rule here is CONTRACT §3; both endpoints and the SDK share it, so a message refused by one is refused by all.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from smsfailover.core.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
MAX_CONTENT_CHARS = 1600
MAX_MEDIA_URLS = 10
MAX_URL_CHARS = 2048
MAX_CONTACT_ID_CHARS = 255

WORKSPACE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
E164 = re.compile(r"\+[1-9][0-9]{7,14}")

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38: the basic character set (one septet each) and the extension table (escape + one septet).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class SendRequest:
    to: str
    content: str
    workspace_id: str
    contact_id: str | None
    media_urls: tuple[str, ...]


def invalid(code: str, message: str, field: str, status: int = 422) -> ApiError:
    return ApiError(status, code, message, field=field)


def validate_workspace_id(workspace_id: object, field: str = "workspace_id") -> str:
    if not isinstance(workspace_id, str) or not WORKSPACE_ID.fullmatch(workspace_id):
        raise invalid("invalid_workspace_id", "A workspace id is 1 to 64 letters, digits, '_' or '-'.", field)
    return workspace_id


def validate_idempotency_key(key: object) -> str:
    if key is None or key == "":
        raise ApiError(
            400,
            "missing_idempotency_key",
            "Send an Idempotency-Key header (1 to 255 visible ASCII characters) so a retry cannot send twice.",
            field="Idempotency-Key",
        )
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid(
            "invalid_idempotency_key",
            "An Idempotency-Key is 1 to 255 visible ASCII characters, without spaces.",
            "Idempotency-Key",
        )
    return key


def validate_e164(to: object) -> str:
    if not isinstance(to, str) or not E164.fullmatch(to) or not _is_valid_number(to):
        raise invalid(
            "invalid_phone_number",
            "'to' must be a valid phone number in E.164 form, such as +16266635938.",
            "to",
        )
    return to


def _is_valid_number(e164: str) -> bool:
    import phonenumbers  # imported on first use: keeps `import smsfailover.core` fast under Pyodide

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def normalize_phone(raw: str, default_region: str = "US") -> str:
    """Friendlier input ("(626) 663-5938", "+44 20 7946 0958") as E.164; ValueError if it is no valid number."""
    import phonenumbers

    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _validate_content(content: object, has_media: bool) -> str:
    if content is None:
        content = ""
    if not isinstance(content, str) or not _is_utf8(content):
        raise invalid("invalid_content", "'content' must be a string of Unicode text.", "content")
    if len(content) > MAX_CONTENT_CHARS:
        raise invalid("invalid_content", f"'content' is at most {MAX_CONTENT_CHARS} characters.", "content")
    if content == "" and has_media:
        return content
    if content.strip() == "":
        raise invalid(
            "invalid_content",
            "'content' must have text that is not only white space (it may be empty only with media_urls).",
            "content",
        )
    return content


def _validate_media_urls(media: object) -> tuple[str, ...]:
    if media is None:
        return ()
    if not isinstance(media, list):
        raise invalid("invalid_media_url", "'media_urls' must be a list of https URLs.", "media_urls")
    if len(media) > MAX_MEDIA_URLS:
        raise invalid("invalid_media_url", f"At most {MAX_MEDIA_URLS} media URLs per message.", "media_urls")
    for index, url in enumerate(media):
        if not _is_https_url(url):
            raise invalid(
                "invalid_media_url",
                "Each media URL must be an absolute https:// URL with a host.",
                f"media_urls[{index}]",
            )
    return tuple(media)


def _is_https_url(url: object) -> bool:
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or any(c.isspace() for c in url) or not _is_utf8(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


def _validate_contact_id(contact_id: object) -> str | None:
    if contact_id is None:
        return None
    if not isinstance(contact_id, str) or not 1 <= len(contact_id) <= MAX_CONTACT_ID_CHARS or not _is_utf8(contact_id):
        raise invalid(
            "invalid_contact_id",
            f"'contact_id' must be a string of 1 to {MAX_CONTACT_ID_CHARS} characters.",
            "contact_id",
        )
    return contact_id


def _is_utf8(text: str) -> bool:
    """False for a string with a lone surrogate (JSON allows "\\ud800"): it cannot be stored, hashed or sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object: 413 when too large, 400 when not JSON, 422 when not an object."""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KiB.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "The request body must be a JSON object.")
    return data


def parse_send_request(body: bytes) -> SendRequest:
    data = decode_json_object(body)
    workspace_id = validate_workspace_id(data.get("workspace_id"))
    to = validate_e164(data.get("to"))
    media_urls = _validate_media_urls(data.get("media_urls"))
    content = _validate_content(data.get("content"), has_media=bool(media_urls))
    contact_id = _validate_contact_id(data.get("contact_id"))
    return SendRequest(to, content, workspace_id, contact_id, media_urls)


def fingerprint(req: SendRequest) -> str:
    """What makes two sends "the same payload" for an idempotency key: to, content and media."""
    return payload_fingerprint(req.to, req.content, req.media_urls)


def payload_fingerprint(to: str, content: str, media_urls: Sequence[str]) -> str:
    """The same fingerprint from a stored message's fields (the origin's copy of an edge send)."""
    canonical = json.dumps([to, content, list(media_urls)], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encoding_and_segments(content: str, *, has_media: bool = False) -> tuple[Encoding, int]:
    """GSM-7 when every character fits (extension characters cost two septets), else UCS-2 in UTF-16 units.

    A single message holds 160 septets / 70 units; concatenated parts hold 153 / 67 (the rest is the UDH).
    An MMS (media attached) is one message whatever its text.
    """
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in content):
        encoding: Encoding = "GSM-7"
        units = sum(2 if c in _GSM_EXTENSION else 1 for c in content)
        single, part = 160, 153
    else:
        encoding = "UCS-2"
        units = len(content.encode("utf-16-le")) // 2
        single, part = 70, 67
    if has_media:
        return encoding, 1
    return encoding, 1 if units <= single else math.ceil(units / part)
