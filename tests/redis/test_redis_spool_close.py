"""RedisStreamSpool's close with Redis frozen (SIGSTOP) against a real redis-server: bounded by its deadline, and
what Redis did not take by then is reported unsent (counted pending, given back by ``unsent()``), never failed.

Redis is frozen with a write on its way and a round trip timeout far longer than the test may take, so only a
close that cuts the round trip at its own deadline returns before the hang guard; every check is on what close
reported, never on the time it took.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

import pytest
from _redis_server import RedisServer, until

from aiopersonalize_events import Credentials, Event, EventRecorder, PersonalizeEventsClient, SpoolError
from aiopersonalize_events.redis import RedisStreamSpool
from aiopersonalize_events.spool import GivesBackUnsent

TRACKER = "tracker-frozen"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
HANG_GUARD = 30.0  # only a close that hangs comes near this; nothing is decided by how long close took
FROZEN_ROUND_TRIP = 120.0  # socket_timeout: longer than the hang guard, so only close's own deadline ends a write


def event(i: int) -> Event:
    return Event(event_type="click", sent_at=SENT_AT, item_id=f"item-{i}", event_id=f"id-{i}")


@pytest.fixture
async def client() -> AsyncIterator[PersonalizeEventsClient]:
    """A client that is never called: with a Redis spool the recorder sends nothing itself."""
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDFROZEN", "frozen-secret")
    ) as c:
        yield c


@pytest.fixture
def frozen(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The fixture's redis-server, to be frozen by the test (SIGSTOP); always thawed (SIGCONT) afterwards."""
    try:
        yield redis_server
    finally:
        if redis_server.paused:
            redis_server.resume()


async def _frozen_with_events_on_their_way(
    frozen: RedisServer, client: PersonalizeEventsClient, spool: RedisStreamSpool, failures: list[int], n: int
) -> EventRecorder:
    """A recorder on ``spool`` that wrote one event, then Redis frozen and ``n`` more recorded (one write out)."""
    recorder = client.event_recorder(
        tracking_id=TRACKER, spool=spool, on_failure=lambda events, error: failures.append(len(events))
    )
    await recorder.__aenter__()
    await recorder.put(event(0), session_id="s1")  # connected: the next write goes out and waits on the frozen Redis
    frozen.pause()
    for i in range(1, n + 1):
        assert recorder.record(event(i), session_id=f"s{i % 3}")
    assert spool.stats.queued == n
    await asyncio.sleep(0.1)  # room for the writer's round trip to go out (what is checked does not depend on it)
    return recorder


async def test_close_with_redis_frozen_reports_what_redis_did_not_take_as_unsent_not_failed(
    frozen: RedisServer, client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis frozen with a write on its way: the recorder's close() returns (the spool's close_timeout cuts the
    round trip), nothing is failed or handed to on_failure; the events are pending, and unsent() gives them back."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events.redis")
    caplog.set_level(logging.WARNING, "aiopersonalize_events")
    spool = RedisStreamSpool(frozen.url, stream="frozen", socket_timeout=FROZEN_ROUND_TRIP, close_timeout=1.0)
    assert isinstance(spool, GivesBackUnsent)  # the recorder's close finds what it gives back through the protocol
    failures: list[int] = []
    recorder = await _frozen_with_events_on_their_way(frozen, client, spool, failures, 300)
    await asyncio.wait_for(recorder.close(), HANG_GUARD)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (301, 1, 0, 0, 300)
    assert failures == []
    said = [r.getMessage() for r in caplog.records if r.name == "aiopersonalize_events.recorder"]
    # the recorder does not claim that events Redis never had wait in the spool for the next start
    assert not any("stay in the spool" in line for line in said), said
    assert any("300 event(s) were not taken by the spool" in line and "unsent()" in line for line in said), said
    assert (spool.stats.written, spool.stats.lost, spool.stats.unsent, spool.stats.queued) == (1, 0, 300, 0)
    unsent = spool.unsent()
    assert [e.event_id for e, _, _ in unsent] == [f"id-{i}" for i in range(1, 301)]  # oldest first, ids kept
    assert [(s, u) for _, s, u in unsent[:3]] == [("s1", None), ("s2", None), ("s0", None)]
    assert "300 event(s) not written to the Redis stream" in caplog.text
    assert "unsent" in caplog.text


async def test_close_timeout_bounds_the_spool_s_close_below_its_close_timeout(
    frozen: RedisServer, client: PersonalizeEventsClient
) -> None:
    """close(timeout=) (what a recorder's close gives its spool) wins over a longer close_timeout: with Redis
    frozen it returns, reports the events unsent, and a put() waiting on them raises SpoolError (not written)."""
    spool = RedisStreamSpool(
        frozen.url, stream="frozen", socket_timeout=FROZEN_ROUND_TRIP, close_timeout=FROZEN_ROUND_TRIP
    )
    failures: list[int] = []
    recorder = await _frozen_with_events_on_their_way(frozen, client, spool, failures, 50)
    put = asyncio.ensure_future(recorder.put(event(51), session_id="s1"))
    await until(lambda: spool.stats.queued == 51, what="the put() queued")
    await asyncio.wait_for(spool.close(timeout=0.5), HANG_GUARD)
    with pytest.raises(SpoolError, match="unsent"):
        await asyncio.wait_for(put, HANG_GUARD)
    assert (spool.stats.written, spool.stats.lost, spool.stats.unsent) == (1, 0, 51)
    await asyncio.wait_for(recorder.close(), HANG_GUARD)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.pending) == (52, 1, 0, 51)
    assert failures == []
    assert len(spool.unsent()) == 51


def test_close_refuses_a_timeout_that_is_not_a_number_of_seconds() -> None:
    """close(timeout=) is checked before anything is done: a negative or non-number timeout is a ValidationError."""
    from aiopersonalize_events import ValidationError

    spool = RedisStreamSpool("redis://127.0.0.1:9/0", stream="s")
    for bad in (-1, "2", True):
        with pytest.raises(ValidationError, match="timeout"):
            asyncio.run(spool.close(timeout=bad))  # type: ignore[arg-type]
