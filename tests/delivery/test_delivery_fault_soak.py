"""Fault soak: the recorder and the batching helpers under throttling, 5xx, dropped connections and latency spikes.

The emulator runs in a child process (so its store of accepted events does
not count against the client's memory, and the two share the machine's
cores); the test changes its faults at run time through the child's stdin
and reads what it accepted through its inspection routes
(``/_emulator/records/events`` and ``/_emulator/calls``, the HTTP faces of
``emu.events()`` and ``emu.calls``).

While a recorder and many concurrent ``put_events_batched`` /
``put_items_batched`` calls run, a chaos task keeps throttling, server
errors and dropped connections on and adds latency spikes, samples the
recorder's invariant and counts the client's open sockets. Afterwards:
every event is stored exactly once by ``eventId``, the counters add up, the
peak of traced memory stays under a bound derived from ``max_queue_size``,
and nothing of the library (task or socket) is left once closed.

The default run is CI-sized; the full run (``-m slow``) sends 70,000 events
across 1,000 sessions.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

from aiopersonalize_events import (
    BatchResult,
    ClientConfig,
    Credentials,
    Event,
    EventRecorder,
    Item,
    PersonalizeEventsClient,
)
from aiopersonalize_events.emulator import Emulator

TRACKER = "tracker-soak"
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/soak/ITEMS"
BASE_FAULTS = {"throttle": 0.06, "server_error": 0.06, "disconnect": 0.03}
SPIKE_LATENCY = 0.25  # seconds added to every answer during a spike
HANG_GUARD = 600.0

_CHILD = r"""
import asyncio, json, sys
from aiopersonalize_events.emulator import Emulator, Faults

