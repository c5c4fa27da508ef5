"""Turning raw runs into medians, paired ratios, target verdicts and the Markdown report."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "TARGETS",
    "fmt",
    "median",
    "paired_ratio",
    "render",
    "render_instructions",
    "render_stages",
    "summarise_throughput",
    "table",
    "targets",
    "tight_loop_by_stage",
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
    runs: list[dict[str, Any]],
    labels: Sequence[str],
    levels: Sequence[int],
    workloads: Sequence[str] = ("user",),
) -> list[dict[str, Any]]:
    """Per (workload, client, concurrency): medians of each figure and the paired ratios to the floor and aiobotocore.

    Runs without a ``workload`` key count as the ``user`` workload.
    """
    out = []
    for workload in workloads:
        for level in levels:
            for label in labels:
                mine = [
                    r
                    for r in runs
                    if r["label"] == label and r["concurrency"] == level and r.get("workload", "user") == workload
                ]
                if not mine:
                    continue
                row: dict[str, Any] = {"workload": workload, "label": label, "concurrency": level, "reps": len(mine)}
                for key in (
                    "calls_per_s",
                    "events_per_s",
                    "p50_ms",
                    "p99_ms",
                    "cpu_s_per_1000_calls",
                    "cpu_us_per_call",
                    "max_rss_kb",
                ):
                    row[key] = median(r.get(key) for r in mine)
                if row["cpu_us_per_call"] is None and row["cpu_s_per_1000_calls"] is not None:
                    row["cpu_us_per_call"] = 1000 * row["cpu_s_per_1000_calls"]
                row["errors"] = sum(r.get("errors", 0) for r in mine)
                same = [r for r in runs if r.get("workload", "user") == workload]
                where = {"concurrency": level}
                row["cpu_vs_floor"] = paired_ratio(same, "cpu_s_per_1000_calls", label, "floor", where)
                row["calls_vs_floor"] = paired_ratio(same, "calls_per_s", label, "floor", where)
                row["cpu_vs_aiobotocore"] = paired_ratio(same, "cpu_s_per_1000_calls", label, "aiobotocore", where)
                row["calls_vs_aiobotocore"] = paired_ratio(same, "calls_per_s", label, "aiobotocore", where)
                out.append(row)
    return out


TARGETS: list[dict[str, Any]] = [
    {"key": "cpu_c16", "what": "CPU per call at c=16, ours / floor (user workload)", "limit": 1.8, "op": "<="},
    {"key": "cpu_c64", "what": "CPU per call at c=64, ours / floor (user workload)", "limit": 1.8, "op": "<="},
    {"key": "calls_c16", "what": "throughput at c=16, ours / aiobotocore (user workload)", "limit": 4.0, "op": ">="},
    {"key": "calls_c64", "what": "throughput at c=64, ours / aiobotocore (user workload)", "limit": 4.0, "op": ">="},
    {"key": "import", "what": "import time, ours / its four dependencies", "limit": 1.25, "op": "<="},
    {"key": "first_call", "what": "process start to first call, ours / floor", "limit": 1.2, "op": "<="},
    {
        "key": "recorder_eps",
        "what": "recorder events/s into the stub, one core (user's events)",
        "limit": 40000,
        "op": ">=",
    },
    {"key": "record_us", "what": "record() µs per event", "limit": 5.0, "op": "<="},
    {"key": "bytes_per_event", "what": "memory per queued event (bytes)", "limit": 1024, "op": "<="},
]
RATIO_TARGETS = ("cpu_c16", "cpu_c64", "calls_c16", "calls_c64", "import", "first_call")


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


TIGHT_TO_INPLACE = {
    "events": "build the 10 events (user code)",
    "serialise": "to_wire + JSON body",
    "request": "request build (shape, validation)",
    "signing": "signing",
}


def tight_loop_by_stage(stages: dict[str, Any] | None) -> dict[str, float]:
    """The tight-loop figures of ``benchmarks.stages`` summed per in-place stage name (top-level entries only)."""
    out: dict[str, float] = {}
    for entry in (stages or {}).get("stages", []):
        name = TIGHT_TO_INPLACE.get(entry.get("inplace") or "")
        if name and not entry.get("part_of") and entry.get("us") is not None:
            out[name] = out.get(name, 0.0) + float(entry["us"])
    return out


def render_stages(profiles: list[dict[str, Any]], tight: dict[str, Any] | None) -> str:
    """The in-place stage table: one column per profiled client, the tight-loop figure of ours beside it."""
    profiles = [p for p in profiles if p and p.get("stages")]
    if not profiles:
        return "No in-place profile."
    tight_us = tight_loop_by_stage(tight)
    header = ["stage (µs of client CPU per call)"] + [p["client"] for p in profiles]
    ours = next((p for p in profiles if p["client"] == "ours"), None)
    floor = next((p for p in profiles if p["client"] == "floor"), None)
    if ours and floor:
        header.append("ours - floor")
    if ours and tight_us:
        header += ["ours, tight loop", "in place ÷ tight loop"]
    rows = []
    names = [s["stage"] for s in profiles[0]["stages"]]
    for i, name in enumerate(names):
        row = [name] + [fmt(p["stages"][i]["us_per_call"], 1) for p in profiles]
        if ours and floor:
            a, b = ours["stages"][i]["us_per_call"], floor["stages"][i]["us_per_call"]
            row.append(fmt(a - b, 1) if a is not None and b is not None else "-")
        if ours and tight_us:
            t = tight_us.get(name)
            here = ours["stages"][i]["us_per_call"]
            row += [fmt(t, 1), fmt(here / t, 2, "x") if t and here is not None else ""]
        rows.append(row)
    total = ["**CPU per call (sum)**"] + [fmt(p["cpu_us_per_call"], 1) for p in profiles]
    if ours and floor:
        total.append(fmt(ours["cpu_us_per_call"] - floor["cpu_us_per_call"], 1))
    if ours and tight_us:
        t_sum = sum(tight_us.values())
        covered = sum(
            s["us_per_call"] or 0 for s in ours["stages"] if s["stage"] in tight_us and s["us_per_call"] is not None
        )
        total += [fmt(t_sum, 1) + " (4 stages)", fmt(covered / t_sum, 2, "x") + " (same 4)" if t_sum else ""]
    rows.append(total)
    rows.append(
        ["samples in the timed section"]
        + [fmt(p["samples"]) for p in profiles]
        + [""] * (len(header) - 1 - len(profiles))
    )
    methods = sorted({p["method"] for p in profiles})
    notes = [p["note"] for p in profiles if p.get("note")]
    text = [
        table(header, rows),
        "",
        f"Sampled with: {'; '.join(methods)}. Each stage's µs = its share of the samples x the CPU per call "
        "measured in the same run (user workload, c=16, the stub).",
    ]
    text += [f"Note: {n}" for n in notes]
    return "\n".join(text)


def render_instructions(counts: dict[str, Any]) -> str:
    """The callgrind table: instructions per call by workload and client, and ours ÷ floor."""
    rows = []
    for run in counts.get("runs", []):
        floor = next(
            (
                r["instructions_per_call"]
                for r in counts["runs"]
                if r["workload"] == run["workload"] and r["client"] == "floor"
            ),
            None,
        )
        ratio = run["instructions_per_call"] / floor if floor and run["instructions_per_call"] else None
        rows.append(
            [
                run["workload"],
                run["client"],
                fmt(run["calls"]),
                fmt(run["instructions_per_call"]),
                fmt(ratio, 3, "x"),
            ]
        )
    return "\n".join(
        [
            table(["workload", "client", "calls counted", "instructions per call", "÷ floor"], rows),
            "",
            f"valgrind --tool=callgrind, counting only the timed section (c={counts.get('concurrency', 16)}, "
            "after the warm-up) of the client's process; the stub runs outside valgrind.",
        ]
    )


WORKLOAD_TEXT = {
    "user": (
        "user workload (the headline): each call builds its ten events as a user writes them: ours "
        "`Event(...)` from a properties dict and `datetime.now(timezone.utc)`; aiobotocore dicts with "
        "`json.dumps(properties)` and the datetime; the floor the same dicts with epoch seconds, one JSON body "
        "and SigV4 signed by hand (stdlib, key cached per day)"
    ),
    "prebuilt": (
        "pre-built workload (lighter): ten events built once and reused by every call; the floor posts "
        "constant pre-built bytes with constant headers (no serialising, no signing)"
    ),
    "floats": (
        "first harness's workload: ours and aiobotocore build the events per call from `time.time()` floats; "
        "the floor posts constant pre-built bytes"
    ),
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _headline(summary: list[dict[str, Any]]) -> list[list[str]]:
    by = {(r["workload"], r["label"], r["concurrency"]): r for r in summary}
    rows = []
    for (workload, label, level), row in by.items():
        if label != "ours":
            continue
        floor = by.get((workload, "floor", level)) or {}
        boto = by.get((workload, "aiobotocore", level)) or {}
        rows.append(
            [
                workload,
                str(level),
                fmt(row["cpu_us_per_call"], 0),
                fmt(floor.get("cpu_us_per_call"), 0),
                f"**{fmt(row['cpu_vs_floor'], 2, 'x')}**",
                fmt(row["calls_per_s"]),
                fmt(boto.get("calls_per_s")),
                f"**{fmt(row['calls_vs_aiobotocore'], 2, 'x')}**",
            ]
        )
    return rows


def dependency_bound(imports: dict[str, Any] | None, first: dict[str, Any] | None) -> dict[str, float] | None:
    """The least start-to-first-call ratio to the floor that the declared dependencies allow, or None.

    The floor imports aiohttp; any client on the four dependencies imports
    them all, so it starts at least their extra import time (best of each,
    fresh processes) after the floor's best start to first call.
    """
    if not imports or not first:
        return None
    best = imports.get("best_s") or {}
    deps, alone = best.get("its four dependencies"), best.get("aiohttp alone")
    floor = ((first.get("best") or {}).get("floor") or {}).get("since_spawn_s")
    if not deps or not alone or not floor:
        return None
    extra = max(0.0, deps - alone)
    return {"extra_s": extra, "floor_s": floor, "ratio": 1 + extra / floor}


def render(results: dict[str, Any]) -> str:
    """The Markdown report."""
    m = results["machine"]
    plan = results["plan"]
    summary = results["throughput_summary"]
    parts = [
        "# aiopersonalize-events benchmarks",
        "",
        f"{m['date']} · {m['nproc']} cores, {m['cpu']} · {m['python']} · {m['platform']} · "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + f" · git {m.get('git')}",
        "",
        f"Command: `{results['command']}` · stub: {results['stub']} · {plan['reps']} repetition(s) of "
        f"{plan['duration']:g} s per workload, client and concurrency, interleaved; medians; ratios paired "
        "within a repetition.",
        "",
        "## Headline: ours against the floor and aiobotocore (PutEvents, 10 events per call)",
        "",
        table(
            [
                "workload",
                "c",
                "ours CPU µs/call",
                "floor CPU µs/call",
                "ours ÷ floor CPU (target ≤ 1.8x)",
                "ours calls/s",
                "aiobotocore calls/s",
                "ours ÷ aiobotocore calls/s (target ≥ 4x)",
            ],
            _headline(summary),
        ),
        "",
        "CPU per call is the client process's own CPU time (`time.process_time()`) over the timed section divided "
        "by the calls made; the µs columns are medians over repetitions, the ratios medians of the ratios paired "
        "within a repetition (so they need not equal the ratio of the medians).",
    ]
    for workload in plan.get("workloads", ["user"]):
        rows = []
        for row in summary:
            if row["workload"] != workload:
                continue
            rows.append(
                [
                    row["label"],
                    str(row["concurrency"]),
                    fmt(row["calls_per_s"]),
                    fmt(row["events_per_s"]),
                    fmt(row["p50_ms"], 2),
                    fmt(row["p99_ms"], 2),
                    fmt(row["cpu_us_per_call"], 0),
                    fmt((row["max_rss_kb"] or 0) / 1024, 1),
                    fmt(row["cpu_vs_floor"], 2, "x"),
                    fmt(row["calls_vs_floor"], 2, "x"),
                    fmt(row["calls_vs_aiobotocore"], 2, "x"),
                ]
            )
        if not rows:
            continue
        parts += [
            "",
            f"## Throughput, {workload} workload",
            "",
            _sentence(WORKLOAD_TEXT.get(workload, workload)),
            "",
            table(
                [
                    "client",
                    "c",
                    "calls/s",
                    "events/s",
                    "p50 ms",
                    "p99 ms",
                    "CPU µs/call",
                    "peak RSS MB",
                    "CPU ÷ floor",
                    "calls/s ÷ floor",
                    "calls/s ÷ aiobotocore",
                ],
                rows,
            ),
        ]
    boto16 = next(
        (r for r in summary if r["label"] == "aiobotocore" and r["concurrency"] == 16 and r["workload"] == "user"),
        None,
    )
    if boto16 and boto16.get("cpu_us_per_call"):
        parts += [
            "",
            f"Scale: aiobotocore spends {boto16['cpu_us_per_call'] / 1000:.2f} ms of CPU per call here at c=16 (user "
            "workload); issue 7 quotes about 0.8 ms, so absolute figures on this machine are roughly "
            f"{boto16['cpu_us_per_call'] / 800:.1f} times slower than on the machine behind that figure.",
        ]
    counts = results.get("instructions")
    if counts:
        parts += ["", "## Instructions per call (callgrind, deterministic)", "", render_instructions(counts)]
    profiles = results.get("inplace") or []
    if profiles:
        parts += [
            "",
            "## Stage costs in place (inside the real request loop, c=16, user workload)",
            "",
            render_stages(profiles, results.get("stages")),
        ]
        ours = next((p for p in profiles if p.get("client") == "ours"), None)
        functions = (ours or {}).get("functions") or {}
        if functions.get("own_by_package"):
            parts += [
                "",
                "Ours, by package (own time) and by function:",
                "",
                table(
                    ["package (own time)", "share", "µs/call"],
                    [
                        [r["name"], fmt(100 * r["share"], 1, "%"), fmt(r["us_per_call"], 1)]
                        for r in functions["own_by_package"][:12]
                    ],
                ),
                "",
                table(
                    ["our function (inclusive)", "share", "µs/call"],
                    [
                        [r["name"], fmt(100 * r["share"], 1, "%"), fmt(r["us_per_call"], 1)]
                        for r in functions["inclusive_ours"][:15]
                    ],
                ),
                "",
                table(
                    ["function (own time)", "share", "µs/call"],
                    [
                        [r["name"], fmt(100 * r["share"], 1, "%"), fmt(r["us_per_call"], 1)]
                        for r in functions["own_top"][:15]
                    ],
                ),
            ]
    imports = results.get("imports")
    first = results.get("first_call")
    if imports or first:
        parts += ["", "## Start-up", ""]
    if imports:
        med, best = imports["median_s"], imports.get("best_s", {})
        irows = [[name, fmt(1000 * (v or 0), 1), fmt(1000 * best.get(name, 0), 1)] for name, v in med.items()]
        parts += [
            table(["cold import (fresh process, bytecode cached)", "median ms", "best ms"], irows),
            "",
            "`import aiopersonalize_events` ÷ its four dependencies together: "
            f"**{fmt(imports.get('ours_vs_deps_best'), 2)}x** best of "
            f"{len(imports['samples_s']['aiopersonalize_events'])} (median of paired ratios "
            f"{fmt(imports['ours_vs_deps'], 2)}x)",
        ]
        added = imports.get("added_by_ours") or {}
        if added.get("top_self_ms"):
            top = ", ".join(f"{e['module']} {e['self_ms']:.1f}" for e in added["top_self_ms"][:8])
            parts += [
                "",
                f"What ours adds after its dependencies are loaded (`-X importtime`): {added['total_ms']:.1f} ms; "
                f"largest self times (ms): {top}",
            ]
    if first:
        frows = []
        for label, med in first["median"].items():
            frows.append(
                [
                    label,
                    fmt(1000 * (med["since_spawn_s"] or 0), 1),
                    fmt(1000 * first.get("best", {}).get(label, {}).get("since_spawn_s", 0), 1),
                    fmt(1000 * (med["interpreter_s"] or 0), 1),
                    fmt(1000 * (med["client_setup_s"] or 0), 1),
                    fmt(1000 * (med["first_call_s"] or 0), 1),
                    fmt((med["max_rss_kb"] or 0) / 1024, 1),
                ]
            )
        parts += [
            "",
            table(
                [
                    "client (user workload)",
                    "start → first call, median ms",
                    "best ms",
                    "interpreter ms",
                    "import + client ms",
                    "first call ms",
                    "RSS MB",
                ],
                frows,
            ),
            "",
            f"Start to first call, ours ÷ floor: **{fmt(first.get('ours_vs_floor_best'), 2)}x** best of "
            f"{plan.get('first_reps', '')} (median of paired ratios {fmt(first['ours_vs_floor'], 2)}x); "
            f"ours ÷ aiobotocore (median of paired ratios): {fmt(first['ours_vs_aiobotocore'], 2)}x. "
            "Start-up work is fixed, so interference from other processes only adds to it: the best run is the "
            "least disturbed estimate, and the target is judged on it.",
        ]
        bound = dependency_bound(imports, first)
        if bound is not None:
            parts += [
                "",
                f"What the declared dependencies alone cost: importing aiohttp, aws-requests-auth, attrs and cattrs "
                f"takes {1000 * bound['extra_s']:.1f} ms more than aiohttp alone (best of each), so a client built on "
                f"them starts no faster than about **{bound['ratio']:.2f}x** the floor (best "
                f"{1000 * bound['floor_s']:.1f} ms), before any code of its own. aws-requests-auth imports `requests` "
                "(and urllib3, charset_normalizer) at the top of its module.",
            ]
    rec = results.get("recorder")
    if rec:
        parts += ["", "## Recorder", ""]
        if "skipped" in rec:
            parts.append(f"Skipped: {rec['skipped']}")
        else:
            built, pre = rec["built"], rec["prebuilt"]
            mem, micro = rec["memory"], rec["micro"]
            parts += [
                table(
                    ["measure", "value"],
                    [
                        [
                            "**sustained events/s into the stub, one core (events built per record() from a "
                            "properties dict and a datetime)**",
                            f"**{fmt(built['events_per_s'])}**",
                        ],
                        ["  CPU µs per event (build + record + send)", fmt(built["cpu_us_per_event"], 1)],
                        ["sustained events/s into the stub (pre-built events)", fmt(pre["events_per_s"])],
                        ["  CPU µs per event (record + send)", fmt(pre["cpu_us_per_event"], 1)],
                        ["`record()` µs per call (pre-built event, median)", fmt(micro["record_us"], 2)],
                        ["`Event(...)` µs per event (for comparison)", fmt(micro["event_build_us"], 2)],
                        ["bytes per queued event, event included (tracemalloc)", fmt(mem["bytes_per_queued_event"])],
                        ["  of which the queue's own overhead", fmt(mem["bytes_per_event_queue_overhead"])],
                        [
                            "  its CPU per event ÷ the floor's (floor CPU per call at c=16 ÷ 10, user workload)",
                            fmt(rec.get("cpu_per_event_vs_floor"), 2, "x"),
                        ],
                        ["dropped / failed during the runs", f"{fmt(built['dropped'])} / {fmt(built['failed'])}"],
                        ["stub received exactly the events sent", "yes" if rec["stub_events_match"] else "**no**"],
                    ],
                ),
            ]
    verdicts = results.get("targets") or []
    if verdicts:
        trows = []
        for t in verdicts:
            unit = "x" if t["key"] in RATIO_TARGETS else ""
            digits = 2 if unit else (1 if t["key"] == "record_us" else 0)
            met = "-" if t["met"] is None else ("met" if t["met"] else "**not met**")
            trows.append([t["what"], f"{t['op']} {t['limit']:g}{unit}", fmt(t["measured"], digits, unit), met])
        parts += ["", "## Targets", "", table(["target", "limit", "measured", "verdict"], trows)]
    stages = results.get("stages")
    if stages:
        srows = [[e["name"], fmt(e["us"], 1), fmt(e.get("best_us"), 1), e.get("note") or ""] for e in stages["stages"]]
        top_level = [e for e in stages["stages"] if not e.get("part_of") and e["us"] is not None]
        srows.append(
            [
                "**sum of the top-level stages**",
                fmt(sum(e["us"] for e in top_level), 1),
                fmt(sum(e.get("best_us") or 0 for e in top_level), 1),
                "our CPU per call outside aiohttp, as measured in isolation",
            ]
        )
        arows = [
            [a["name"], a["replaces"].strip(), fmt(a["us"], 1), fmt(a.get("best_us"), 1)]
            for a in stages["alternatives"]
        ]
        checks = ", ".join(f"{k}: {v}" for k, v in stages["checks"].items())
        parts += [
            "",
            "## Our stages in a tight loop (no I/O; for comparison only: the in-place figures are those to quote)",
            "",
            table(["stage", "median µs", "best µs", "note"], srows, align="lrrl"),
            "",
            table(["alternative", "replaces", "median µs", "best µs"], arows, align="llrr"),
            "",
            f"Output checks: {checks}",
        ]
    if results.get("stub_trials"):
        strows = [
            [
                t["kind"],
                str(t["rep"]),
                fmt(t["stub_us_per_request"], 1),
                fmt(t["floor_calls_per_s"]),
                fmt(100 * t["stub_cpu_share"], 0, "%"),
            ]
            for t in results["stub_trials"]
        ]
        parts += [
            "",
            "## Stub choice (floor client at c=64, user workload)",
            "",
            table(["stub", "rep", "stub CPU µs/request", "floor calls/s", "stub busy"], strows),
        ]
    notes = results.get("warnings") or []
    skipped = results.get("skipped_clients") or {}
    if notes or skipped:
        parts += ["", "## Notes", ""]
        parts += [f"- {name} skipped: {why}" for name, why in skipped.items()]
        parts += [f"- {w}" for w in notes]
    parts += ["", f"Finished in {results['elapsed_s']:.0f} s; load average at the end {results['loadavg_end']}."]
    return "\n".join(parts) + "\n"
