"""The recorder's lifecycle: a recorder left open when its loop ends, close() bounded whatever its
callbacks do, record() from other threads, and async on_drop.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from _lifecycle_support import HANG_GUARD, TRACKER, _client, _event, until
from _scripted_server import ScriptedServer, make_client

from aiopersonalize_events import (
    Credentials,
    Event,
    MemorySpool,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    RecorderClosedError,
    RecorderStateError,
    ResourceNotFoundException,
)
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.spool import GivesBackUnsent

# -- the loop ends with the recorder open ----------------------------------------------------------------

_OPEN_AT_LOOP_END = """
import asyncio, logging, sys
from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")

async def main():
    emulator = Emulator()
    await emulator.start()
    client = PersonalizeEventsClient(region="us-east-1", endpoint_url=emulator.endpoint_url,
                                     credentials=Credentials("AKIDX", "s"))
    recorder = client.event_recorder(tracking_id="t", flush_interval=60)
    recorder.record(Event(event_type="v", sent_at=1), session_id="s")
    await recorder.flush()
    for n in range(3):
        recorder.record(Event(event_type="v", sent_at=1), session_id="s")
    print("stats", recorder.stats.sent, recorder.stats.pending, flush=True)
    return recorder, client, emulator  # no close(): the loop ends with the recorder open

recorder, client, emulator = asyncio.run(main())
print("after", recorder.stats, flush=True)
try:
    asyncio.run(recorder.flush())
except Exception as exc:
    print("second loop:", type(exc).__name__, flush=True)
"""


def test_a_recorder_open_when_its_loop_ends_never_keeps_the_process_alive() -> None:
    """asyncio.run returns (no hang on any Python), an error line counts the events left, a 2nd loop is refused."""
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_AT_LOOP_END], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "stats 1 3" in done.stdout
    assert "after RecorderStats(recorded=4, sent=1, failed=3, dropped=0, pending=0" in done.stdout
    assert "second loop: RecorderStateError" in done.stdout
    assert "event loop ended without close(); 3 event(s) were not delivered" in done.stderr


# -- close() is bounded, callbacks included ---------------------------------------------------------------------


async def test_close_deadline_bounds_slow_async_on_failure(server: ScriptedServer) -> None:
    """20 failed batches whose async on_failure each outlasts close(timeout=1): close cuts them off at its deadline.

    Decided by what happened, not by how long it took: each callback sleeps far longer than the hang guard
    (so close() returning at all means the deadline, not the callbacks, ended it), every one of the 20 was
    called before close() began, and close() cancelled every one of them. HANG_GUARD (20x the deadline) only
    turns a hang into a failure.
    """
    server.error("InvalidInputException", 400, "bad events", times=20)  # refused for good: each batch fails at once
    started: list[int] = []
    cancelled: list[int] = []
    all_started = asyncio.Event()

    async def on_failure(events: list[Event], error: PersonalizeEventsError) -> None:
        started.append(len(events))
        if sum(started) == 20:
            all_started.set()
        try:
            await asyncio.sleep(10 * HANG_GUARD)
        except asyncio.CancelledError:
            cancelled.append(len(events))
            raise

    async with make_client(server) as client:
        recorder = client.event_recorder(tracking_id="a-tracker", on_failure=on_failure, max_concurrency=20)
        for n in range(20):
            recorder.record(_event(n), session_id=f"s{n}")
        await asyncio.wait_for(all_started.wait(), HANG_GUARD)  # every failure handed over, each callback running
        await asyncio.wait_for(recorder.close(timeout=1), HANG_GUARD)
    assert recorder.stats.failed == 20
    assert sum(started) == 20  # every failure was handed over (and counted), even if its callback was cut off
    assert sum(cancelled) == 20  # and each callback still running at the deadline was cancelled


async def test_close_returns_even_if_a_callback_never_does(emulator: Emulator) -> None:
    """An on_failure that never returns cannot hold close(timeout) open; the events are still counted failed."""
    emulator.register(tracking_ids=["known"])

    async def forever(events: list[Event], error: PersonalizeEventsError) -> None:
        await asyncio.Event().wait()

    async with _client(emulator) as client:
        recorder = client.event_recorder(tracking_id="unknown", on_failure=forever)
        recorder.record(_event(1), session_id="s")
        await asyncio.wait_for(recorder.close(timeout=0.3), HANG_GUARD)
    assert (recorder.stats.failed, recorder.stats.pending) == (1, 0)


class _DeadlineSpool(MemorySpool):
    """A memory spool whose close() takes a deadline, as SqliteSpool's does, and notes what it was given."""

    def __init__(self) -> None:
        super().__init__(max_events=100)
        self.given: list[float | None] = []

    async def close(self, *, timeout: float | None = None) -> None:
        self.given.append(timeout)
        await super().close()


