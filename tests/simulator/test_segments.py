from __future__ import annotations

import pytest
from smsfailover.express_shim.simulator.segments import is_gsm7, num_segments


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the escape pair does not split at 153
        ("é" * 160, 1),  # é is in the GSM basic set
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("😀" * 35, 1),  # a surrogate pair is two UCS-2 units
        ("😀" * 36, 2),
    ],
)
def test_num_segments_counts_as_twilio_does(body: str, segments: int) -> None:
    assert num_segments(body) == segments


def test_one_character_outside_gsm_makes_the_whole_body_ucs2() -> None:
    assert is_gsm7("hello [world] €")
    assert not is_gsm7("hello ж")
    assert num_segments("a" * 69 + "ж") == 1
    assert num_segments("a" * 70 + "ж") == 2
