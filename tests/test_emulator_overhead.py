"""The emulator's per-call overhead on loopback, against a bare aiohttp handler (a benchmark, not a check).

Run it with ``pytest tests/test_emulator_overhead.py -m slow -s``; it prints
milliseconds per ``put_events`` call (10 events) of our client against a
bare handler answering ``{}``, against the emulator without signature
checks, and against the emulator verifying signatures. Nothing about time
is asserted.
"""

from __future__ import annotations

import statistics
import time

import pytest
from aiohttp import web

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

_CALLS = 1000
_WARM_UP = 50
_ROUNDS = 3
_EVENTS = [
    Event(event_type="click", sent_at=1700000000.5, event_id=f"e{i}", item_id="item-1", properties={"a": 1})
    for i in range(10)
]


async def _ms_per_call(url: str) -> float:
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=url,
        credentials=Credentials("AKIDTEST", "test-secret"),
        config=ClientConfig(max_attempts=1),
    )
    async with client:
        for _ in range(_WARM_UP):
            await client.put_events(tracking_id="t", session_id="s", event_list=_EVENTS)
        started = time.perf_counter()
        for _ in range(_CALLS):
            await client.put_events(tracking_id="t", session_id="s", event_list=_EVENTS)
        return (time.perf_counter() - started) / _CALLS * 1000.0


async def _bare_ms_per_call() -> float:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return await _ms_per_call(f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_emulator_overhead_per_call() -> None:
    """Prints the emulator's added milliseconds per call over a bare handler (median of 3 interleaved rounds)."""
    results: dict[str, list[float]] = {"bare handler": [], "emulator": [], "emulator, verifying": []}
    for _ in range(_ROUNDS):
        results["bare handler"].append(await _bare_ms_per_call())
        async with Emulator() as emu:
            results["emulator"].append(await _ms_per_call(emu.endpoint_url))
        async with Emulator(credentials={"AKIDTEST": "test-secret"}) as emu:
            results["emulator, verifying"].append(await _ms_per_call(emu.endpoint_url))
        assert emu.calls == {("PutEvents", 200): _CALLS + _WARM_UP}
    bare = statistics.median(results["bare handler"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:22s} {median:.3f} ms/call (+{median - bare:.3f} ms)  rounds: {[round(v, 3) for v in values]}")
