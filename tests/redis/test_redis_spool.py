"""RedisStreamSpool under the recorder, against a real Redis: intake, put(), outages (refused, SIGSTOP, a restart
from the append-only file), refusals, close, counters."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import redis.asyncio
from _redis_server import RedisServer, free_port, until

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, RecorderStats, SpoolError
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.redis import Forwarder, RedisStreamSpool

TRACKER = "tracker-spool"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def event(i: int) -> Event:
    return Event(event_type="click", sent_at=SENT_AT, item_id=f"item-{i}")


def client_for(endpoint: str) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDSPOOL", "spool-secret")
    )


@pytest.fixture
async def client() -> AsyncIterator[PersonalizeEventsClient]:
    """A client that is never called: with a Redis spool the recorder sends nothing itself."""
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDSPOOL", "spool-secret")
    ) as c:
        yield c


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def check_counters(stats: RecorderStats) -> None:
    assert stats.recorded == stats.sent + stats.failed + stats.dropped + stats.pending, stats


async def test_recorded_events_reach_the_stream_with_their_ids(
    redis_server: RedisServer, r: redis.asyncio.Redis, client: PersonalizeEventsClient
) -> None:
    """record() queues; flush() returns once the stream has every event, each with its eventId and session."""
    spool = RedisStreamSpool(redis_server.url, stream="pe:{events}")
    async with client.event_recorder(tracking_id=TRACKER, spool=spool) as recorder:
        for i in range(1000):
            assert recorder.record(event(i), session_id=f"s{i % 7}", user_id="u1" if i % 2 else None)
        await recorder.flush()
        assert await r.xlen("pe:{events}") == 1000
        stats = recorder.stats
        assert (stats.recorded, stats.sent, stats.pending, stats.failed) == (1000, 1000, 0, 0)
    entries = await r.xrange("pe:{events}")
    lines = [json.loads(fields[b"record"]) for _, fields in entries]
    assert [line["itemId"] for line in lines] == [f"item-{i}" for i in range(1000)]  # in order
    assert all(len(line["eventId"]) == 32 for line in lines)
    assert len({line["eventId"] for line in lines}) == 1000
    assert (lines[1]["sessionId"], lines[1]["userId"]) == ("s1", "u1")
    assert "userId" not in lines[0]
    assert spool.stats.written == 1000


async def test_put_returns_once_redis_has_the_event(
    redis_server: RedisServer, r: redis.asyncio.Redis, client: PersonalizeEventsClient
) -> None:
    """After await put(), the entry is in the stream (read through another connection)."""
    async with client.event_recorder(
        tracking_id=TRACKER, spool=RedisStreamSpool(redis_server.url, stream="put")
    ) as recorder:
        for i in range(20):
            await recorder.put(event(i), session_id="s1")
            assert await r.xlen("put") == i + 1


async def test_events_wait_in_memory_while_redis_is_away_and_go_once_it_is_back(
    tmp_path: object, redis_server: RedisServer, client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: events wait (bounded: the overflow policy drops and counts); Redis back: the rest are written."""
    redis_server.stop()
    caplog.set_level(logging.WARNING, "aiopersonalize_events.redis")
    spool = RedisStreamSpool(redis_server.url, stream="away", max_events=50, backoff_max=0.1)
    dropped: list[str] = []
    async with client.event_recorder(
        tracking_id=TRACKER, spool=spool, on_drop=lambda e, why: dropped.append(why)
    ) as recorder:
        for i in range(60):
            recorder.record(event(i), session_id="s1")
        await until(lambda: spool.stats.outages == 1, what="the outage to be noticed")
        stats = recorder.stats
        assert (stats.recorded, stats.pending, stats.dropped, stats.sent) == (60, 50, 10, 0)
        check_counters(stats)
        redis_server.start()
        await recorder.flush()
        stats = recorder.stats
        assert (stats.sent, stats.pending, stats.dropped, stats.failed) == (50, 0, 10, 0)
    assert len(dropped) == 10
    assert "Redis is not answering" in caplog.text
    assert "answers again" in caplog.text
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    assert await connection.xlen("away") == 50
    await connection.aclose()


async def test_an_event_redis_refuses_fails_put_and_is_counted(
    redis_server: RedisServer, r: redis.asyncio.Redis, client: PersonalizeEventsClient
) -> None:
    """The stream's key holds a string: put() raises SpoolError, the event is failed and handed to on_failure."""
    await r.set("not-a-stream", "x")
    failures: list[int] = []
    async with client.event_recorder(
        tracking_id=TRACKER,
        spool=RedisStreamSpool(redis_server.url, stream="not-a-stream"),
        on_failure=lambda events, error: failures.append(len(events)),
    ) as recorder:
        with pytest.raises(SpoolError, match="WRONGTYPE"):
            await recorder.put(event(1), session_id="s1")
        stats = recorder.stats
        assert (stats.recorded, stats.failed, stats.pending) == (1, 1, 0)
    assert failures == [1]


async def test_close_with_redis_away_reports_what_is_left_as_unsent(
    redis_server: RedisServer, client: PersonalizeEventsClient
) -> None:
    """close() tries for close_timeout, then the events still in memory are unsent: counted pending, never failed,
    and given back by unsent(): nothing vanishes."""
    redis_server.stop()
    failed: list[int] = []
    spool = RedisStreamSpool(redis_server.url, stream="gone", close_timeout=0.3, backoff_max=0.05)
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=spool,
        on_failure=lambda events, error: failed.append(len(events)),
    )
    async with recorder:
        for i in range(5):
            recorder.record(event(i), session_id="s1")
    stats = recorder.stats
    assert (stats.recorded, stats.failed, stats.pending, stats.sent) == (5, 0, 5, 0)
    assert failed == []
    assert [e.item_id for e, _, _ in spool.unsent()] == [f"item-{i}" for i in range(5)]


