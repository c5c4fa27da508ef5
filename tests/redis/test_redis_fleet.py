"""The fleet, with processes: forwarders killed and stopped, and six processes sharing one PutItems quota.

Everything on 127.0.0.1: a real redis-server, the emulator in the test's loop, forwarders and workers as child
processes (``aiopersonalize-events forward``, ``tests/_redis_server.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from _redis_server import RedisServer, until, windows

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.redis import Forwarder, add_records

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
WORKER = ROOT / "tests" / "_redis_server.py"
TRACKER = "tracker-fleet"
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def client_for(endpoint: str) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDFLEET", "fleet-secret")
    )


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


async def forwarder_process(
    redis_url: str, endpoint: str, stream: str, consumer: str, *extra: str
) -> asyncio.subprocess.Process:
    """``aiopersonalize-events forward`` as a child process (its log on our stderr)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiopersonalize_events",
        "forward",
        "--redis",
        redis_url,
        "--stream",
        stream,
        "--group",
        "fleet",
        "--tracking-id",
        TRACKER,
        "--consumer",
        consumer,
        "--endpoint-url",
        endpoint,
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def pending_of(r: redis.asyncio.Redis, stream: str, consumer: str) -> int:
    try:
        return len(await r.xpending_range(stream, "fleet", min="-", max="+", count=10_000, consumername=consumer))
    except redis.exceptions.ResponseError:  # no group yet
        return 0


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 30.0) -> tuple[int, str]:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    err = await asyncio.wait_for(process.stderr.read(), timeout)
    return await asyncio.wait_for(process.wait(), timeout), err.decode(errors="replace")


