"""The recorder's re-sends: they spend the client's retry budget, then probe; they honour
Retry-After; a non-retryable error is not re-sent.
"""

from __future__ import annotations

import asyncio

from _lifecycle_support import HANG_GUARD, TRACKER, _client, _event
from _scripted_server import ScriptedServer, make_client

from aiopersonalize_events import (
    ClientConfig,
    ManualClock,
)
from aiopersonalize_events.emulator import Emulator, Faults

# -- the one retry engine: the recorder spends the client's budget and honours Retry-After -----------------------


async def test_recorder_resends_spend_the_clients_budget_then_probe(
    server: ScriptedServer, retry_testing: None
) -> None:
    """Three 503s, max_attempts=1, a 12-token budget: two paid re-sends (5 each, pre-2026), then a free probe."""
    server.error("ServiceUnavailableException", 503, times=3)
    client = make_client(server, config=ClientConfig(max_attempts=1, retry_budget=12, retries_2026=False))
    async with client, client.event_recorder(tracking_id=TRACKER, flush_interval=0.02) as recorder:
        recorder.record(_event(1), session_id="s")
        await asyncio.wait_for(recorder.flush(), HANG_GUARD)
        tokens = client.retry_policy.budget.tokens
    assert recorder.stats.sent == 1
    assert recorder.stats.retried == 3
    assert len(server.requests) == 4
    # 12 - 5 - 5 = 2 left when the budget could not pay the third re-send; the probe's success refunds one
    assert tokens == 3


async def test_recorder_resends_honour_retry_after(server: ScriptedServer) -> None:
    """A throttling answer with Retry-After: 3 holds the batch back 3 s on the recorder's clock (jitter says 0).

    The clock is a ManualClock: the test moves it instead of sleeping, and checks
    that nothing is re-sent at 2.9 s and that the batch goes at 3 s.
    """
    server.error("ThrottlingException", 400, headers={"Retry-After": "3"})
    client = make_client(server, config=ClientConfig(max_attempts=1, retry_budget=100))
    client.retry_policy.random = lambda: 0.0
    clock = ManualClock()
    async with client, client.event_recorder(tracking_id=TRACKER, flush_interval=60, clock=clock) as recorder:
        recorder.record(_event(1), session_id="s")
        flushed = asyncio.ensure_future(recorder.flush())
        for _ in range(4000):  # the first send and its throttling answer: real I/O
            if recorder.stats.retried:
                break
            await asyncio.sleep(0.005)
        assert (recorder.stats.retried, len(server.requests)) == (1, 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.next_due() == 3.0  # the re-send is due at Retry-After, not at the jitter's 0
        clock.advance(2.9)
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(server.requests) == 1
        assert not flushed.done()
        clock.advance(0.1)
        await asyncio.wait_for(flushed, HANG_GUARD)
    assert recorder.stats.sent == 1
    assert len(server.requests) == 2


async def test_recorder_under_emulator_faults_spends_and_refills_the_clients_budget(
    emulator: Emulator, retry_testing: None
) -> None:
    """An outage of 5xx drains the client's budget through the recorder's re-sends; after it, all 100 arrive once."""
    emulator.faults = Faults(server_error=1.0, seed=8)
    async with _client(emulator, max_attempts=1, retry_budget=50, retries_2026=False) as client:  # 5 a re-send
        async with client.event_recorder(tracking_id=TRACKER, flush_interval=0.01) as recorder:
            for n in range(100):
                recorder.record(_event(n), session_id=f"s{n % 10}")
            for _ in range(int(HANG_GUARD / 0.01)):  # a hang guard: polled, not timed
                if client.retry_policy.budget.tokens < 5:
                    break
                await asyncio.sleep(0.01)
            drained = client.retry_policy.budget.tokens
            assert recorder.stats.sent == 0
            emulator.faults = None
            await asyncio.wait_for(recorder.flush(), HANG_GUARD)
        refilled = client.retry_policy.budget.tokens
    assert drained < 5  # the re-sends paid from the client's budget
    assert refilled > drained  # successes gave tokens back
    stats = recorder.stats
    assert (stats.sent, stats.failed, stats.pending) == (100, 0, 0)
    assert stats.retried >= 10
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == sorted(f"e{n}" for n in range(100))
