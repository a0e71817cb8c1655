"""The benchmark framework's arithmetic: percentiles, spreads, same-run ratios, the report's shape."""

from __future__ import annotations

from benchmarks.framework import Row, RunSettings, Section, Spread, percentile
from benchmarks.report import markdown


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_spread_min_median_max() -> None:
    spread = Spread((3.0, 1.0, 2.0))
    assert (spread.min, spread.median, spread.max) == (1.0, 2.0, 3.0)
    assert spread.text() == "1.00 / 2.00 / 3.00"


def test_ratio_is_median_over_baseline_median() -> None:
    row = Row("case", "ms", Spread((10.0, 12.0, 30.0)), Spread((8.0, 10.0, 11.0)), "base")
    assert row.ratio == 1.2
    assert Row("alone", "ms", Spread((1.0,))).ratio is None


def test_markdown_holds_machine_facts_and_sections() -> None:
    section = Section("1", "Example", setup="how it ran", reading="what it means")
    section.add(Row("case", "ms", Spread((2.0,)), Spread((1.0,)), "base"))
    text = markdown([section], RunSettings(quick=False, repeats=3), total_s=12.0)
    assert "cores" in text
    assert "Python" in text
    assert "Node" in text
    assert "## 1. Example" in text
    assert "| case | ms | 2.00 | 1.00 (base) | 2.00x | - |" in text
    assert "**Reading.** what it means" in text
