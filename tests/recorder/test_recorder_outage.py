"""The recorder through an outage: it rides it out and delivers everything after, and closed during
one it hands every event to on_failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _outage_support import (
    HANG_GUARD,
    TRACKER,
    _client,
    _event,
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    _seen,
)

from aiopersonalize_events import (
    Event,
    PersonalizeEventsError,
    RecorderClosedError,
    ServiceError,
)
from aiopersonalize_events.emulator import Emulator, Faults


async def test_the_recorder_rides_out_an_outage_and_delivers_everything_after(emulator: Emulator) -> None:
    """Events recorded before and during an outage are all delivered, exactly once, after the service recovers."""
    failures: list[Any] = []
    async with _client(emulator, max_attempts=2, backoff_base=0.02, backoff_max=0.2) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER,
            flush_interval=0.02,
            on_failure=lambda events, error: failures.append(events),
        )
        async with recorder:
            for n in range(200):
                recorder.record(_event(n), session_id=f"s{n % 20}")
            await recorder.flush()
            emulator.faults = Faults(server_error=0.5, throttle=0.5, seed=3)
            before = _seen(emulator)
            for n in range(200, 700):
                recorder.record(_event(n), session_id=f"s{n % 20}")
                if n % 50 == 0:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            during = _seen(emulator) - before
            assert recorder.stats.sent == 200  # nothing got through
            emulator.faults = None
            await asyncio.wait_for(recorder.flush(), HANG_GUARD)
        stats = recorder.stats
    assert failures == []
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (700, 700, 0, 0, 0)
    assert stats.retried > 0
    ids = [e["eventId"] for e in emulator.events(TRACKER)]
    assert sorted(ids) == sorted(f"e{n}" for n in range(700))
    print(f"recorder outage: {during} refused calls in 1.5 s, then all 700 events delivered; stats {stats}")


async def test_a_recorder_closed_during_an_outage_hands_every_event_to_on_failure(emulator: Emulator) -> None:
    """close(timeout) while every call fails: each recorded event reaches on_failure exactly once, none sent."""
    emulator.faults = Faults(server_error=1.0, seed=4)
    failed: dict[str, int] = {}
    errors: list[PersonalizeEventsError] = []

    def on_failure(events: list[Event], error: PersonalizeEventsError) -> None:
        errors.append(error)
        for event in events:
            assert event.event_id is not None
            failed[event.event_id] = failed.get(event.event_id, 0) + 1

    async with _client(emulator, max_attempts=2, backoff_base=0.05, backoff_max=0.2) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER,
            flush_interval=0.05,
            max_concurrency=4,
            on_failure=on_failure,
        )
        async with recorder:
            for n in range(333):
                recorder.record(_event(n), session_id=f"s{n % 30}", user_id=f"u{n % 7}")
            await asyncio.sleep(0.3)  # batches are in flight and retrying
            started = time.monotonic()
            await asyncio.wait_for(recorder.close(timeout=0.3), HANG_GUARD)
            took = time.monotonic() - started
            assert recorder.record(_event(9999), session_id="late") is False  # after close: dropped, not failed
        stats = recorder.stats
    assert failed == {f"e{n}": 1 for n in range(333)}
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (334, 0, 333, 1, 0)
    assert all(isinstance(e, (ServiceError, RecorderClosedError)) for e in errors)
    assert emulator.events(TRACKER) == []
    print(f"closed during outage: 333 events to on_failure in {len(errors)} calls, close took {took:.2f}s")
