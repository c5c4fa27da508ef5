"""Cancellation at random points of a recorder's life: every event accounted for, nothing left
running, and a cancelled flush does not stop close() from draining (hypothesis picks the moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import pytest
from _cancel_support import CANCELS, HANG_GUARD, TRACKER, _cancel_after, _client, _examples, _faults, library_tasks
from hypothesis import given
from hypothesis import strategies as st

from aiopersonalize_events import (
    Event,
    PersonalizeEventsClient,
)
from aiopersonalize_events.emulator import Emulator, Faults


@CANCELS
@given(
    n=st.integers(0, 120),
    sessions=st.integers(1, 15),
    hold=st.sampled_from([0.0, 0.0, 0.05, 1.0]),
    close_timeout=st.sampled_from([0.02, 0.2, 5.0]),
    queue=st.sampled_from([5, 50, 10_000]),
    delay=st.floats(0, 0.15),
    seed=st.integers(0, 1000),
)
async def test_cancelling_the_task_that_owns_a_recorder_keeps_every_event_accounted_for(
    n: int, sessions: int, hold: float, close_timeout: float, queue: int, delay: float, seed: int
) -> None:
    """Cancelling a recorder's owner (even inside close()) leaves the invariant true, nothing pending or running.

    Every recorded event is stored by the emulator, handed to on_failure, or
    dropped; close() raises nothing but the owner's own cancellation, and a
    later close() returns quietly.
    """
    prefix = f"r{next(_examples)}"
    failed: list[str] = []
    dropped: list[str] = []
    holder: list[Any] = []
    recorded: list[str] = []

    async def owner(client: PersonalizeEventsClient) -> None:
        recorder = client.event_recorder(
            tracking_id=TRACKER,
            flush_interval=0.01,
            max_queue_size=queue,
            max_concurrency=3,
            close_timeout=close_timeout,
            on_failure=lambda events, error: failed.extend(str(e.event_id) for e in events),
            on_drop=lambda event, reason: dropped.append(str(event.event_id)),
        )
        holder.append(recorder)
        async with recorder:
            for i in range(n):
                recorded.append(f"{prefix}-{i}")
                recorder.record(Event(event_type="v", sent_at=1, event_id=recorded[-1]), session_id=f"s{i % sessions}")
                if i % 10 == 9:
                    await asyncio.sleep(0.002)
            if hold:
                await asyncio.sleep(hold)

    async with Emulator(faults=_faults(seed)) as emu, _client(emu) as client:
        task = asyncio.create_task(owner(client))
        await _cancel_after(task, delay)
        if not task.cancelled():
            assert task.exception() is None  # close() raised nothing
        recorder = holder[0]
        await asyncio.wait_for(recorder.close(), HANG_GUARD)  # again: returns quietly
        assert library_tasks() == []
        stats = recorder.stats
        stored = [e["eventId"] for e in emu.events(TRACKER)]

    assert stats.recorded == len(recorded)
    assert stats.recorded == stats.sent + stats.failed + stats.dropped + stats.pending
    assert stats.pending == 0
    assert (stats.failed, stats.dropped) == (len(failed), len(dropped))
    assert stats.sent <= len(stored)  # a call cancelled after the service stored it counts as failed
    assert set(stored) | set(failed) | set(dropped) == set(recorded)
    assert set(stored) <= set(recorded)
    assert not set(dropped) & (set(stored) | set(failed))
    assert len(failed) == len(set(failed))
    gc.collect()


@pytest.mark.parametrize("when", ["before the first event", "while sending", "while closing"])
async def test_a_cancelled_owner_never_leaves_a_running_recorder(when: str) -> None:
    """The three moments that matter, without hypothesis: before use, mid-stream, and inside close()."""
    failed: list[int] = []
    async with Emulator(faults=Faults(latency=0.05)) as emu, _client(emu) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER, flush_interval=0.01, close_timeout=5.0, on_failure=lambda e, _: failed.append(len(e))
        )
        entered = asyncio.Event()
        closing = asyncio.Event()

        async def owner() -> None:
            async with recorder:
                entered.set()
                if when != "before the first event":
                    for i in range(45):
                        recorder.record(Event(event_type="v", sent_at=1, event_id=f"w{i}"), session_id=f"s{i % 3}")
                if when == "while closing":
                    closing.set()
                    return
                await asyncio.sleep(10)

        task = asyncio.create_task(owner())
        await entered.wait()
        if when == "while closing":
            await closing.wait()
            await asyncio.sleep(0.02)  # close() is now waiting for the slow answers
        else:
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_GUARD)
        assert library_tasks() == []
        stats = recorder.stats
        stored = len(emu.events(TRACKER))
    assert stats.pending == 0
    assert stats.recorded == stats.sent + stats.failed + stats.dropped
    assert stats.failed == sum(failed)
    assert stats.sent <= stored <= stats.sent + stats.failed


async def test_a_cancelled_flush_does_not_stop_close_from_draining() -> None:
    """Cancelling flush() leaves the events in flight alone: close() still waits for them and they count as sent.

    Regression: flush() gathered the batches' futures, so cancelling it
    cancelled them; close() then stopped waiting at once and reported events
    that the service went on to accept as failed ("closed before delivery").
    """
    failed: list[int] = []
    release = asyncio.Event()
    arrived = asyncio.Event()
    held: list[float] = []

    async def hold(latency: float) -> None:  # the emulator's latency: both answers wait until the test says
        held.append(latency)
        if len(held) == 2:
            arrived.set()
        await release.wait()

    async with Emulator(faults=Faults(latency=0.2), sleep=hold) as emu, _client(emu) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER, flush_interval=60, on_failure=lambda events, _: failed.append(len(events))
        )
        async with recorder:
            for i in range(11):
                recorder.record(Event(event_type="v", sent_at=1, event_id=f"f{i}"), session_id=f"s{i // 10}")
            flushing = asyncio.create_task(recorder.flush())
            await asyncio.wait_for(arrived.wait(), HANG_GUARD)  # both calls are at the service, unanswered
            assert await _cancel_after(flushing, 0)  # cancelled while the calls are in flight
            release.set()
            await asyncio.wait_for(recorder.close(timeout=5), HANG_GUARD)
        stats = recorder.stats
        stored = len(emu.events(TRACKER))
    assert failed == []
    assert (stats.sent, stats.failed, stats.pending) == (11, 0, 0)
    assert stored == 11
