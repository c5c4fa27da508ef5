"""Stopping a forwarder and the group it leaves: what it read is released for the others at once, dead consumers
are taken over before ``claim_idle`` and removed once empty, the counters say what Redis says, and a stop keeps its
deadline with Redis frozen (SIGSTOP). A real redis-server and the emulator, in one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import redis.asyncio
from _redis_server import RedisServer, until

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.redis import Forwarder, add_records

TRACKER = "tracker-stop"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def client_for(endpoint: str) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDSTOP", "stop-secret")
    )


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def events(n: int, prefix: str = "e") -> list[Event]:
    return [Event(event_type="click", sent_at=SENT_AT, item_id=f"i{i}", event_id=f"{prefix}-{i}") for i in range(n)]


async def started(forwarder: Forwarder) -> asyncio.Task[None]:
    task = asyncio.create_task(forwarder.run())
    await until(lambda: forwarder.running or task.done(), what="the forwarder to start")
    return task


async def consumers(r: redis.asyncio.Redis, stream: str, group: str) -> dict[str, int]:
    """Each consumer of the group, with its pending count (XINFO CONSUMERS)."""
    return {c["name"].decode(): int(c["pending"]) for c in await r.xinfo_consumers(stream, group)}


async def group_is(r: redis.asyncio.Redis, stream: str, expected: dict[str, int]) -> bool:
    return await consumers(r, stream, "g") == expected


async def test_a_stopped_forwarder_releases_what_it_read_and_another_takes_it_at_once(
    redis_server: RedisServer, r: redis.asyncio.Redis
) -> None:
    """stop() with entries read and not sent: they are released, and a forwarder with the default claim_idle (30 s)
    takes them over at once instead of after claim_idle; stats.pending is the group's pending as the first left."""
    stream = "pe:{release}"
    await add_records(r, stream, events(40), session_id="s1")
    async with Emulator(faults=Faults(latency=0.4)) as slow, client_for(slow.endpoint_url) as client:
        first = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="first",
                          max_concurrency=2)  # fmt: skip
        task = await started(first)
        await until(lambda: first.stats.calls >= 2, what="two calls in flight")
        first.stop()
        await task
        pending = (await r.xpending(stream, "g"))["pending"]
        assert first.stats.sent == len(slow.events(TRACKER)) == 20  # the two calls in flight, finished and acked
        assert pending == 20  # the rest: read, not sent, released
        assert first.stats.pending == pending  # what the CLI prints as "the group has N pending"
        assert first.stats.held == 20
        group = await consumers(r, stream, "g")
        assert "first" not in group  # it holds nothing any more: gone from the group
        assert group == {"first~released": 20}
        second = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="second")
        task = await started(second)
        await until(lambda: second.stats.sent == 20, what="the released entries sent by another forwarder")
        await until(lambda: group_is(r, stream, {"second": 0}), what="the released twin removed")
        await second.close()
        await task
        assert second.stats.claimed == 20
        assert sorted(e["eventId"] for e in slow.events(TRACKER)) == sorted(f"e-{i}" for i in range(40))
        assert slow.duplicates == 0


async def test_a_killed_consumers_entries_are_taken_over_after_dead_after_not_claim_idle(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """A consumer that read 7 entries and then did nothing (killed) counts as dead after dead_after: its entries
    are taken over though claim_idle (30 s) is far off, and the emptied consumer is removed from the group."""
    stream = "pe:{killed}"
    await add_records(r, stream, events(12), session_id="s1")
    await r.xgroup_create(stream, "g", id="0")
    taken = await r.xreadgroup("g", "killed", {stream: ">"}, count=7)
    assert len(taken[0][1]) == 7
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="alive", dead_after=0.3
        )
        task = await started(forwarder)
        await until(lambda: forwarder.stats.sent == 12, what="all 12 sent, 7 of them taken over")
        await until(lambda: group_is(r, stream, {"alive": 0}), what="the dead consumer removed")
        await forwarder.close()
        await task
    assert forwarder.stats.claimed == 7
    assert len(emulator.events(TRACKER)) == 12
    assert emulator.duplicates == 0


