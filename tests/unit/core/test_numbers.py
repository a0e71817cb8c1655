"""core.numbers.whole_number: every text a client sends as a number either parses within bounds or is None."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from smsfailover.core.numbers import MAX_INT64, whole_number


def test_ascii_digits_within_bounds_parse() -> None:
    assert whole_number("0") == 0
    assert whole_number("42", minimum=1, maximum=500) == 42
    assert whole_number(str(MAX_INT64)) == MAX_INT64


def test_everything_else_is_none() -> None:
    for raw in ("", "²", "١٢", "-1", "+1", " 1", "1.0", "1e3", "9" * 5000, str(MAX_INT64 + 1)):
        assert whole_number(raw) is None, raw
    assert whole_number("0", minimum=1) is None
    assert whole_number("501", maximum=500) is None


@given(st.text(max_size=40))
def test_no_text_raises(raw: str) -> None:
    value = whole_number(raw)
    assert value is None or (raw.isascii() and raw.isdigit() and value == int(raw))
