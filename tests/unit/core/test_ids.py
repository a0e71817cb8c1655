"""Message ids (msg_ + ULID) and RFC 3339 times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smsfailover.core.ids import new_message_id, parse_rfc3339, rfc3339, ulid

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_a_ulid_is_26_crockford_characters() -> None:
    value = ulid(1_800_000_000.0)
    assert len(value) == 26
    assert set(value) <= CROCKFORD


def test_a_ulid_encodes_its_time_and_randomness() -> None:
    assert ulid(0.0, randomness=0) == "0" * 26
    assert ulid(0.001, randomness=0) == "0" * 9 + "1" + "0" * 16
    assert ulid(0.0, randomness=(1 << 80) - 1) == "0" * 10 + "Z" * 16
    assert ulid(0.0, randomness=1 << 80) == "0" * 26  # randomness is masked to 80 bits


def test_ulids_sort_by_time() -> None:
    assert ulid(1000.0, randomness=(1 << 80) - 1) < ulid(1000.001, randomness=0)


def test_random_ulids_differ() -> None:
    assert len({ulid(1.0) for _ in range(50)}) == 50


def test_message_ids_are_msg_and_a_ulid() -> None:
    message_id = new_message_id(1_800_000_000.0)
    assert message_id.startswith("msg_")
    assert len(message_id) == 30
    assert set(message_id[4:]) <= CROCKFORD


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_795_984_071.1239) == "2026-11-29T20:27:51.123Z"


def test_parse_rfc3339_reads_z_and_offsets() -> None:
    assert parse_rfc3339("1970-01-01T00:00:01.500Z") == 1.5
    assert parse_rfc3339("1970-01-01T01:00:00+01:00") == 0.0


@pytest.mark.parametrize("text", ["1970-01-01T00:00:00", "yesterday", ""])
def test_parse_rfc3339_refuses_times_without_a_zone_or_not_times(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_rfc3339_round_trips_at_millisecond_precision(ms: int) -> None:
    assert round(parse_rfc3339(rfc3339(ms / 1000)) * 1000) == ms