@pytest.mark.parametrize("limit", [1.0, 0.0])
async def test_close_gives_the_spool_what_is_left_of_its_deadline_and_no_more(emulator: Emulator, limit: float) -> None:
    """A spool whose close() takes timeout= is handed what is left of close()'s own deadline, never a floor past
    it: close(timeout=1) gives it at most a second, close(timeout=0) nothing."""
    spool = _DeadlineSpool()
    async with _client(emulator) as client:
        recorder = client.event_recorder(tracking_id=TRACKER, spool=spool)
        await recorder.__aenter__()
        recorder.record(_event(1), session_id="s")
        await asyncio.wait_for(recorder.close(timeout=limit), HANG_GUARD)
    (given,) = spool.given
    assert given is not None
    assert 0.0 <= given <= limit
    stats = recorder.stats
    assert (stats.sent + stats.failed, stats.pending) == (1, 0)  # sent, or (with no time at all) failed


# -- record() from other threads ---------------------------------------------------------------------------------


async def test_record_from_a_thread_pool_is_handed_over_and_never_stranded(emulator: Emulator) -> None:
    """Sync endpoints in a thread pool call record(): every accepted event is sent; counters add up."""
    async with _client(emulator) as client, client.event_recorder(tracking_id=TRACKER, flush_interval=0.05) as recorder:
        loop = asyncio.get_running_loop()

        def endpoint(n: int) -> bool:
            assert threading.current_thread() is not threading.main_thread()
            return recorder.record(_event(n), session_id=f"s{n % 7}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            accepted = await asyncio.gather(*(loop.run_in_executor(pool, endpoint, n) for n in range(400)))
    assert all(accepted)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.pending) == (400, 400, 0)
    assert len(emulator.events(TRACKER)) == 400


async def test_record_from_a_thread_after_close_is_refused_and_counted(emulator: Emulator) -> None:
    """After close(), record() from a thread returns False and the drop is counted and reported."""
    reasons: list[str] = []
    async with _client(emulator) as client:
        recorder = client.event_recorder(tracking_id=TRACKER, on_drop=lambda e, r: reasons.append(r))
        async with recorder:
            pass
        accepted = await asyncio.to_thread(recorder.record, _event(1), session_id="s")
        await asyncio.sleep(0)  # the hand-over runs on the loop
        for _ in range(3000):  # a hang guard (30 s): polled, not timed
            if reasons:
                break
            await asyncio.sleep(0.01)
    assert accepted is True or accepted is False
    assert reasons
    assert reasons[0].startswith("closed")
    s = recorder.stats
    assert (s.recorded, s.dropped, s.pending) == (1, 1, 0)


def test_record_from_a_thread_before_any_loop_is_refused_clearly() -> None:
    """record() with no event loop anywhere, before the recorder started: a clear RecorderStateError."""
    client = PersonalizeEventsClient(region="us-east-1", credentials=Credentials("AKIDR2", "s"))
    recorder = client.event_recorder(tracking_id=TRACKER)
    with pytest.raises(RecorderStateError, match="started first"):
        recorder.record(_event(1), session_id="s")
    assert recorder.stats.recorded == 0


# -- async on_drop ---------------------------------------------------------------------------------------------