async def test_a_forwarder_killed_mid_batch_is_replaced_and_every_event_is_stored_once(
    redis_server: RedisServer, r: redis.asyncio.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL one forwarder with calls in flight: another claims its entries; the service stores each event once."""
    stream = "pe:{fleet}"
    produced = [f"e{i}" for i in range(600)]
    for session in range(60):
        batch = [
            Event(event_type="click", sent_at=SENT_AT, item_id=f"i{i}", event_id=f"e{i}")
            for i in range(session * 10, session * 10 + 10)
        ]
        await add_records(r, stream, batch, session_id=f"s{session}")
    async with Emulator(faults=Faults(latency=0.15)) as emulator:
        first = await forwarder_process(redis_server.url, emulator.endpoint_url, stream, "first", "--concurrency", "4")
        await until(lambda: emulator.calls[("PutEvents", 200)] >= 3, what="the first forwarder's calls")
        await until(lambda: pending_of(r, stream, "first"), what="calls in flight at the first forwarder")
        in_flight = await pending_of(r, stream, "first")
        first.kill()
        await first.wait()
        second = await forwarder_process(
            redis_server.url, emulator.endpoint_url, stream, "second", "--claim-idle", "1", "--concurrency", "4"
        )
        await until(lambda: len(emulator.events(TRACKER)) == 600, timeout=60, what="all 600 events stored")
        await until(lambda: _group_pending(r, stream, 0), what="no entry left pending")
        status, log = await stop_process(second)
        stored = [e["eventId"] for e in emulator.events(TRACKER)]
        resent = emulator.duplicates
    assert status == 0, log
    assert sorted(stored) == sorted(produced)  # every event, once
    assert "took over" in log
    with capsys.disabled():
        print(
            f"\n[kill test] entries pending at the killed forwarder: {in_flight}; events resent (duplicates): {resent}"
        )


@pytest.mark.slow
async def test_forwarders_killed_again_and_again_lose_nothing(
    redis_server: RedisServer, r: redis.asyncio.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """5,000 events, three forwarders; every second one is killed with SIGKILL and replaced: each event stored once."""
    stream = "pe:{churn}"
    for session in range(500):
        batch = [Event(event_type="click", sent_at=SENT_AT, item_id="x", event_id=f"c{session}-{i}") for i in range(10)]
        await add_records(r, stream, batch, session_id=f"s{session}")
    kills = 0
    async with Emulator(faults=Faults(latency=0.3)) as emulator:
        running = [
            await forwarder_process(redis_server.url, emulator.endpoint_url, stream, f"f{n}", "--claim-idle", "1")
            for n in range(3)
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 180
        while len(emulator.events(TRACKER)) < 5000:
            assert loop.time() < deadline, "the events were not all stored in time"
            await asyncio.sleep(1.0)
            if len(emulator.events(TRACKER)) >= 5000:
                break
            victim = running.pop(kills % len(running))
            victim.kill()
            await victim.wait()
            kills += 1
            running.append(
                await forwarder_process(
                    redis_server.url, emulator.endpoint_url, stream, f"f{kills + 2}", "--claim-idle", "1"
                )
            )
        await until(lambda: _group_pending(r, stream, 0), timeout=30, what="no entry left pending")
        for process in running:
            status, log = await stop_process(process)
            assert status == 0, log
        stored = [e["eventId"] for e in emulator.events(TRACKER)]
        resent = emulator.duplicates
    assert len(stored) == len(set(stored)) == 5000
    assert kills >= 1
    with capsys.disabled():
        print(f"\n[churn test] {kills} forwarders killed; 5000 events stored once each; {resent} sent twice")


async def _group_pending(r: redis.asyncio.Redis, stream: str, n: int) -> bool:
    return int((await r.xpending(stream, "fleet"))["pending"]) == n


async def test_sigterm_finishes_the_calls_in_flight_and_the_rest_waits_for_another_forwarder(
    redis_server: RedisServer, r: redis.asyncio.Redis
) -> None:
    """SIGTERM: exit 0 once the calls in flight are accepted and acknowledged; nothing is lost or sent twice."""
    stream = "pe:{term}"
    for session in range(20):
        batch = [Event(event_type="click", sent_at=SENT_AT, event_id=f"t{session}-{i}", item_id="x") for i in range(10)]
        await add_records(r, stream, batch, session_id=f"s{session}")
    async with Emulator(faults=Faults(latency=0.5)) as emulator:
        process = await forwarder_process(redis_server.url, emulator.endpoint_url, stream, "term", "--concurrency", "2")
        await until(lambda: emulator.calls[("PutEvents", 200)] >= 2, what="two calls answered")
        status, log = await stop_process(process)
        after_stop = len(emulator.events(TRACKER))
        (group,) = await r.xinfo_groups(stream)
        left = int(group["pending"])  # read and not sent: released by "term" (to its twin), still pending
        assert status == 0, log
        assert "stopped" in log
        assert after_stop % 10 == 0  # whole calls, each acknowledged
        assert after_stop + left + group["lag"] == 200  # acknowledged, pending, or not read yet: nothing in between
        assert await pending_of(r, stream, "term") == 0  # nothing left with the stopped consumer itself
        assert f"the group has {left} pending" in log  # the summary says what Redis says (ForwarderStats.pending)
        async with client_for(emulator.endpoint_url) as client:
            rest = Forwarder(
                client, redis_server.url, stream=stream, group="fleet", tracking_id=TRACKER, claim_idle=0.2
            )
            task = asyncio.create_task(rest.run())
            await until(lambda: len(emulator.events(TRACKER)) == 200, what="the rest sent by another forwarder")
            await rest.close()
            await task
        assert emulator.duplicates == 0


@pytest.mark.parametrize("close", [["--close-timeout", "1"], []], ids=["close-timeout-1", "default"])
async def test_sigterm_with_redis_frozen_exits_within_the_close_timeout(
    redis_server: RedisServer, r: redis.asyncio.Redis, capsys: pytest.CaptureFixture[str], close: list[str]
) -> None:
    """Redis frozen (SIGSTOP) with calls in flight: SIGTERM exits 0 within --close-timeout, and with the default
    (30 s) after one socket timeout at most (a generous hang guard here; it took 11.6 s and more), saying the
    group's pending is unknown; after SIGCONT nothing acknowledged is pending."""
    stream = "pe:{frozen-cli}"
    for session in range(6):
        batch = [Event(event_type="click", sent_at=SENT_AT, event_id=f"f{session}-{i}", item_id="x") for i in range(10)]
        await add_records(r, stream, batch, session_id=f"s{session}")
    async with Emulator(faults=Faults(latency=0.3)) as emulator:
        process = await forwarder_process(
            redis_server.url, emulator.endpoint_url, stream, "frozen", "--concurrency", "2", *close
        )
        await until(lambda: emulator.calls[("PutEvents", 200)] >= 1, what="a call answered")
        redis_server.pause()
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            status, log = await stop_process(process, timeout=15.0)
        finally:
            redis_server.resume()
        took = loop.time() - began  # reported, not asserted
        stored = len(emulator.events(TRACKER))
    assert status == 0, log
    assert "the group has unknown (Redis did not answer) pending" in log
    pending = int((await r.xpending(stream, "fleet"))["pending"])
    (group,) = await r.xinfo_groups(stream)
    assert pending + int(group["lag"]) >= 60 - stored  # nothing lost: every event not acknowledged is still in Redis
    with capsys.disabled():
        how = " ".join(close) or "default close timeout"
        print(f"\n[frozen test] forward exited {took:.2f}s after SIGTERM with Redis frozen ({how})")


def _items_worker(endpoint: str, calls: int, *limiter: str) -> Any:
    return asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "items",
        endpoint,
        DATASET,
        str(calls),
        *limiter,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _run_items_workers(endpoint: str, calls: int, *limiter: str) -> list[dict[str, Any]]:
    processes = [await _items_worker(endpoint, calls, *limiter) for _ in range(6)]
    outputs = []
    for process in processes:
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0
        outputs.append(json.loads(out.decode().splitlines()[-1]))
    return outputs


async def _share_one_quota(redis_server: RedisServer, calls: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with Emulator(quotas=True) as emulator:
        shared = await _run_items_workers(emulator.endpoint_url, calls, redis_server.url, "pe:{quota}:PutItems:shop")
        limited = dict(emulator.calls)
        emulator.reset()
        alone = await _run_items_workers(emulator.endpoint_url, calls)
        unlimited = dict(emulator.calls)
    stamps = [(local, slot) for out in shared for local, slot in out["stamps"]]
    assert len(stamps) == 6 * calls
    by_redis = windows([slot for _, slot in stamps])
    by_local = windows([local for local, _ in stamps])
    late = max(local - slot for local, slot in stamps)  # how long after its slot a process made its call
    # Redis's clock: exact, slots are 100 ms apart. Local clocks (the same machine's): a call made up to `late`
    # seconds after its slot can share a window with the next ceil(late / 0.1) slots' calls.
    assert by_redis <= 10
    assert by_local <= 10 + math.ceil(late / 0.1)
    assert limited == {("PutItems", 200): 6 * calls}  # no throttling at all
    assert all(out["failed"] == 0 for out in shared)
    throttled = unlimited.get(("PutItems", 400), 0)
    assert throttled > 0
    alone_local = windows([t for out in alone for t, _ in out["stamps"]])
    with capsys.disabled():
        print(
            f"\n[rate test, {6 * calls} calls] with RedisRateLimiter: busiest 1 s window {by_redis} calls by Redis's "
            f"clock, {by_local} by local clocks (calls at most {late * 1000:.0f} ms after their slot), 0 throttled; "
            f"without: busiest window {alone_local} calls, {throttled} of {sum(unlimited.values())} answers throttled"
        )


async def test_six_processes_share_one_put_items_quota_through_redis(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six processes, one RedisRateLimiter at 10/s: at most 10 calls in any one-second window, no throttling;
    without it (each process at its own 10/s) the emulator's quota throttles."""
    await _share_one_quota(redis_server, 6, capsys)


@pytest.mark.slow
async def test_six_processes_share_one_put_items_quota_for_half_a_minute(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """As above, 300 calls (30 seconds at 10/s)."""
    await _share_one_quota(redis_server, 50, capsys)
