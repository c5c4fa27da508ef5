"""Turning raw runs into medians, paired ratios, target verdicts and Markdown tables."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "TARGETS",
    "fmt",
    "median",
    "paired_ratio",
    "summarise_throughput",
    "table",
    "targets",
]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (None when there are none)."""
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    """A number for a table: thousands separators, ``digits`` decimals, ``-`` for missing."""
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one letter per column (``l`` or ``r``)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def paired_ratio(runs: list[dict[str, Any]], key: str, num: str, den: str, where: dict[str, Any]) -> float | None:
    """Median over repetitions of run[num][key] / run[den][key], pairing runs of the same repetition.

    Runs of one repetition are adjacent in time (interleaved), so pairing
    them cancels most of a shared machine's drift.
    """
    by_rep: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        if all(run.get(k) == v for k, v in where.items()):
            by_rep.setdefault(run["rep"], {})[run["label"]] = run
    ratios = []
    for pair in by_rep.values():
        a, b = pair.get(num), pair.get(den)
        if a and b and a.get(key) and b.get(key):
            ratios.append(a[key] / b[key])
    return median(ratios)


def summarise_throughput(
    runs: list[dict[str, Any]], labels: Sequence[str], levels: Sequence[int]
) -> list[dict[str, Any]]:
    """Per (client, concurrency): medians of each figure and the paired ratios to the floor and aiobotocore."""
    out = []
    for level in levels:
        for label in labels:
            mine = [r for r in runs if r["label"] == label and r["concurrency"] == level]
            if not mine:
                continue
            row: dict[str, Any] = {"label": label, "concurrency": level, "reps": len(mine)}
            for key in ("calls_per_s", "events_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000_calls", "max_rss_kb"):
                row[key] = median(r.get(key) for r in mine)
            row["errors"] = sum(r.get("errors", 0) for r in mine)
            where = {"concurrency": level}
            row["cpu_vs_floor"] = paired_ratio(runs, "cpu_s_per_1000_calls", label, "floor", where)
            row["calls_vs_floor"] = paired_ratio(runs, "calls_per_s", label, "floor", where)
            row["cpu_vs_aiobotocore"] = paired_ratio(runs, "cpu_s_per_1000_calls", label, "aiobotocore", where)
            row["calls_vs_aiobotocore"] = paired_ratio(runs, "calls_per_s", label, "aiobotocore", where)
            out.append(row)
    return out


TARGETS: list[dict[str, Any]] = [
    {"key": "cpu_c16", "what": "CPU per call at c=16, ours / floor", "limit": 1.5, "op": "<="},
    {"key": "cpu_c64", "what": "CPU per call at c=64, ours / floor", "limit": 1.5, "op": "<="},
    {"key": "calls_c16", "what": "throughput at c=16, ours / aiobotocore", "limit": 4.0, "op": ">="},
    {"key": "import", "what": "import time, ours / its four dependencies", "limit": 1.25, "op": "<="},
    {"key": "first_call", "what": "process start to first call, ours / floor", "limit": 1.1, "op": "<="},
    {"key": "recorder_eps", "what": "recorder events/s into the stub, one core", "limit": 40000, "op": ">="},
    {"key": "record_us", "what": "record() µs per event", "limit": 5.0, "op": "<="},
    {"key": "bytes_per_event", "what": "memory per queued event (bytes)", "limit": 1024, "op": "<="},
]


def targets(measured: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None when not measured)."""
    out = []
    for target in TARGETS:
        value = measured.get(target["key"])
        met = None
        if value is not None:
            met = value <= target["limit"] if target["op"] == "<=" else value >= target["limit"]
        out.append({**target, "measured": value, "met": met})
    return out