async def test_dead_consumers_holding_nothing_are_removed_and_a_live_one_is_not_robbed(
    redis_server: RedisServer, r: redis.asyncio.Redis
) -> None:
    """Consumers that hold nothing and did nothing for dead_after leave the group (XGROUP DELCONSUMER); a live
    forwarder whose call hangs keeps its entries (its heartbeat touches them), though another one surveys."""
    stream = "pe:{ghosts}"
    await r.xgroup_create(stream, "g", id="0", mkstream=True)
    await add_records(r, stream, events(3, prefix="done"), session_id="s0")
    for ghost in ("pod-1", "pod-2", "pod-3"):  # each pod read and settled one entry, then was killed
        ((_, [(entry_id, _)]),) = await r.xreadgroup("g", ghost, {stream: ">"}, count=1)
        await r.xack(stream, "g", entry_id)
    assert set(await consumers(r, stream, "g")) == {"pod-1", "pod-2", "pod-3"}
    await add_records(r, stream, events(5), session_id="s1")
    async with Emulator(faults=Faults(latency=10.0)) as slow, client_for(slow.endpoint_url) as client:
        busy = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="busy",
                         dead_after=3.0, flush_interval=0.05, close_timeout=0.1)  # fmt: skip
        busy_task = await started(busy)
        await until(lambda: busy.stats.calls == 1, what="the busy forwarder's call in flight")
        watcher = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER,
                            consumer="watcher", dead_after=3.0)  # fmt: skip
        watcher_task = await started(watcher)
        await until(lambda: _without_ghosts(r, stream), what="the three ghosts removed")
        group = await consumers(r, stream, "g")
        assert group["busy"] == 5  # still the busy one's: not taken over while its call hangs
        assert watcher.stats.claimed == 0
        await watcher.close()
        await watcher_task
        busy.stop()
        await busy_task


async def _without_ghosts(r: redis.asyncio.Redis, stream: str) -> bool:
    return not {"pod-1", "pod-2", "pod-3"} & set(await consumers(r, stream, "g"))


async def test_deleted_counts_the_entries_trimmed_from_the_stream(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """Trimming acknowledged entries away counts them in stats.deleted (it stayed 0 while trimming worked)."""
    stream = "pe:{trimmed}"
    await add_records(r, stream, events(30), session_id="s1")
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, trim_interval=0.05
        )
        task = await started(forwarder)
        await until(lambda: forwarder.stats.sent == 30, what="30 events sent")
        await until(lambda: forwarder.stats.deleted >= 29, what="the acknowledged entries trimmed and counted")
        await forwarder.close()
        await task
    assert forwarder.stats.deleted == 30 - int(await r.xlen(stream))


@pytest.mark.parametrize("busy", [True, False], ids=["entries-held", "nothing-held"])
async def test_a_stop_with_redis_frozen_returns_within_close_timeout_and_loses_nothing(
    redis_server: RedisServer, r: redis.asyncio.Redis, busy: bool
) -> None:
    """Redis frozen (SIGSTOP), with calls in flight and entries held or with nothing held: close() returns within
    close_timeout (a generous guard here, far below socket_timeout), the group's pending is reported unknown, and
    every entry not acknowledged is still pending in Redis after SIGCONT."""
    stream = "pe:{frozen}"
    await add_records(r, stream, events(40 if busy else 10), session_id="s1")
    async with Emulator(faults=Faults(latency=0.3)) as slow, client_for(slow.endpoint_url) as client:
        forwarder = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER,
                              max_concurrency=2, close_timeout=0.5, socket_timeout=30.0)  # fmt: skip
        task = await started(forwarder)
        if busy:
            await until(lambda: forwarder.stats.calls >= 2, what="two calls in flight")
        else:
            await until(lambda: forwarder.stats.sent == 10 and forwarder.stats.held == 0, what="everything settled")
        redis_server.pause()
        try:
            await asyncio.wait_for(forwarder.close(), 5.0)  # before: up to socket_timeout per closing command
            assert task.done()
        finally:
            redis_server.resume()
        await task
    stats = forwarder.stats
    assert stats.pending is None  # Redis did not answer as the forwarder left: nothing stale is said
    pending = (await r.xpending(stream, "g"))["pending"]
    assert pending == (40 if busy else 10) - stats.sent  # not acknowledged: still pending, taken over, sent again


async def test_a_stop_does_not_wait_out_a_blocking_read(redis_server: RedisServer, emulator: Emulator) -> None:
    """A forwarder blocked in XREADGROUP for up to 60 s on an empty stream returns from close() long before."""
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(client, redis_server.url, stream="pe:{idle}", group="g", tracking_id=TRACKER, block=60.0)
        task = await started(forwarder)
        await asyncio.sleep(0.2)  # let it block in XREADGROUP (not a decision: the guard below is 50 s short of it)
        await asyncio.wait_for(forwarder.close(), 10.0)
        await task
    assert forwarder.stats.read == 0