async def main():
    async with Emulator() as emu:
        print(emu.endpoint_url, flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            emu.faults = Faults(**json.loads(line))
            print("ok", flush=True)

asyncio.run(main())
"""


class EmulatorProcess:
    """An emulator in a child process: faults set through stdin, records and calls read over HTTP."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.port = 0

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        self.url = line.decode().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url
        self.port = int(self.url.rsplit(":", 1)[1])

    async def set_faults(self, **faults: Any) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(faults).encode() + b"\n")
        await self._proc.stdin.drain()
        assert await asyncio.wait_for(self._proc.stdout.readline(), 30) == b"ok\n"

    async def _get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            assert response.status == 200
            return await response.json()

    async def events(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._get("/_emulator/records/events")
        return result

    async def items(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._get("/_emulator/records/items")
        return result

    async def calls(self) -> tuple[Counter[tuple[str, int]], int]:
        body = await self._get("/_emulator/calls")
        calls: Counter[tuple[str, int]] = Counter()
        for entry in body["calls"]:
            calls[(entry["operation"], entry["status"])] += entry["count"]
        return calls, body["duplicates"]

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorProcess]:
    child = EmulatorProcess()
    await child.start()
    try:
        yield child
    finally:
        await child.stop()


# -- what the client holds open ------------------------------------------------------------------------------


def open_sockets_to(port: int) -> int:
    """Sockets of this process connected to 127.0.0.1:``port`` (from /proc: no private attributes needed)."""
    remote = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            if fields[2] == remote and fields[3] != "06":  # 06: TIME_WAIT, no socket left
                inodes.add(fields[9])
    mine = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            mine += 1
    return mine


def library_tasks() -> list[asyncio.Task[Any]]:
    """Tasks running the library's own coroutines (the recorder's loop and deliveries, batching calls)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if f"{os.sep}aiopersonalize_events{os.sep}" in filename or task.get_name().startswith("aiopersonalize_events"):
            found.append(task)
    return found


# -- the soak ----------------------------------------------------------------------------------------------------


@attrs.frozen
class Size:
    recorder_events: int
    recorder_sessions: int
    batched_events: int
    batched_sessions: int
    items: int
    max_queue_size: int


DEFAULT = Size(
    recorder_events=5_000,
    recorder_sessions=100,
    batched_events=2_000,
    batched_sessions=100,
    items=500,
    max_queue_size=500,
)
FULL = Size(
    recorder_events=50_000,
    recorder_sessions=500,
    batched_events=20_000,
    batched_sessions=500,
    items=5_000,
    max_queue_size=2_000,
)
MAX_CONNECTIONS = 12
PER_EVENT_BYTES = 2048  # what one queued or in-flight event may cost the recorder, all included
FIXED_BYTES = 3 * 1024 * 1024  # the client, its session and connections, the helpers' own state


def memory_bound(size: Size) -> int:
    """The most the soak may hold at once: the recorder's queue at its fullest plus a fixed allowance."""
    return size.max_queue_size * PER_EVENT_BYTES + FIXED_BYTES


def bytes_per_event() -> float:
    """What one of the soak's events costs to hold (measured on 1,000 of them)."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        sample = [_event("m", i) for i in range(1000)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sample) == 1000
    return (after - before) / 1000


def _props(i: int) -> dict[str, Any]:
    return {"n": i, "note": "x" * 400}  # about 430 bytes of properties, so holding every event would show


def _event(prefix: str, i: int) -> Event:
    return Event(
        event_type="click",
        sent_at=1_700_000_000 + i / 1000,
        event_id=f"{prefix}{i}",
        item_id=f"item-{i % 997}",
        properties=_props(i),
    )


@attrs.define
class Chaos:
    """Keeps faults on, with periodic latency spikes; samples invariants and open sockets while it runs."""

    emulator: EmulatorProcess
    recorder: EventRecorder
    spikes: int = 0
    switches: int = 0
    max_sockets: int = 0
    samples: int = 0
    violations: list[str] = attrs.field(factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        seed = 0
        while not stop.is_set():
            for latency, length in ((0.0, 0.7), (SPIKE_LATENCY, 0.3)):
                seed += 1
                await self.emulator.set_faults(**BASE_FAULTS, latency=latency, seed=seed)
                self.switches += 1
                self.spikes += latency > 0
                until = time.monotonic() + length
                while time.monotonic() < until and not stop.is_set():
                    self.sample()
                    await asyncio.sleep(0.05)

    def sample(self) -> None:
        s = self.recorder.stats
        if s.recorded != s.sent + s.failed + s.dropped + s.pending:
            self.violations.append(repr(s))
        self.max_sockets = max(self.max_sockets, open_sockets_to(self.emulator.port))
        self.samples += 1


async def _produce(recorder: EventRecorder, size: Size) -> None:
    sessions = [f"session-r{n}" for n in range(size.recorder_sessions)]
    for i in range(size.recorder_events):
        n = (i // 10) % size.recorder_sessions  # a session's events come in bursts, sessions interleave
        await recorder.put(_event("r", i), session_id=sessions[n], user_id=f"user-{n}" if n % 2 else None)


async def _batched_sessions(client: PersonalizeEventsClient, size: Size) -> tuple[int, int, int]:
    """Each session's events through put_events_batched (a lazy async generator); failures resent until accepted.

    Returns (calls made, failures resent, chunks that had to be accepted).
    """
    per_session = size.batched_events // size.batched_sessions
    slots = asyncio.Semaphore(8)
    totals = {"calls": 0, "resent": 0, "chunks": 0}

    async def events_of(session: int) -> AsyncIterator[Event]:
        for k in range(per_session):
            yield _event("b", session * per_session + k)
            if k % 7 == 0:
                await asyncio.sleep(0)

    async def one(session: int) -> None:
        async with slots:
            result = await client.put_events_batched(
                tracking_id=TRACKER, session_id=f"session-b{session}", event_list=events_of(session), max_concurrency=2
            )
            totals["chunks"] += math.ceil(per_session / 10)
            await _settle(result, lambda records: _resend_events(client, session, records))

    async def _settle(result: BatchResult[Any], resend: Any) -> None:
        totals["calls"] += result.calls
        assert result.sent + result.failed == per_session
        pending = list(result.failures)
        rounds = 0
        while pending:
            rounds += 1
            assert rounds < 50, "a failure kept failing"
            failure = pending.pop()
            totals["resent"] += 1
            again: BatchResult[Any] = await resend(list(failure.records))
            totals["calls"] += again.calls
            pending.extend(again.failures)

    await asyncio.gather(*(one(s) for s in range(size.batched_sessions)))
    return totals["calls"], totals["resent"], totals["chunks"]


async def _resend_events(client: PersonalizeEventsClient, session: int, records: list[Event]) -> BatchResult[Event]:
    return await client.put_events_batched(tracking_id=TRACKER, session_id=f"session-b{session}", event_list=records)


async def _batched_items(client: PersonalizeEventsClient, size: Size) -> int:
    """Items through put_items_batched from a generator (unpaced); each failed chunk resent on its own."""
    result = await client.put_items_batched(
        dataset_arn=ARN,
        items=(Item(item_id=f"item-{i}", properties={"n": i}) for i in range(size.items)),
        max_concurrency=4,
        requests_per_second=None,
    )
    resent = 0
    pending = list(result.failures)
    while pending:
        failure = pending.pop()
        resent += 1
        assert resent < 10 * size.items
        again = await client.put_items_batched(dataset_arn=ARN, items=list(failure.records), requests_per_second=None)
        pending.extend(again.failures)
    assert result.sent + result.failed == size.items
    return resent


async def warm_up() -> None:
    """One short run of every path the soak takes, against an emulator of its own, before memory is traced.

    The package loads its recorder, engine, spools and network settings on first use, and aiohttp some of its
    parts on the first request: run alone, the soak would otherwise count those modules' code in its peak.
    """
    async with (
        Emulator() as emu,
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emu.endpoint_url, credentials=Credentials("AKIDWARM", "warm-secret")
        ) as client,
    ):
        async with client.event_recorder(tracking_id=TRACKER, flush_interval=0.01) as recorder:
            for i in range(20):
                recorder.record(_event("warm", i), session_id="warm")
        await client.put_events_batched(
            tracking_id=TRACKER, session_id="warm", event_list=[_event("warm-b", i) for i in range(20)]
        )
        await client.put_items_batched(dataset_arn=ARN, items=[Item(item_id=f"warm-{i}") for i in range(20)])


async def run_soak(emulator: EmulatorProcess, size: Size) -> dict[str, Any]:
    """The soak itself; returns what it measured (asserting as it goes)."""
    await warm_up()
    started = time.perf_counter()
    failures: list[tuple[int, BaseException]] = []
    drops: list[str] = []
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.url,
        credentials=Credentials("AKIDSOAK", "soak-secret"),
        config=ClientConfig(
            max_attempts=2, backoff_base=0.005, backoff_max=0.1, read_timeout=10.0, max_connections=MAX_CONNECTIONS
        ),
    )
    stop = asyncio.Event()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        async with client:
            session = client._transport.session  # the client's own session (private): checked closed below
            assert session is not None
            recorder = client.event_recorder(
                tracking_id=TRACKER,
                flush_interval=0.05,
                max_queue_size=size.max_queue_size,
                max_concurrency=8,
                on_failure=lambda events, error: failures.append((len(events), error)),
                on_drop=lambda event, reason: drops.append(reason),
            )
            chaos = Chaos(emulator, recorder)
            async with recorder:
                chaos_task = asyncio.create_task(chaos.run(stop))
                try:
                    _, (batched_calls, batched_resent, batched_chunks), items_resent = await asyncio.wait_for(
                        asyncio.gather(
                            _produce(recorder, size), _batched_sessions(client, size), _batched_items(client, size)
                        ),
                        HANG_GUARD,
                    )
                    await asyncio.wait_for(recorder.flush(), HANG_GUARD)
                finally:
                    stop.set()
                    await chaos_task
                chaos.sample()
            stats = recorder.stats
            assert session.connector is not None
            assert session.connector.limit == MAX_CONNECTIONS
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    duration = time.perf_counter() - started

    # nothing left behind: no library task, no socket, a closed session and connector
    assert library_tasks() == []
    assert session.closed
    assert session.connector is None or session.connector.closed
    for _ in range(100):
        if open_sockets_to(emulator.port) == 0:
            break
        await asyncio.sleep(0.02)
    assert open_sockets_to(emulator.port) == 0

    # the recorder's counters: all sent, none failed or dropped, and the invariant held at every sample
    assert failures == []
    assert drops == []
    assert chaos.violations == []
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (
        size.recorder_events,
        size.recorder_events,
        0,
        0,
        0,
    )
    assert stats.retried > 0

    # what the emulator stored: every event exactly once by eventId, every item
    events = await emulator.events()
    ids = Counter(e["eventId"] for e in events)
    expected = {f"r{i}" for i in range(size.recorder_events)}
    per_session = size.batched_events // size.batched_sessions
    expected |= {f"b{i}" for i in range(per_session * size.batched_sessions)}
    assert set(ids) == expected
    assert max(ids.values()) == 1
    sessions = {e["sessionId"] for e in events}
    assert len(sessions) == size.recorder_sessions + size.batched_sessions
    items = await emulator.items()
    assert {i["itemId"] for i in items} == {f"item-{i}" for i in range(size.items)}
    calls, duplicates = await emulator.calls()
    assert duplicates == 0

    # the calls add up: each chunk of ten (or fewer) was accepted once; faults of every kind were injected
    ok_events = calls[("PutEvents", 200)]
    recorder_calls = ok_events - batched_chunks
    assert math.ceil(size.recorder_events / 10) <= recorder_calls <= size.recorder_events
    assert calls[("PutItems", 200)] == math.ceil(size.items / 10)
    faults = {status: sum(n for (_, s), n in calls.items() if s == status) for status in (0, 400, 500, 503)}
    assert all(faults.values()), faults
    assert chaos.spikes >= 1

    # memory: bounded by the queue, not by the number of events (holding them all would not fit the bound)
    bound = memory_bound(size)
    held = peak - base
    every_event = int(bytes_per_event() * (size.recorder_events + size.batched_events))
    assert held < bound, f"peak {held} bytes over the bound {bound}"
    assert bound < every_event
    assert chaos.max_sockets <= MAX_CONNECTIONS
    return {
        "events": len(events),
        "sessions": len(sessions),
        "items": len(items),
        "calls": dict(sorted((f"{op} {status}", n) for (op, status), n in calls.items())),
        "faults": faults,
        "recorder": attrs.asdict(stats),
        "recorder_calls": recorder_calls,
        "batched_calls": batched_calls,
        "batched_resent": batched_resent,
        "items_resent": items_resent,
        "latency_spikes": chaos.spikes,
        "max_open_sockets": chaos.max_sockets,
        "peak_bytes": held,
        "bound_bytes": bound,
        "all_events_bytes": every_event,
        "duration_s": round(duration, 1),
    }


async def test_fault_soak_default(emulator: EmulatorProcess) -> None:
    """CI-sized soak: 7,000 events over 200 sessions and 500 items under faults; nothing lost, leaked or unbounded."""
    report = await run_soak(emulator, DEFAULT)
    print(f"soak (default): {report}")


@pytest.mark.slow
async def test_fault_soak_full(emulator: EmulatorProcess) -> None:
    """Full soak: 70,000 events over 1,000 sessions and 5,000 items under faults; nothing lost, leaked or unbounded."""
    report = await run_soak(emulator, FULL)
    print(f"soak (full): {report}")