async def test_async_on_drop_runs(emulator: Emulator) -> None:
    """An async on_drop is run (not left un-awaited) for every dropped event."""
    seen: list[str] = []

    async def on_drop(event: Event, reason: str) -> None:
        await asyncio.sleep(0)
        seen.append(reason)

    async with _client(emulator) as client:
        async with client.event_recorder(tracking_id=TRACKER, max_queue_size=5, on_drop=on_drop) as recorder:
            for n in range(8):
                recorder.record(_event(n), session_id="s")
        assert recorder.stats.dropped == 3
    assert seen == ["queue full"] * 3


async def test_a_not_found_tracker_holds_the_events_without_spending_the_budget(emulator: Emulator) -> None:
    """An unknown tracker is a set-up error: held (pending, not failed) while open, budget kept, unsent at close."""
    emulator.register(tracking_ids=["known"])
    failures: list[PersonalizeEventsError] = []
    async with _client(emulator) as client:
        recorder = client.event_recorder(tracking_id="unknown", on_failure=lambda ev, err: failures.append(err))
        async with recorder:
            recorder.record(_event(1), session_id="s")
            await until(lambda: emulator.calls[("PutEvents", 404)] > 0, "a PutEvents call answered 404")
            await asyncio.sleep(0)
            assert (recorder.stats.failed, recorder.stats.pending) == (0, 1)
            assert failures == []
            await recorder.close(timeout=0)
        tokens = client.retry_policy.budget.tokens
    assert [type(f) for f in failures] == [RecorderClosedError]  # a memory spool cannot keep them past close
    assert isinstance(failures[0].__cause__, ResourceNotFoundException)
    assert tokens == client.config.retry_budget


# -- what a durable spool keeps at close ------------------------------------------------------------------------


class _DurableSpool(MemorySpool):
    """A memory spool that says it is durable, as a file or a stream would: what is pending at close is its own."""

    durable = True


class _GivingBackSpool(_DurableSpool):
    """A durable spool that, at its close deadline, could not keep the two newest events, and gives them back."""

    def __init__(self) -> None:
        super().__init__()
        self.appended: list[Event] = []
        self.closed = False

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        self.appended.append(event)
        super().append(event, session_id, user_id)

    async def close(self) -> None:
        self.closed = True
        await super().close()

    def unsent(self) -> list[tuple[Event, str, str | None]]:
        return [(event, "s", None) for event in self.appended[-2:]] if self.closed else []


@pytest.mark.parametrize("spool_type", [_DurableSpool, _GivingBackSpool])
async def test_a_durable_spool_s_close_says_what_it_keeps_and_what_it_gave_back(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, spool_type: type[_DurableSpool]
) -> None:
    """Events held at close (an unknown tracker) stay pending with a durable spool. The close says they stay in the
    spool for the next start, except those a spool keeping GivesBackUnsent gave back: those it says are not kept."""
    caplog.set_level(logging.WARNING, "aiopersonalize_events.recorder")
    emulator.register(tracking_ids=["known"])
    spool = spool_type()
    assert isinstance(spool, GivesBackUnsent) == (spool_type is _GivingBackSpool)
    failures: list[PersonalizeEventsError] = []
    async with _client(emulator) as client:
        recorder = client.event_recorder(
            tracking_id="unknown", spool=spool, on_failure=lambda ev, err: failures.append(err)
        )
        async with recorder:
            for n in range(3):
                recorder.record(_event(n), session_id="s")
            await until(lambda: emulator.calls[("PutEvents", 404)] > 0, "a PutEvents call answered 404")
            await recorder.close(timeout=0)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.pending) == (3, 0, 0, 3)
    assert failures == []  # durable: nothing reaches on_failure at close
    said = [r.getMessage() for r in caplog.records if "event recorder closed" in r.getMessage()]
    if spool_type is _GivingBackSpool:
        assert said == [
            "event recorder closed; 1 event(s) stay in the spool for the next start",
            "event recorder closed; 2 event(s) were not taken by the spool by its close deadline and are not kept: "
            "the spool's unsent() gives them back while this process runs",
        ]
    else:
        assert said == ["event recorder closed; 3 event(s) stay in the spool for the next start"]
