"""The emulator's per-call overhead on loopback, against a bare aiohttp handler.

``python -m benchmarks.emulator_overhead [--calls 1000] [--rounds 3]`` prints
milliseconds per ``put_events`` call (ten events, built per call as a user
writes them: a properties dict and ``datetime.now(timezone.utc)``) of our
client against a bare ``aiohttp.web`` handler answering ``{}``, against the
emulator without signature checks, and against the emulator verifying
signatures; the rounds are interleaved and the medians reported. Everything
runs in this one process on 127.0.0.1 (client and server share the loop, so
the figures are the sum of both sides' work per call).

It was ``tests/test_emulator_overhead.py``, a test that asserted nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timezone

from aiohttp import web

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

__all__ = ["main", "measure"]

ACCESS_KEY, SECRET_KEY = "AKIDTEST", "test-secret"


def _events(n: int) -> list[Event]:
    return [
        Event(
            event_type="click",
            sent_at=datetime.now(timezone.utc),
            event_id=f"e{n}-{k}",
            item_id=f"item-{k}",
            properties={"page": "home", "position": k},
        )
        for k in range(10)
    ]


async def _ms_per_call(url: str, calls: int, warmup: int) -> float:
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=url,
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        config=ClientConfig(max_attempts=1),
    )
    async with client:
        for n in range(warmup):
            await client.put_events(tracking_id="t", session_id="s", event_list=_events(n))
        started = time.perf_counter()
        for n in range(calls):
            await client.put_events(tracking_id="t", session_id="s", event_list=_events(n))
        return (time.perf_counter() - started) / calls * 1000.0


async def _bare_ms_per_call(calls: int, warmup: int) -> float:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return await _ms_per_call(f"http://127.0.0.1:{runner.addresses[0][1]}", calls, warmup)
    finally:
        await runner.cleanup()


async def measure(calls: int = 1000, rounds: int = 3, warmup: int = 50) -> dict[str, list[float]]:
    """Milliseconds per call against each server, one list of ``rounds`` figures per server (interleaved)."""
    results: dict[str, list[float]] = {"bare handler": [], "emulator": [], "emulator, verifying": []}
    for _ in range(rounds):
        results["bare handler"].append(await _bare_ms_per_call(calls, warmup))
        async with Emulator() as emu:
            results["emulator"].append(await _ms_per_call(emu.endpoint_url, calls, warmup))
        async with Emulator(credentials={ACCESS_KEY: SECRET_KEY}) as emu:
            results["emulator, verifying"].append(await _ms_per_call(emu.endpoint_url, calls, warmup))
        if emu.calls != {("PutEvents", 200): calls + warmup}:
            raise RuntimeError(f"the verifying emulator answered {emu.calls}, expected {calls + warmup} x 200")
    return results


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table: median ms per call and the added ms over the bare handler."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.calls, args.rounds, args.warmup))
    bare = statistics.median(results["bare handler"])
    print(f"put_events of 10 events, {args.calls:,} calls x {args.rounds} interleaved rounds, one process")
    print("| server | ms per call (median) | added over the bare handler | rounds |\n|---|---:|---:|---|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median - bare:+.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
