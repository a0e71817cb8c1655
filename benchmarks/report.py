"""The printed table and docs/BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.framework import Row, RunSettings, Section


def machine() -> dict[str, str]:
    node = shutil.which("node")
    node_version = "-"
    if node:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
        node_version = done.stdout.strip() or "-"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count() or "?"),
        "python": platform.python_version(),
        "node": node_version,
        "platform": platform.platform(terse=True),
    }


def _ratio(row: Row) -> str:
    ratio = row.ratio
    return "-" if ratio is None else f"{ratio:.2f}x"


def _cells(row: Row) -> list[str]:
    baseline = f"{row.baseline.text()} ({row.baseline_case})" if row.baseline is not None else "-"
    return [row.case, row.unit, row.measured.text(), baseline, _ratio(row), row.goal or "-"]


HEADER = ["case", "unit", "min / median / max", "baseline (same run)", "ratio", "goal"]


def print_table(sections: Sequence[Section]) -> None:
    rows: list[list[str]] = [HEADER]
    for section in sections:
        rows.append([f"[{section.number}] {section.title}", "", "", "", "", ""])
        if section.error:
            rows.append([f"  FAILED: {section.error}", "", "", "", "", ""])
        rows.extend(["  " + cells[0], *cells[1:]] for cells in map(_cells, section.rows))
    widths = [max(len(r[i]) for r in rows if r[1] or i == 0) for i in range(len(HEADER))]
    for r in rows:
        if not r[1] and r is not rows[0]:
            print(r[0], flush=True)
            continue
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip(), flush=True)


def markdown(sections: Sequence[Section], settings: RunSettings, total_s: float) -> str:
    info = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); do not edit by hand, run it again."
        + (
            " **This is a quick smoke run (BENCH_QUICK=1): its figures are not meant to be read.**"
            if settings.quick
            else ""
        ),
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cores']} cores, {info['platform']}",
        f"- Python {info['python']}, Node {info['node']}",
        f"- repeats per figure: {settings.repeats} (min / median / max shown; one value when there is one run);"
        f" whole run {total_s:.0f} s",
        "- every ratio is measured median / baseline median, both from this run: the machine is shared and noisy,"
        " so read ratios, not absolute numbers. Nothing here is a test; no figure fails the build.",
        "",
    ]
    for section in sections:
        lines += [f"## {section.number}. {section.title}", ""]
        if section.setup:
            lines += [section.setup, ""]
        if section.error:
            lines += [f"**Did not complete:** {section.error}", ""]
        if section.rows:
            lines.append("| " + " | ".join(HEADER) + " |")
            lines.append("|" + "---|" * len(HEADER))
            lines += ["| " + " | ".join(_cells(row)) + " |" for row in section.rows]
            lines.append("")
        if section.notes:
            lines += ["```", *section.notes, "```", ""]
        if section.reading:
            lines += [f"**Reading.** {section.reading}", ""]
        lines += [f"_({section.elapsed_s:.0f} s)_", ""]
    return "\n".join(lines).rstrip() + "\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
