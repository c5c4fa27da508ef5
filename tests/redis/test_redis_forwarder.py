"""The Forwarder against a real Redis and the emulator, in one event loop: delivery, acknowledgement, trimming,
poison and refused records, other operations, stopping, and taking over another consumer's entries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio
from _redis_server import RedisServer, until
from _scripted_server import Reply, ScriptedServer, error_reply

from aiopersonalize_events import Credentials, Event, Item, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.redis import (
    Forwarder,
    ForwarderStateError,
    add_records,
    dead_letter_key,
)

TRACKER = "tracker-fleet"
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def client_for(endpoint: str) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDFORWARDER", "forwarder-secret")
    )


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def events(n: int, *, prefix: str = "e") -> list[Event]:
    return [Event(event_type="click", sent_at=SENT_AT, item_id=f"item-{i}", event_id=f"{prefix}-{i}") for i in range(n)]


async def run_in_background(forwarder: Forwarder) -> asyncio.Task[None]:
    task = asyncio.create_task(forwarder.run())
    await until(lambda: forwarder.running or task.done(), what="the forwarder to start")
    return task


async def test_events_reach_the_service_once_and_leave_the_stream(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """Entries of several sessions become PutEvents calls of at most ten, are acknowledged, and are trimmed away."""
    stream = "pe:{events}"
    for session in range(3):
        await add_records(r, stream, events(25, prefix=f"s{session}"), session_id=f"session-{session}", user_id="u1")
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="fwd", tracking_id=TRACKER, consumer="one", trim_interval=0.1
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 75, what="75 events sent")
        await until(lambda: _stream_len_at_most(r, stream, 1), what="the acknowledged entries to be trimmed")
        await forwarder.close()
        await task
    stored = emulator.events(TRACKER)
    assert len(stored) == 75
    assert {e["sessionId"] for e in stored} == {"session-0", "session-1", "session-2"}
    assert all(e["userId"] == "u1" for e in stored)
    assert emulator.duplicates == 0
    calls = emulator.calls[("PutEvents", 200)]
    assert 9 <= calls <= 12  # 25 per session: groups of 10, 10, 5 (a flush may cut one early)
    assert forwarder.stats.sent == 75
    assert forwarder.stats.dead == 0
    assert forwarder.stats.held == 0
    pending = await r.xpending(stream, "fwd")
    assert pending["pending"] == 0
    consumers = await r.xinfo_consumers(stream, "fwd")
    assert consumers == []  # a forwarder that stops with nothing pending leaves no consumer behind


async def _stream_len_at_most(r: redis.asyncio.Redis, stream: str, n: int) -> bool:
    return int(await r.xlen(stream)) <= n


async def test_poison_and_refused_records_go_to_the_dead_letters_with_their_reason(
    redis_server: RedisServer, r: redis.asyncio.Redis, server: ScriptedServer
) -> None:
    """Undecodable entries and a record the service refuses land in the dead-letter stream; the rest are sent."""
    stream = "poison"
    good = events(5, prefix="good")
    await add_records(r, stream, good[:2], session_id="s1")
    await r.xadd(stream, {b"record": b"{not json"})
    await r.xadd(stream, {b"other": b"field"})
    await r.xadd(stream, {b"record": json.dumps({"eventType": "click", "sentAt": 1}).encode()})  # no sessionId
    await r.xadd(stream, {b"record": json.dumps({"sessionId": "s1", "eventType": "", "sentAt": 1}).encode()})
    await add_records(r, stream, good[2:], session_id="s1")
    # the service refuses the first call (all five good events in one group), then accepts each alone but the third
    server.error("InvalidInputException", 400, "bad event")
    server.reply(Reply(), Reply(), error_reply("InvalidInputException", 400, "bad event: good-2"), Reply(), Reply())
    async with client_for(server.url) as client:
        forwarder = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="c")
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent + forwarder.stats.dead == 9, what="every entry settled")
        await forwarder.close()
        await task
    assert forwarder.stats.sent == 4
    assert forwarder.stats.dead == 5
    dead = await r.xrange(dead_letter_key(stream))
    assert dead_letter_key(stream) == "{poison}:dead"
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert "record: not valid JSON" in reasons[0]
    assert reasons[1] == "the entry has no 'record' field"
    assert reasons[2] == "sessionId: is required"
    assert reasons[3].startswith("eventType:")
    assert reasons[4].startswith("InvalidInputException")
    assert "good-2" in reasons[4]
    assert json.loads(dead[4][1][b"record"])["eventId"] == "good-2"  # the record as it was, to send again
    assert all(fields[b"stream"] == b"poison" and fields[b"group"] == b"g" for _, fields in dead)
    assert (await r.xpending(stream, "g"))["pending"] == 0
    sent_ids = [e["eventId"] for request in server.requests for e in request.json["eventList"]]
    assert sorted(set(sent_ids) - {"good-2"}) == ["good-0", "good-1", "good-3", "good-4"]


async def test_retryable_failures_are_sent_again_and_acknowledged_once_accepted(
    redis_server: RedisServer, r: redis.asyncio.Redis, server: ScriptedServer
) -> None:
    """Throttling past the client's attempts keeps the entries pending and sends them again; nothing is dead."""
    stream = "retry"
    await add_records(r, stream, events(3), session_id="s1")
    server.error("ThrottlingException", 400, "slow down", times=4)  # more than the client's three attempts
    async with client_for(server.url) as client:
        client.retry_policy.sleep = _no_sleep
        forwarder = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, sleep=_no_sleep)
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 3, what="the events sent")
        await forwarder.close()
        await task
    assert forwarder.stats.retried >= 1
    assert forwarder.stats.dead == 0
    assert (await r.xpending(stream, "g"))["pending"] == 0


