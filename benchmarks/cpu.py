"""CPU seconds used by a process and its descendants (from /proc), so a benchmark can say where a send's CPU went
when every process shares the machine's cores (Linux only; elsewhere the figures read as unavailable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of one process."""
    try:
        fields = (_PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu_s(roots: Mapping[str, int | None]) -> dict[str, float]:
    """For each named root pid, the CPU seconds of it and every descendant living now."""
    if not _PROC.is_dir():
        return {}
    stats = {int(p): s for p in os.listdir(_PROC) if p.isdigit() and (s := _stat(p)) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in stats.items():
        children.setdefault(ppid, []).append(pid)
    totals: dict[str, float] = {}
    for name, root in roots.items():
        if root is None or root not in stats:
            continue
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += stats[pid][1] if pid in stats else 0.0
            todo += children.get(pid, [])
        totals[name] = total
    return totals
