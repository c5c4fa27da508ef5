"""Time in the Redis components is injected one way, a ``Clock``: the forwarder's waits while Redis is away and the
rate limiter's waits for a slot run on a ``ManualClock``, and move only when the test moves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from _redis_server import RedisServer, until

from aiopersonalize_events import Credentials, PersonalizeEventsClient
from aiopersonalize_events._clock import ManualClock
from aiopersonalize_events.errors import ValidationError
from aiopersonalize_events.redis import Forwarder, RedisRateLimiter


class ClosingServer:
    """A TCP server on 127.0.0.1 that accepts each connection and closes it at once, counting them."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> ClosingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def closing() -> AsyncIterator[ClosingServer]:
    async with ClosingServer() as server:
        yield server


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_forwarders_waits_while_redis_is_away_run_on_its_clock(closing: ClosingServer) -> None:
    """Redis drops every connection: the forwarder tries once, then tries again only when its clock passed the
    backoff's wait (counted at the server), however long the test's loop spins meanwhile."""
    clock = ManualClock()
    client = PersonalizeEventsClient(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDCLOCK", "clock-secret")
    )
    async with client:
        forwarder = Forwarder(
            client, closing.url, stream="s", group="g", tracking_id="t", clock=clock, random=lambda: 1
        )
        task = asyncio.create_task(forwarder.run())
        try:
            await until(lambda: closing.connections >= 1, what="the first try")
            await until(lambda: clock.next_due() is not None, what="a wait on the clock")
            await _turns()
            assert closing.connections == 1  # no time passed on the clock: no second try
            for tries in (2, 3):
                due = clock.next_due()
                assert due is not None
                clock.advance(due - clock.time())
                await until(lambda tries=tries: closing.connections >= tries, what=f"try {tries}")  # type: ignore[misc]
                await until(lambda: clock.next_due() is not None, what="the next wait")
                await _turns()
                assert closing.connections == tries
        finally:
            await forwarder.close()
            await task


async def test_the_rate_limiters_wait_for_a_slot_runs_on_its_clock(redis_server: RedisServer) -> None:
    """At 1 call a second, the second acquire() waits its slot on the limiter's clock: not done until advanced."""
    clock = ManualClock()
    async with RedisRateLimiter(redis_server.url, key="clocked", rate=1, clock=clock) as limiter:
        await limiter.acquire()
        second = asyncio.create_task(limiter.acquire())
        await until(lambda: clock.next_due() is not None, what="the wait for the second slot")
        due = clock.next_due()
        assert due is not None
        assert 0.5 < due - clock.time() <= 1.0  # the slot is a second after the first, on Redis's clock
        await _turns()
        assert not second.done()
        clock.advance(1.0)
        await asyncio.wait_for(second, 10)
        assert limiter.granted == 2


async def test_the_rate_limiters_waits_while_redis_is_away_run_on_its_clock(closing: ClosingServer) -> None:
    """With Redis dropping connections, acquire() tries again only when its clock passed the backoff's wait."""
    clock = ManualClock()
    limiter = RedisRateLimiter(closing.url, key="k", rate=10, clock=clock, random=lambda: 1)
    task = asyncio.create_task(limiter.acquire())
    try:
        await until(lambda: clock.next_due() is not None, what="a wait on the clock")
        await _turns()
        assert closing.connections == 1
        due = clock.next_due()
        assert due is not None
        clock.advance(due - clock.time())
        await until(lambda: closing.connections >= 2, what="the second try")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await limiter.close()


def test_a_clock_that_is_not_one_is_refused_before_any_io() -> None:
    """clock= must have time() and call_at(): ValidationError naming it (the limiter, as the forwarder)."""
    with pytest.raises(ValidationError) as caught:
        RedisRateLimiter("redis://127.0.0.1:1/0", key="k", rate=1, clock=object())  # type: ignore[arg-type]
    assert caught.value.path == "clock"
