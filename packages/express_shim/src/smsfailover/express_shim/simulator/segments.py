"""How many SMS segments a body takes, the way Twilio counts them for `num_segments`.

GSM-7 when every character is in the GSM 03.38 basic set or its extension table (extension characters take two
septets): 160 septets in one segment, 153 per segment when concatenated. Otherwise UCS-2: 70 UTF-16 code units
in one segment, 67 per segment. A character (an escape pair, a surrogate pair) is never split across segments.
"""

from __future__ import annotations

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def is_gsm7(body: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in body)


def _units(body: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if ch in GSM_EXTENSION else 1 for ch in body]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def num_segments(body: str) -> int:
    """Segments for a body; an empty body (an MMS with media only) counts as one."""
    gsm = is_gsm7(body)
    units = _units(body, gsm)
    single, multi = (160, 153) if gsm else (70, 67)
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for width in units:
        if used + width > multi:
            segments, used = segments + 1, 0
        used += width
    return segments
