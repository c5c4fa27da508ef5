"""The client's lifecycle and connection pool: a second loop or a closed client is a library error,
a header-breaking config is refused when built, and a pool wait is neither a read timeout nor a
lost slot.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
import pytest
from _lifecycle_support import HANG_GUARD, TRACKER, _client, _event

from aiopersonalize_events import (
    ClientConfig,
    ClientStateError,
    Credentials,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    PoolTimeoutError,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator, Faults

# -- the client's own misuse is a library error -------------------------------------------------------------


def test_a_client_used_from_a_second_loop_or_after_close_raises_a_library_error(emulator_url: str) -> None:
    """A second asyncio.run, or a call after close(): ClientStateError (a PersonalizeEventsError), not RuntimeError."""
    event = _event(1)
    holder: list[PersonalizeEventsClient] = []

    async def first_loop() -> None:
        async with aiohttp.ClientSession() as session:  # the caller's session, closed with its loop
            client = PersonalizeEventsClient(
                region="us-east-1", endpoint_url=emulator_url, credentials=Credentials("A", "s"), session=session
            )
            await client.put_events(tracking_id=TRACKER, session_id="s", event_list=[event])
            holder.append(client)

    async def second_loop() -> None:
        await holder[0].put_events(tracking_id=TRACKER, session_id="s", event_list=[event])

    asyncio.run(first_loop())
    with pytest.raises(ClientStateError, match="another event loop"):
        asyncio.run(second_loop())

    async def close_then_call() -> None:
        other = PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator_url, credentials=Credentials("A", "s")
        )
        async with other:
            pass
        await other.put_events(tracking_id=TRACKER, session_id="s", event_list=[event])

    with pytest.raises(ClientStateError, match="closed"):
        asyncio.run(close_then_call())
    assert issubclass(ClientStateError, PersonalizeEventsError)


@pytest.mark.parametrize("extra", ["x\r\nX-Injected: 1", "tab\there", "caf\u00e9", 5])
def test_a_header_breaking_user_agent_extra_is_refused_when_the_config_is_built(extra: Any) -> None:
    """user_agent_extra that could not go into a header raises ValidationError naming it, before any I/O."""
    with pytest.raises(ValidationError) as info:
        ClientConfig(user_agent_extra=extra)
    assert info.value.path == "user_agent_extra"


@pytest.fixture
def emulator_url() -> Any:
    """An emulator in its own thread and loop, for tests that run their own asyncio.run."""
    ready = threading.Event()
    stop: list[Any] = []
    holder: list[str] = []

    def serve() -> None:
        async def main() -> None:
            async with Emulator() as emu:
                holder.append(emu.endpoint_url)
                done = asyncio.Event()
                stop.append((asyncio.get_running_loop(), done))
                ready.set()
                await done.wait()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder[0]
    loop, done = stop[0]
    loop.call_soon_threadsafe(done.set)
    thread.join(10)


# -- a pool wait is not a service timeout ---------------------------------------------------------------------


async def test_waiting_for_a_pooled_connection_is_not_a_read_timeout(emulator: Emulator) -> None:
    """300 concurrent calls over 2 connections, each attempt bounded at 0.5 s: all succeed, none retried."""
    emulator.faults = Faults(latency=0.01)
    async with _client(emulator, max_connections=2, attempt_timeout=0.5, read_timeout=0.5) as client:
        metas = await asyncio.gather(
            *(client.put_events(tracking_id=TRACKER, session_id="s", event_list=[_event(n)]) for n in range(300))
        )
        budget = client.retry_policy.budget.tokens
    assert all(m.retry_attempts == 0 for m in metas)
    assert len(emulator.events(TRACKER)) == 300
    assert budget == client.config.retry_budget


async def test_a_pool_timeout_fails_without_sending_or_spending_the_budget(emulator: Emulator) -> None:
    """With pool_timeout, a call that found no free connection fails with PoolTimeoutError; it was never stored."""
    emulator.faults = Faults(latency=0.2)
    async with _client(emulator, max_connections=1, pool_timeout=0.05) as client:
        results = await asyncio.gather(
            *(client.put_events(tracking_id=TRACKER, session_id="s", event_list=[_event(n)]) for n in range(5)),
            return_exceptions=True,
        )
        budget = client.retry_policy.budget.tokens
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed
    assert all(isinstance(r, PoolTimeoutError) and r.attempts == 1 for r in failed)
    stored = {e["eventId"] for e in emulator.events(TRACKER)}
    assert len(stored) == 5 - len(failed)
    assert budget >= client.config.retry_budget - 0  # a pool timeout costs no token


async def test_a_call_cancelled_while_waiting_for_the_pool_gives_no_slot_away() -> None:
    """Cancelling calls that wait for a connection leaves the pool whole: every later call still goes through.

    The first call's answer is held (the emulator's latency waits for an event), so the other five are still
    waiting for the one connection when three of them are cancelled, however slow the machine.
    """
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def hold(latency: float) -> None:
        arrived.set()
        await release.wait()

    async with (
        Emulator(faults=Faults(latency=0.05), sleep=hold) as emulator,
        _client(emulator, max_connections=1) as client,
    ):
        calls = [
            asyncio.create_task(client.put_events(tracking_id=TRACKER, session_id="s", event_list=[_event(n)]))
            for n in range(6)
        ]
        await asyncio.wait_for(arrived.wait(), HANG_GUARD)  # the first call holds the connection
        for task in calls[1:4]:
            task.cancel()
        release.set()
        done = await asyncio.gather(*calls, return_exceptions=True)
        assert [isinstance(r, asyncio.CancelledError) for r in done] == [False, True, True, True, False, False]
        emulator.faults = None
        more = await asyncio.wait_for(
            asyncio.gather(
                *(client.put_events(tracking_id=TRACKER, session_id="s", event_list=[_event(n)]) for n in range(10, 20))
            ),
            HANG_GUARD,
        )
    assert len(more) == 10
    assert {e["eventId"] for e in emulator.events(TRACKER)} == {f"e{n}" for n in (0, 4, 5, *range(10, 20))}
