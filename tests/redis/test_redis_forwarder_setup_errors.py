"""A forwarder whose set-up is wrong holds the entries; with the budget empty it probes one call at a time.

Real Redis, the emulator, a ManualClock for the engine's waits: no credentials, a
key the service rejects and an unknown tracker leave every entry pending (none
dead), logged once at ERROR with the fix, and delivered once the cause is fixed.
Counted at the emulator and in Redis, never timed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone

import pytest
import redis.asyncio
from _redis_server import RedisServer, until

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    ManualClock,
    NoCredentialsError,
    PersonalizeEventsClient,
)
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.redis import Forwarder, add_records

TRACKER = "tracker-held"
GOOD = Credentials("AKIDHELD", "the-right-secret")
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class SwitchedProvider:
    """Answers as the test says: no credentials, the wrong secret, or the right ones."""

    def __init__(self, state: str) -> None:
        self.state = state

    async def resolve(self) -> Credentials:
        if self.state == "none":
            raise NoCredentialsError("no credentials in this test's source yet", sources=("switched",))
        if self.state == "wrong":
            return Credentials(GOOD.access_key_id, "a-wrong-secret")
        return GOOD


@pytest.fixture
async def r(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def events(n: int) -> list[Event]:
    return [Event(event_type="click", sent_at=SENT_AT, item_id=f"item-{i}", event_id=f"e-{i}") for i in range(n)]


def _calls(emu: Emulator) -> int:
    return sum(emu.calls.values())


async def _held_then_fixed(
    redis_server: RedisServer,
    r: redis.asyncio.Redis,
    emu: Emulator,
    provider: object,
    fix: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    stream = f"held-{fault}"
    await add_records(r, stream, events(20), session_id="s1")
    clock = ManualClock()
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emu.endpoint_url, credentials=provider, config=ClientConfig(max_attempts=1)
    ) as client:
        forwarder = Forwarder(client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, clock=clock)
        task = asyncio.create_task(forwarder.run())
        await until(lambda: forwarder.stats.retried >= 2, what="both calls held")
        for round_ in range(3):  # tried again, one probe at a time, never dead
            before = forwarder.stats.retried
            clock.advance(60.0)
            await until(lambda before=before: forwarder.stats.retried > before, what=f"held again ({round_})")
        assert forwarder.stats.dead == 0
        assert forwarder.stats.sent == 0
        assert forwarder.stats.held == 20
        assert (await r.xpending(stream, "g"))["pending"] == 20
        errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
        assert len(errors) == 1, [rec.getMessage() for rec in errors]
        assert fault in errors[0].getMessage()
        assert "held" in errors[0].getMessage()
        fix()
        clock.advance(60.0)
        await until(lambda: forwarder.stats.sent == 20, what="the held entries delivered")
        await forwarder.close()
        await task
    assert forwarder.stats.dead == 0
    assert (await r.xpending(stream, "g"))["pending"] == 0
    assert len({e["eventId"] for e in emu.events(TRACKER)}) == 20


async def test_no_credentials_hold_the_entries_until_a_source_answers(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """No credentials: entries stay pending, none dead, logged once with the fix; sent once the provider answers."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    provider = SwitchedProvider("none")

    def fix() -> None:
        provider.state = "good"

    await _held_then_fixed(redis_server, r, emulator, provider, fix, caplog, "NoCredentialsError")


async def test_a_key_the_service_rejects_holds_the_entries(
    redis_server: RedisServer, r: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The service rejects the signature: entries held, logged once; sent with the right secret."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    provider = SwitchedProvider("wrong")

    def fix() -> None:
        provider.state = "good"

    async with Emulator(credentials={GOOD.access_key_id: GOOD.secret_access_key}) as emu:
        await _held_then_fixed(redis_server, r, emu, provider, fix, caplog, "Signature")
    assert GOOD.secret_access_key not in caplog.text


async def test_an_unknown_tracker_holds_the_entries_until_it_exists(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """ResourceNotFound for the tracker: entries held, none dead; sent once the tracker exists."""
    caplog.set_level(logging.ERROR, "aiopersonalize_events")
    emulator.register(tracking_ids=["another"])

    def fix() -> None:
        emulator.register(tracking_ids=[TRACKER])

    await _held_then_fixed(redis_server, r, emulator, GOOD, fix, caplog, "ResourceNotFoundException")


async def test_with_the_budget_empty_and_the_service_down_one_probe_at_a_time(
    redis_server: RedisServer, r: redis.asyncio.Redis, emulator: Emulator
) -> None:
    """Service down, budget empty: after the first attempts, one call a round reaches the emulator, not eight."""
    emulator.faults = Faults(server_error=1.0, seed=4)
    stream = "probe"
    for session in range(8):
        await add_records(r, stream, events(10), session_id=f"s{session}")
    clock = ManualClock()
    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=GOOD,
        config=ClientConfig(max_attempts=1, retry_budget=1),
    ) as client:
        forwarder = Forwarder(
            client, redis_server.url, stream=stream, group="g", tracking_id=TRACKER, max_concurrency=8, clock=clock
        )
        task = asyncio.create_task(forwarder.run())
        await until(lambda: forwarder.stats.retried >= 8, what="every call failed once")
        first = _calls(emulator)
        for round_ in range(1, 6):
            clock.advance(60.0)  # every waiting call is due again
            await until(lambda r=round_: _calls(emulator) - first >= r, what="the round's probe")
            await asyncio.sleep(0.1)  # room for any other call to go out (none may)
            assert _calls(emulator) - first == round_
        assert forwarder.stats.dead == 0
        await forwarder.close()
        await task
    assert (await r.xpending(stream, "g"))["pending"] == 80