async def test_an_unreachable_address_is_waited_for_not_an_error(client: PersonalizeEventsClient) -> None:
    """Opening the spool does not need Redis: the recorder starts, events wait, close() accounts for them."""
    spool = RedisStreamSpool(f"redis://127.0.0.1:{free_port()}/0", stream="s", close_timeout=0.2, backoff_max=0.05)
    async with client.event_recorder(tracking_id=TRACKER, spool=spool) as recorder:
        recorder.record(event(1), session_id="s1")
        await asyncio.sleep(0)
        assert recorder.stats.pending == 1
    assert (recorder.stats.failed, recorder.stats.pending) == (0, 1)  # unsent at close, not failed
    assert spool.stats.unsent == 1


def test_a_bad_url_or_stream_is_refused_at_once() -> None:
    """Values that cannot work raise ValidationError when the spool is made."""
    from aiopersonalize_events import ValidationError

    with pytest.raises(ValidationError, match="url"):
        RedisStreamSpool("", stream="s")
    with pytest.raises(ValidationError, match="stream"):
        RedisStreamSpool("redis://127.0.0.1", stream="")
    with pytest.raises(ValidationError, match="max_events"):
        RedisStreamSpool("redis://127.0.0.1", stream="s", max_events=0)


async def test_producers_lose_nothing_put_acknowledged_through_redis_pauses_and_a_restart(
    redis_server: RedisServer, r: redis.asyncio.Redis
) -> None:
    """SIGSTOP/SIGCONT Redis, then kill and restart it (append-only file, fsync always) while three producers put():
    every event put() acknowledged reaches the service, and each recorder's counters add up."""
    stream = "pe:{durable}"
    acknowledged: list[str] = []
    stats: list[RecorderStats] = []
    phase = asyncio.Event()

    async def producer(n: int, client: PersonalizeEventsClient) -> None:
        spool = RedisStreamSpool(redis_server.url, stream=stream, socket_timeout=0.3, backoff_max=0.1)
        async with client.event_recorder(tracking_id=TRACKER, spool=spool) as recorder:
            i = 0
            while not phase.is_set() or i < 50:
                event = Event(event_type="view", sent_at=SENT_AT, item_id="x", event_id=f"p{n}-{i}")
                await recorder.put(event, session_id=f"s{n}-{i % 5}")
                acknowledged.append(event.event_id or "")
                i += 1
                await asyncio.sleep(0.005)
        stats.append(recorder.stats)

    async with Emulator() as emulator, client_for(emulator.endpoint_url) as client:
        producers = [asyncio.create_task(producer(n, client)) for n in range(3)]
        await until(lambda: len(acknowledged) >= 60, what="producers running")
        redis_server.pause()
        await asyncio.sleep(1.0)  # puts wait; the spools' round trips time out and are tried again
        paused_acks = len(acknowledged)
        redis_server.resume()
        await until(lambda: len(acknowledged) >= paused_acks + 60, what="producers going on after SIGCONT")
        redis_server.restart(kill=True)  # SIGKILL: only what the append-only file holds comes back
        await until(lambda: len(acknowledged) >= paused_acks + 150, what="producers going on after the restart")
        phase.set()
        await asyncio.gather(*producers)
        forwarder = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER)
        task = asyncio.create_task(forwarder.run())
        await until(lambda: len(emulator.events(TRACKER)) >= len(acknowledged), timeout=30, what="every event sent")
        await forwarder.close()
        await task
        stored = {e["eventId"] for e in emulator.events(TRACKER)}
    assert set(acknowledged) <= stored
    assert len(stored) == len(acknowledged)  # only put() was used: nothing else to store
    for s in stats:
        assert s.recorded == s.sent + s.failed + s.dropped + s.pending
        assert (s.failed, s.dropped, s.pending) == (0, 0, 0)
    assert sum(s.sent for s in stats) == len(acknowledged)


async def test_a_spool_that_cannot_open_reports_what_was_recorded_before(client: PersonalizeEventsClient) -> None:
    """Not a Redis URL: opening fails with SpoolError and the events recorded meanwhile are counted as failed."""
    failed: list[int] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=RedisStreamSpool("nonsense://127.0.0.1:9", stream="s"),
        on_failure=lambda events, error: failed.append(len(events)),
    )
    assert recorder.record(event(1), session_id="s1")  # starts the recorder; the spool opens in the background
    await asyncio.sleep(0.01)  # the background task runs: opening fails
    await recorder.close()
    stats = recorder.stats
    assert (stats.recorded, stats.failed, stats.pending) == (1, 1, 0)
    assert failed == [1]


async def test_close_right_after_the_first_record_still_hands_the_event_off(
    redis_server: RedisServer, r: redis.asyncio.Redis, client: PersonalizeEventsClient
) -> None:
    """record() starts the recorder lazily and close() comes before its task ran: the event still reaches Redis."""
    recorder = client.event_recorder(tracking_id=TRACKER, spool=RedisStreamSpool(redis_server.url, stream="quick"))
    assert recorder.record(event(1), session_id="s1")
    await recorder.close()
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.pending) == (1, 1, 0)
    assert await r.xlen("quick") == 1