async def _no_sleep(delay: float) -> None:
    """Waits cut to 10 ms at most (retry backoff, housekeeping rounds): no real time passes to speak of."""
    await asyncio.sleep(min(delay, 0.01))


async def test_a_setup_problem_holds_the_records_instead_of_dead_lettering_them(
    redis_server: RedisServer, r: redis.asyncio.Redis, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 for the tracker is the forwarder's problem: records stay pending, logged, and go once it is fixed."""
    stream = "setup"
    await add_records(r, stream, events(2), session_id="s1")
    server.error("ResourceNotFoundException", 404, "no such tracker")
    caplog.set_level(logging.ERROR, "aiopersonalize_events.redis")
    async with client_for(server.url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, sleep=_no_sleep, random=lambda: 0
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 2, what="the events sent after the 404")
        await forwarder.close()
        await task
    assert forwarder.stats.dead == 0
    assert "ResourceNotFoundException" in caplog.text
    assert "held" in caplog.text


async def test_items_travel_on_their_own_stream(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """A forwarder of PutItems sends a dataset's stream in calls of ten, paced by a shared limiter or not."""
    stream = "pe:{items:shop}"
    items = [Item(item_id=f"i{i}", properties={"GENRE": "drama"}) for i in range(23)]
    await add_records(r, stream, items)
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client,
            redis_server.url,
            stream=stream,
            group="g",
            operation="PutItems",
            dataset_arn=DATASET,
            requests_per_second=None,
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 23, what="23 items sent")
        await forwarder.close()
        await task
    assert sorted(i["itemId"] for i in emulator.items(DATASET)) == sorted(f"i{i}" for i in range(23))
    assert emulator.calls[("PutItems", 200)] == 3


async def test_entries_of_a_dead_consumer_are_taken_over_after_claim_idle(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """Entries read by a consumer that never acknowledged them are claimed by another after claim_idle."""
    stream = "claim"
    await add_records(r, stream, events(12), session_id="s1")
    await r.xgroup_create(stream, "g", id="0")
    taken = await r.xreadgroup("g", "dead-consumer", {stream: ">"}, count=7)
    assert len(taken[0][1]) == 7
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="alive", claim_idle=0.3
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 12, what="all 12 sent, 7 of them claimed")
        await forwarder.close()
        await task
    assert forwarder.stats.claimed == 7
    assert len(emulator.events(TRACKER)) == 12
    assert (await r.xpending(stream, "g"))["pending"] == 0


async def test_own_pending_entries_are_read_first_after_a_restart(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """A forwarder restarted under the same consumer name sends what it had read before, without waiting."""
    stream = "restart"
    await add_records(r, stream, events(4), session_id="s1")
    await r.xgroup_create(stream, "g", id="0")
    await r.xreadgroup("g", "same-name", {stream: ">"}, count=4)
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, consumer="same-name"
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.sent == 4, what="the 4 pending entries sent")
        await forwarder.close()
        await task
    assert forwarder.stats.claimed == 0


async def test_stop_lets_calls_in_flight_finish_and_leaves_the_rest_pending(
    redis_server: RedisServer, r: redis.asyncio.Redis
) -> None:
    """stop() while calls hang: they finish and are acknowledged; entries not yet sent stay pending for others."""
    stream = "stop"
    await add_records(r, stream, events(40), session_id="s1")
    async with Emulator(faults=_latency(0.4)) as slow, client_for(slow.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, max_concurrency=2
        )
        task = await run_in_background(forwarder)
        await until(lambda: forwarder.stats.calls >= 2, what="two calls in flight")
        forwarder.stop()
        await task
        stored = len(slow.events(TRACKER))
    assert forwarder.stats.sent == stored == 20  # the two calls in flight, ten events each
    pending = await r.xpending(stream, "g")
    assert pending["pending"] == 20  # read, not sent: another forwarder takes them over
    with pytest.raises(ForwarderStateError):
        await forwarder.run()


def _latency(seconds: float) -> Any:
    from aiopersonalize_events.emulator import Faults

    return Faults(latency=seconds)


async def test_redis_going_away_is_waited_for(redis_server: RedisServer, emulator: Emulator) -> None:
    """With Redis stopped (SIGSTOP) the forwarder waits; on SIGCONT it goes on and sends what arrives."""
    stream = "away"
    async with client_for(emulator.endpoint_url) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, socket_timeout=0.3, block=0.2
        )
        task = await run_in_background(forwarder)
        redis_server.pause()
        await asyncio.sleep(1.0)  # the forwarder's reads time out meanwhile
        redis_server.resume()
        connection = redis.asyncio.Redis.from_url(redis_server.url)
        await add_records(connection, stream, events(3), session_id="s1")
        await connection.aclose()
        await until(lambda: forwarder.stats.sent == 3, what="the events sent after the pause")
        await forwarder.close()
        await task
