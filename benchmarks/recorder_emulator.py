"""The EventRecorder against the built-in emulator: sustained events/s and memory per queued event.

``python -m benchmarks.recorder_emulator [--events N] [--sessions S]`` starts
the emulator in its own process on 127.0.0.1 (``--quiet``, no signature
checks, no faults), records ``N`` pre-built events across ``S`` sessions as
fast as the recorder takes them (``await recorder.put(...)``, so nothing is
dropped), closes it, and reports events/s, the recorder process's CPU per
event, and what the emulator stored (it must equal ``N``). Memory per queued
event is measured separately with tracemalloc: ``M`` events recorded into a
recorder that cannot send (``flush_interval`` of an hour, full groups held by
a stalled send slot), divided by ``M``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from typing import Any

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient

TRACKER = "bench-tracker"


def _start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiopersonalize_events.emulator", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {url!r}")
    return proc, url


def _stored_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_emulator/records/events", timeout=60) as answer:  # loopback only
        return len(json.load(answer))


async def _throughput(url: str, n: int, sessions: int) -> dict[str, Any]:
    events = [Event(event_type="click", item_id=f"item-{i % 997}", sent_at=1_700_000_000 + i) for i in range(n)]
    config = ClientConfig(max_connections=16)
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, credentials=Credentials("AKIDBENCH", "bench-secret"), config=config
    ) as client:
        recorder = client.event_recorder(tracking_id=TRACKER, max_queue_size=20_000, max_concurrency=16)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with recorder:
            for i, event in enumerate(events):
                await recorder.put(event, session_id=f"session-{i % sessions}")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stats = recorder.stats
    return {
        "events": n,
        "seconds": wall,
        "events_per_s": n / wall,
        "cpu_us_per_event": cpu / n * 1e6,
        "sent": stats.sent,
        "failed": stats.failed,
        "dropped": stats.dropped,
    }


async def _memory_per_event(m: int) -> float:
    """Bytes held per queued event (event included), for ``m`` events that cannot leave the queue."""

    async def never(_: Any, __: Any) -> None:
        await asyncio.Event().wait()

    client = PersonalizeEventsClient(region="us-east-1", credentials=Credentials("AKIDBENCH", "bench-secret"))
    client._invoke = never  # type: ignore[method-assign, assignment]  # a send that never returns: everything stays queued
    recorder = client.event_recorder(tracking_id=TRACKER, max_queue_size=m + 1, flush_interval=3600)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(m):
        recorder.record(
            Event(event_type="click", item_id=f"item-{i}", sent_at=1_700_000_000 + i), session_id=f"s{i % 500}"
        )
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await recorder.close(timeout=0)
    await client.close()
    return (held - base) / m


def main(argv: list[str] | None = None) -> int:
    """Run the recorder against a fresh emulator process and print a small Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    proc, url = _start_emulator()
    try:
        runs = []
        for _ in range(args.reps):
            runs.append(asyncio.run(_throughput(url, args.events, args.sessions)))
        stored = _stored_count(url)
    finally:
        proc.terminate()
        proc.wait(10)
    logging.getLogger("aiopersonalize_events").setLevel(logging.ERROR)  # its close fails 20,000 events on purpose
    per_event = asyncio.run(_memory_per_event(20_000))
    rate = statistics.median(r["events_per_s"] for r in runs)
    cpu = statistics.median(r["cpu_us_per_event"] for r in runs)
    print(f"recorder -> emulator, {args.events:,} events x {args.reps} runs across {args.sessions} sessions")
    print("| measure | value |\n|---|---:|")
    print(f"| sustained events/s (median) | {rate:,.0f} |")
    print(f"| recorder process CPU µs per event (median) | {cpu:.1f} |")
    print(f"| bytes per queued event, event included (tracemalloc) | {per_event:,.0f} |")
    print(
        f"| sent / failed / dropped (all runs) | {sum(r['sent'] for r in runs):,} / "
        f"{sum(r['failed'] for r in runs)} / {sum(r['dropped'] for r in runs)} |"
    )
    print(f"| distinct events the emulator stored | {stored:,} |")
    return 0 if stored == args.events * args.reps else 1


if __name__ == "__main__":
    sys.exit(main())
