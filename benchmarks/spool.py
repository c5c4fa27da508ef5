"""The recorder's spools side by side: ``record()`` latency and end-to-end events/s, memory vs SQLite.

``python -m benchmarks.spool [--duration S] [--reps N]`` starts the stub
server (``benchmarks.stub``, 127.0.0.1 only) and runs, in a fresh process
each and interleaved (memory, sqlite, memory, sqlite, ...), a recorder that
records the user's events (built per call from a ``properties`` dict and a
``datetime``, as ``benchmarks.worker``'s recorder mode does) for ``S``
seconds, in bursts of 50 with the loop free between bursts and backing off
while more than 4,000 are pending, then flushes. Every ``record()`` call is
timed in place (``perf_counter_ns`` around the call; the timer's own cost is
reported). Reported per spool, as medians over the runs: ``record()``
median and p99, events/s delivered (sent / wall time, flush included), and
the process's CPU per event (``process_time``: the loop and, for SQLite, its
writer thread); then the SQLite/memory ratios, paired run by run.

The SQLite spool's file lives in a fresh temporary directory per run
(``SqliteSpool(path)`` with its defaults: WAL, ``synchronous=NORMAL``, group
commit every 50 ms) and is removed afterwards. ``--worker`` runs one
measurement and prints ``RESULT {json}`` (what the harness does per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.procs import ROOT, Stub, child_env, children, parse_result
from benchmarks.worker import _event_factory

TRACKING_ID = "bench-spool"
SESSIONS = [f"session-{i}" for i in range(64)]
HIGH_WATER = 4000
BURST = 50


def _timer_cost_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        t0 = clock()
        samples.append(clock() - t0)
    return float(statistics.median(samples))


async def _measure(url: str, kind: str, duration: float, path: str | None) -> dict[str, Any]:
    from aiopersonalize_events import Credentials, PersonalizeEventsClient

    build = _event_factory()
    spool: Any = None
    if kind == "sqlite":
        from aiopersonalize_events import SqliteSpool

        assert path is not None
        spool = SqliteSpool(path)
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, credentials=Credentials("AKIDBENCH", "bench-secret")
    ) as client:
        recorder = client.event_recorder(tracking_id=TRACKING_ID, spool=spool)
        async with recorder:
            record = recorder.record
            for i in range(2000):  # warm-up: connections, code paths, the file's first pages
                record(build(i), session_id=SESSIONS[i % 64])
            await asyncio.wait_for(recorder.flush(), 60)
            warm = recorder.stats
            clock = time.perf_counter_ns
            latencies: list[int] = []
            keep = latencies.append
            i = 0
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            deadline = wall0 + duration
            while time.perf_counter() < deadline:
                if recorder.stats.pending > HIGH_WATER:
                    await asyncio.sleep(0.0005)  # back off while the recorder drains, as a busy service would
                    continue
                for _ in range(BURST):
                    event = build(i)
                    t0 = clock()
                    record(event, session_id=SESSIONS[i % 64])
                    keep(clock() - t0)
                    i += 1
                await asyncio.sleep(0)
            await asyncio.wait_for(recorder.flush(), 60)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            stats = recorder.stats
    sent = stats.sent - warm.sent
    written = 0
    if path is not None:
        import sqlite3

        conn = sqlite3.connect(path)
        written = conn.execute("SELECT value FROM counters WHERE name = 'written'").fetchone()[0]
        conn.close()
    latencies.sort()
    return {
        "kind": kind,
        "recorded": i,
        "sent": sent,
        "failed": stats.failed,
        "dropped": stats.dropped,
        "pending": stats.pending,
        "wall_s": wall,
        "events_per_s": sent / wall if wall else 0.0,
        "cpu_us_per_event": 1e6 * cpu / sent if sent else float("nan"),
        "record_p50_ns": latencies[len(latencies) // 2],
        "record_p99_ns": latencies[int(len(latencies) * 0.99)],
        "timer_ns": _timer_cost_ns(),
        "written_share": written / stats.recorded if stats.recorded else 0.0,
    }


def _worker(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as directory:
        path = os.path.join(directory, "events.db") if args.worker == "sqlite" else None
        result = asyncio.run(_measure(args.url, args.worker, args.duration, path))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def _run_one(url: str, kind: str, duration: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.spool", "--worker", kind, "--url", url, "--duration", str(duration)]
    proc = children.start(cmd, env=child_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=duration + 120)
    finally:
        children.forget(proc)
    result = parse_result(out)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"{kind} run failed (exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a Markdown table; exit 1 when an event went missing."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of recording per run (default 3)")
    parser.add_argument("--reps", type=int, default=3, help="runs per spool, interleaved (default 3)")
    parser.add_argument("--worker", choices=["memory", "sqlite"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    children.install()
    runs: dict[str, list[dict[str, Any]]] = {"memory": [], "sqlite": []}
    with Stub("raw") as stub:
        for _ in range(args.reps):
            for kind in ("memory", "sqlite"):
                runs[kind].append(_run_one(stub.url, kind, args.duration))
    print(
        f"recorder -> stub (127.0.0.1), user's events, {args.duration:g}s x {args.reps} runs per spool, "
        f"interleaved; medians (os.cpu_count()={os.cpu_count()})\n"
    )
    print("| measure | memory spool | SQLite spool | SQLite / memory |")
    print("|---|---:|---:|---:|")
    rows = [
        ("record() median, ns (timer included)", "record_p50_ns", "{:,.0f}"),
        ("record() p99, ns", "record_p99_ns", "{:,.0f}"),
        ("end-to-end events/s (sent / wall, flush included)", "events_per_s", "{:,.0f}"),
        ("process CPU µs per event (loop + writer thread)", "cpu_us_per_event", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        paired = [s[key] / m[key] for m, s in zip(runs["memory"], runs["sqlite"], strict=True) if m[key]]
        ratio = statistics.median(paired) if paired else float("nan")
        memory, sqlite = _median(runs["memory"], key), _median(runs["sqlite"], key)
        print(f"| {label} | {fmt.format(memory)} | {fmt.format(sqlite)} | {ratio:.2f} |")
    written = _median(runs["sqlite"], "written_share")
    print(f"\nSQLite spool: {written:.0%} of the events were written to the file (the rest were accepted by the")
    print("service before they were due on disk, commit_interval / 2, and never written)")
    timer = _median(runs["memory"] + runs["sqlite"], "timer_ns")
    print(f"\nperf_counter_ns() pair alone: {timer:.0f} ns (included in the record() figures above)")
    lost = [r for rs in runs.values() for r in rs if r["failed"] or r["dropped"] or r["pending"]]
    for r in lost:
        print(f"run {r['kind']}: failed={r['failed']} dropped={r['dropped']} pending={r['pending']}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
