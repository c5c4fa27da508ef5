"""The fleet through Redis beside the in-process recorder: end-to-end events/s and the producers' CPU per event.

``python -m benchmarks.fleet [--events N] [--reps R] [--producers P] [--forwarders F]``
starts a ``redis-server`` (loopback, a temporary directory, append-only file
with ``appendfsync everysec``, as production runs it) and the emulator (in
this process, signatures checked for form only), then runs two set-ups,
interleaved ``R`` times (redis, in-process, redis, in-process, ...), each
with ``P`` producer processes (default 4) recording ``N`` events each
(default 20,000), the user's events (built per call from a ``properties``
dict and a ``datetime``), in bursts of 50 with the loop free between bursts
and backing off while more than 4,000 are pending (no drops):

- **redis**: each producer's recorder has a ``RedisStreamSpool``; ``F``
  forwarders (default 2, ``aiopersonalize-events forward``, started first,
  eight calls in flight each) send the stream to the emulator. The run ends
  when the emulator holds every event.
- **in-process**: each producer's recorder sends to the emulator itself
  (the default memory spool). The run ends when every producer's
  ``close()`` returned (everything sent).

Reported per set-up, as medians over the runs: end-to-end events/s (events
/ (end - the first producer's first ``record()``)), the producer's CPU per
event (``process_time`` from its first ``record()`` until its recorder
closed: intake, and either the spool's XADDs or the HTTP calls), the
``record()`` median, events per call and events sent twice. Everything
shares this machine's cores (``os.cpu_count()`` is printed): the emulator,
Redis, forwarders and producers compete for them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, child_env, children, parse_result

TRACKING_ID = "bench-fleet"
SESSIONS = [f"session-{i}" for i in range(512)]
ITEMS = [f"item-{i}" for i in range(100)]
HIGH_WATER = 4000
BURST = 50


# -- a producer process ------------------------------------------------------------------------------------------


async def _produce(mode: str, events: int, endpoint: str, redis_url: str | None, stream: str | None) -> dict[str, Any]:
    from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient

    spool: Any = None
    if mode == "redis":
        from aiopersonalize_events.redis import RedisStreamSpool

        assert redis_url is not None
        assert stream is not None
        spool = RedisStreamSpool(redis_url, stream=stream)
    now = datetime.now
    utc = timezone.utc
    pid = os.getpid()
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDBENCH", "bench-secret")
    ) as client:
        recorder = client.event_recorder(tracking_id=TRACKING_ID, spool=spool)
        async with recorder:
            record = recorder.record
            clock = time.perf_counter_ns
            latencies: list[int] = []
            keep = latencies.append
            cpu0 = time.process_time()
            start = time.time()
            i = 0
            while i < events:
                if recorder.stats.pending > HIGH_WATER:
                    await asyncio.sleep(0.0005)  # back off while the recorder drains, as a busy service would
                    continue
                for _ in range(min(BURST, events - i)):
                    event = Event(
                        event_type="click",
                        sent_at=now(utc),
                        item_id=ITEMS[i % 100],
                        properties={"device": "mobile", "page": "product", "position": i % 10},
                    )
                    t0 = clock()
                    record(event, session_id=f"{pid}-{SESSIONS[i % 512]}")
                    keep(clock() - t0)
                    i += 1
                await asyncio.sleep(0)
        end = time.time()
        cpu = time.process_time() - cpu0
    stats = recorder.stats
    latencies.sort()
    return {
        "mode": mode,
        "events": i,
        "sent": stats.sent,
        "lost": stats.failed + stats.dropped + stats.pending,
        "start": start,
        "end": end,
        "cpu_s": cpu,
        "record_p50_ns": latencies[len(latencies) // 2],
    }


def _producer(args: argparse.Namespace) -> int:
    result = asyncio.run(_produce(args.worker, args.events, args.endpoint, args.redis, args.stream))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# -- the harness -----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(Path(directory) / "redis.log")]
    process = children.start(args, stdout=subprocess.DEVNULL)
    for _ in range(1000):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def _start_producer(mode: str, events: int, endpoint: str, redis_url: str, stream: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "benchmarks.fleet", "--worker", mode, "--events", str(events)]
    cmd += ["--endpoint", endpoint, "--redis", redis_url, "--stream", stream]
    return children.start(cmd, env=child_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _start_forwarder(endpoint: str, redis_url: str, stream: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "aiopersonalize_events", "forward", "--redis", redis_url, "--stream", stream]
    cmd += ["--group", "bench", "--tracking-id", TRACKING_ID, "--consumer", name, "--endpoint-url", endpoint]
    cmd += ["--concurrency", "8", "--quiet"]
    with log.open("ab") as err:
        return children.start(cmd, env=child_env(), cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=err)


async def _finish(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("a producer did not finish in time")
        await asyncio.sleep(0.05)
    out, err = process.communicate()
    children.forget(process)
    result = parse_result(out)
    if process.returncode != 0 or result is None:
        raise RuntimeError(f"a producer failed (exit {process.returncode}): {err.decode(errors='replace')[-2000:]}")
    return result


async def _one_run(
    mode: str, emulator: Any, redis_url: str, args: argparse.Namespace, run: int, log: Path
) -> dict[str, Any]:
    emulator.reset()
    stream = f"bench:{{{mode}-{run}}}"
    forwarders = []
    if mode == "redis":
        forwarders = [
            _start_forwarder(emulator.endpoint_url, redis_url, stream, f"fwd-{n}", log) for n in range(args.forwarders)
        ]
        await asyncio.sleep(1.5)  # let them import and block on the empty stream
    producers = [
        _start_producer(mode, args.events, emulator.endpoint_url, redis_url, stream) for _ in range(args.producers)
    ]
    results = [await _finish(p, 600) for p in producers]
    total = sum(r["events"] for r in results)
    end = max(r["end"] for r in results)
    if mode == "redis":  # done when the group has read and acknowledged every entry: the service accepted them
        import redis.asyncio

        connection = redis.asyncio.Redis.from_url(redis_url)
        deadline = time.monotonic() + 600
        while True:
            (group,) = await connection.xinfo_groups(stream)
            if os.environ.get("BENCH_FLEET_DEBUG"):
                print(f"{time.time() - min(r['start'] for r in results):.2f}s {group}", file=sys.stderr)
            if group["lag"] == 0 and group["pending"] == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the forwarders did not deliver every event in time")
            await asyncio.sleep(0.02)
        end = time.time()
        await connection.aclose()
        for process in forwarders:
            process.terminate()
        for process in forwarders:
            await asyncio.to_thread(process.wait, 60)
            children.forget(process)
    stored = emulator.events(TRACKING_ID)
    calls = emulator.calls[("PutEvents", 200)]
    start = min(r["start"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    return {
        "mode": mode,
        "events": total,
        "stored": len({e["eventId"] for e in stored}),
        "lost": sum(r["lost"] for r in results),
        "events_per_s": total / (end - start),
        "cpu_us_per_event": 1e6 * cpu / total,
        "record_p50_ns": statistics.median(r["record_p50_ns"] for r in results),
        "events_per_call": total / calls if calls else 0.0,
        "duplicates": emulator.duplicates,
    }


async def _harness(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from aiopersonalize_events.emulator import Emulator

    runs: dict[str, list[dict[str, Any]]] = {"redis": [], "in-process": []}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as directory:
        redis_process, redis_url = _start_redis(directory)
        log = Path(directory) / "forwarders.log"
        try:
            async with Emulator() as emulator:
                for run in range(args.reps):
                    for mode in ("redis", "in-process"):
                        result = await _one_run(mode, emulator, redis_url, args, run, log)
                        runs[mode].append(result)
                        print(f"run {run + 1} {mode}: {result['events_per_s']:,.0f} events/s", file=sys.stderr)
        finally:
            redis_process.terminate()
            redis_process.wait(10)
            children.forget(redis_process)
    return runs


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(argv: list[str] | None = None) -> int:
    """Run both set-ups and print a Markdown table; exit 1 when an event went missing."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per producer (default 20,000)")
    parser.add_argument("--reps", type=int, default=2, help="runs per set-up, interleaved (default 2)")
    parser.add_argument("--producers", type=int, default=4, help="producer processes (default 4)")
    parser.add_argument("--forwarders", type=int, default=2, help="forwarder processes, redis set-up (default 2)")
    parser.add_argument("--worker", choices=["redis", "in-process"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _producer(args)
    children.install()
    runs = asyncio.run(_harness(args))
    print(
        f"{args.producers} producers x {args.events:,} events (the user's events), emulator on 127.0.0.1; "
        f"{args.reps} runs per set-up, interleaved; medians (os.cpu_count()={os.cpu_count()})\n"
    )
    print(f"| measure | in-process recorder | Redis stream + {args.forwarders} forwarders |")
    print("|---|---:|---:|")
    rows = [
        ("end-to-end events/s (into the emulator)", "events_per_s", "{:,.0f}"),
        ("producer CPU µs per event", "cpu_us_per_event", "{:.1f}"),
        ("record() median, ns (timer included)", "record_p50_ns", "{:,.0f}"),
        ("events per PutEvents call", "events_per_call", "{:.1f}"),
        ("events sent twice (duplicates)", "duplicates", "{:,.0f}"),
    ]
    for label, key, fmt in rows:
        local, fleet = _median(runs["in-process"], key), _median(runs["redis"], key)
        print(f"| {label} | {fmt.format(local)} | {fmt.format(fleet)} |")
    bad = [r for rs in runs.values() for r in rs if r["lost"] or r["stored"] != r["events"]]
    for r in bad:
        print(f"run {r['mode']}: {r['events']} recorded, {r['stored']} stored, {r['lost']} lost")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
