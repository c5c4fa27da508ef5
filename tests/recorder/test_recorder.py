"""The EventRecorder against the emulator: grouping, delivery under faults, overflow, close."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import tracemalloc
import uuid
import weakref
from collections import Counter
from typing import Any

import pytest
from _recorder_support import (
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    emulator_client,
)
from _scripted_server import ScriptedServer

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    EventRecorder,
    InvalidInputException,
    ManualClock,
    MemorySpool,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    RecorderClosedError,
    SpoolBatch,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-1"

pytestmark = pytest.mark.usefixtures("collect_after")


client_fixture = emulator_client("AKIDRECORDER", "recorder-secret")


def _event(i: int, **kw: Any) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", **kw)


def _check_invariant(recorder: EventRecorder) -> None:
    s = recorder.stats
    assert s.recorded == s.sent + s.failed + s.dropped + s.pending, s


async def test_record_is_synchronous_and_never_awaits(client: PersonalizeEventsClient) -> None:
    """record() is a plain function: it returns a bool at once, with no coroutine to await."""
    recorder = client.event_recorder(tracking_id=TRACKER)
    assert not inspect.iscoroutinefunction(recorder.record)
    async with recorder:
        assert recorder.record(_event(1), session_id="s") is True
    assert recorder.stats.sent == 1


async def test_events_of_50_sessions_arrive_grouped(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """Events of 50 sessions and users are sent in calls holding one (session, user) each, ten at most."""
    async with client.event_recorder(tracking_id=TRACKER, flush_interval=60) as recorder:
        for i in range(1000):
            session = i % 50
            user = None if session % 2 else f"user-{session}"
            recorder.record(_event(i, event_id=f"e{i}"), session_id=f"session-{session}", user_id=user)
        await recorder.flush()
        assert recorder.stats.sent == 1000
    stored = emulator.events(TRACKER)
    assert len(stored) == 1000
    for event in stored:
        session = int(event["eventId"][1:]) % 50
        assert event["sessionId"] == f"session-{session}"
        assert event.get("userId") == (None if session % 2 else f"user-{session}")
    # 20 events a session -> exactly 2 full calls each: 100 calls
    assert emulator.calls[("PutEvents", 200)] == 100


async def test_every_event_gets_an_id_before_its_first_send(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """Events without an event_id get a UUID; given ids are kept."""
    async with client.event_recorder(tracking_id=TRACKER) as recorder:
        recorder.record(_event(1), session_id="s")
        recorder.record(_event(2, event_id="mine"), session_id="s")
    ids = [e["eventId"] for e in emulator.events(TRACKER)]
    assert "mine" in ids
    (generated,) = [i for i in ids if i != "mine"]
    assert len(generated) == 32
    assert uuid.UUID(generated).version == 4


async def test_generated_ids_are_distinct_version_4_uuids(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """600 events (more than one pool of 256 ids) arrive with 600 distinct ids, each a version 4 RFC 4122 UUID."""
    async with client.event_recorder(tracking_id=TRACKER) as recorder:
        for i in range(600):
            recorder.record(_event(i), session_id=f"s{i % 7}")
    ids = [e["eventId"] for e in emulator.events(TRACKER)]
    assert len(ids) == len(set(ids)) == 600
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.hex, parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


async def _turns(n: int = 20) -> None:
    """Let the loop run ``n`` times (the recorder's task reacts to a clock's callback at the next turn)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_flush_interval_sends_partial_groups(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """A group smaller than ten waits for flush_interval on the recorder's clock, then goes without flush()."""
    clock = ManualClock()
    async with client.event_recorder(tracking_id=TRACKER, flush_interval=5, clock=clock) as recorder:
        recorder.record(_event(1), session_id="s")
        await _turns()
        assert clock.next_due() == 5.0  # the recorder sleeps until the interval ends
        clock.advance(4.9)
        await _turns()
        assert (recorder.stats.sent, emulator.calls[("PutEvents", 200)]) == (0, 0)
        clock.advance(0.1)
        for _ in range(2000):  # the send itself is real I/O to the emulator
            if recorder.stats.sent:
                break
            await asyncio.sleep(0.005)
        assert recorder.stats.sent == 1
        assert clock.next_due() == 10.0  # and the next interval is measured from then
    assert len(emulator.events(TRACKER)) == 1


def test_manual_clock_runs_what_came_due_in_time_order_and_skips_cancelled() -> None:
    """advance() runs due callbacks earliest first, never a cancelled one, and never goes back in time."""
    clock = ManualClock(start=10)
    ran: list[tuple[str, float]] = []
    clock.call_at(12, lambda: ran.append(("b", clock.time())))
    clock.call_at(11, lambda: ran.append(("a", clock.time())))
    clock.call_at(11.5, ran.append, ("x", 0)).cancel()
    clock.call_at(30, lambda: ran.append(("late", clock.time())))
    assert clock.next_due() == 11
    clock.advance(5)
    assert ran == [("a", 11), ("b", 12)]
    assert (clock.time(), clock.next_due()) == (15, 30)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    clock.call_at(0, lambda: ran.append(("past", clock.time())))  # already due: runs at the next advance
    clock.advance(0)
    assert ran[-1] == ("past", 15)


async def test_a_recorder_refuses_a_clock_without_call_at(client: PersonalizeEventsClient) -> None:
    """clock= must look like an event loop's clock; anything else is a ValidationError naming it."""
    with pytest.raises(ValidationError, match="clock"):
        client.event_recorder(tracking_id=TRACKER, clock=object())  # type: ignore[arg-type]


async def test_a_full_group_is_sent_without_waiting_for_the_interval(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """Ten events of one session are sent at once, long before a 60 s flush_interval."""
    async with client.event_recorder(tracking_id=TRACKER, flush_interval=60) as recorder:
        for i in range(10):
            recorder.record(_event(i), session_id="s")
        for _ in range(3000):  # a hang guard (30 s), half the interval: polled, not timed
            if recorder.stats.sent:
                break
            await asyncio.sleep(0.01)
        assert recorder.stats.sent == 10


async def test_a_sender_goes_on_to_the_next_ready_batch_within_max_concurrency() -> None:
    """A call that ends is followed at once by the next ready batch: never more than ``max_concurrency`` calls
    in flight, every slot used while batches wait, and (one at a time) batches leave in the order they filled."""
    from aiohttp import web

    in_flight = peak = 0
    sessions: list[str] = []
    full: dict[int, asyncio.Event] = {1: asyncio.Event(), 3: asyncio.Event()}
    limit = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        sessions.append((await request.json())["sessionId"])
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            if in_flight == limit:
                full[limit].set()
            # the first calls wait until max_concurrency of them are in (an event, not a sleep): the peak reaches
            # the bound however slow the machine; a lower bound never opens it (flush's wait_for is a hang guard)
            await full[limit].wait()
            await asyncio.sleep(0.005)
        finally:
            in_flight -= 1
        return web.json_response({}, headers={"x-amzn-RequestId": "req"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for limit in (1, 3):
            sessions.clear()
            peak = 0
            async with (
                PersonalizeEventsClient(
                    region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", credentials=Credentials("AKIDX", "s")
                ) as client,
                client.event_recorder(tracking_id=TRACKER, max_concurrency=limit, flush_interval=60) as recorder,
            ):
                for s in range(12):
                    for i in range(10):
                        recorder.record(_event(i), session_id=f"s{s:02d}")
                await asyncio.wait_for(recorder.flush(), 60)
                assert recorder.stats.sent == 120
            assert peak == limit
            assert sorted(sessions) == [f"s{s:02d}" for s in range(12)]
            if limit == 1:
                assert sessions == [f"s{s:02d}" for s in range(12)]
    finally:
        await runner.cleanup()


async def test_faults_every_event_stored_exactly_once(emulator: Emulator) -> None:
    """With throttling, 5xx and dropped connections, every event is stored exactly once and counters add up."""
    emulator.faults = Faults(throttle=0.1, server_error=0.1, disconnect=0.05, seed=7)
    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDRECORDER", "recorder-secret"),
        config=ClientConfig(max_attempts=2, retry_budget=1_000_000),
    ) as client:
        failures: list[Any] = []
        recorder = client.event_recorder(
            tracking_id=TRACKER,
            flush_interval=0.05,
            max_queue_size=100_000,
            on_failure=lambda events, error: failures.append((events, error)),
        )
        async with recorder:
            for i in range(3000):
                recorder.record(_event(i), session_id=f"session-{i % 97}")
                if i % 500 == 0:
                    _check_invariant(recorder)
                    await asyncio.sleep(0)
            await recorder.flush()
            _check_invariant(recorder)
        stats = recorder.stats
    assert failures == []
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (3000, 3000, 0, 0, 0)
    assert stats.retried > 0
    ids = Counter(e["eventId"] for e in emulator.events(TRACKER))
    assert len(ids) == 3000
    assert set(ids.values()) == {1}
    faulted = sum(n for (op, status), n in emulator.calls.items() if status != 200)
    assert faulted > 0


async def test_overflow_drop_newest(client: PersonalizeEventsClient) -> None:
    """With drop_newest, events beyond max_queue_size are refused, counted and reported to on_drop."""
    dropped: list[tuple[Event, str]] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER, max_queue_size=5, flush_interval=60, on_drop=lambda e, r: dropped.append((e, r))
    )
    async with recorder:
        results = [recorder.record(_event(i), session_id=f"s{i}") for i in range(8)]
        assert results == [True] * 5 + [False] * 3
        assert [e.item_id for e, _ in dropped] == ["item-5", "item-6", "item-7"]
        assert recorder.stats.dropped == 3
        _check_invariant(recorder)
    assert recorder.stats.sent == 5


async def test_overflow_drop_oldest(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """With drop_oldest, the oldest queued event makes room for the new one."""
    dropped: list[Event] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        max_queue_size=5,
        flush_interval=60,
        overflow="drop_oldest",
        on_drop=lambda e, r: dropped.append(e),
    )
    async with recorder:
        assert all(recorder.record(_event(i), session_id="s") for i in range(8))
        assert [e.item_id for e in dropped] == ["item-0", "item-1", "item-2"]
        _check_invariant(recorder)
    assert sorted(e["itemId"] for e in emulator.events(TRACKER)) == [f"item-{i}" for i in range(3, 8)]


async def test_overflow_block_makes_put_wait_for_room(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """With a full queue, await put() waits until sends free room, and loses nothing."""
    recorder = client.event_recorder(tracking_id=TRACKER, max_queue_size=10, flush_interval=0.01, overflow="block")
    async with recorder:
        for i in range(50):
            await recorder.put(_event(i), session_id=f"s{i % 3}")
            assert recorder.stats.pending <= 10
    assert recorder.stats.sent == 50
    assert recorder.stats.dropped == 0
    assert len(emulator.events(TRACKER)) == 50


async def test_non_retryable_failure_goes_to_on_failure(server: ScriptedServer) -> None:
    """A call the service refuses for good (InvalidInput on the records) hands its events to on_failure at once."""
    server.error("InvalidInputException", 400, "bad events")
    failures: list[tuple[list[Event], PersonalizeEventsError]] = []
    async with (
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=server.url, credentials=Credentials("AKIDX", "s")
        ) as client,
        client.event_recorder(
            tracking_id="a-tracker", on_failure=lambda ev, err: failures.append((ev, err))
        ) as recorder,
    ):
        for i in range(3):
            recorder.record(_event(i), session_id="s")
        await recorder.flush()
    assert len(failures) == 1
    events, error = failures[0]
    assert [e.item_id for e in events] == ["item-0", "item-1", "item-2"]
    assert all(e.event_id for e in events)
    assert isinstance(error, InvalidInputException)
    assert recorder.stats.failed == 3
    assert recorder.stats.retried == 0


async def test_async_on_failure_is_awaited(server: ScriptedServer) -> None:
    """An async on_failure callback is awaited."""
    server.error("InvalidInputException", 400, "bad event")
    seen: list[int] = []

    async def on_failure(events: list[Event], error: PersonalizeEventsError) -> None:
        await asyncio.sleep(0)
        seen.append(len(events))

    async with (
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=server.url, credentials=Credentials("AKIDX", "s")
        ) as client,
        client.event_recorder(tracking_id="nope", on_failure=on_failure) as recorder,
    ):
        recorder.record(_event(1), session_id="s")
    assert seen == [1]


async def test_close_with_deadline_and_stalled_server_hands_the_rest_to_on_failure() -> None:
    """close(timeout) against a server that never answers fails every pending event, within the deadline.

    Decided by what the recorder reports, not by how long close() took: the server holds every answer until
    the test lets it go (after close() returned), so close() returning at all, with every event failed by
    RecorderClosedError and none sent, means the deadline ended it. The wait_for is only a hang guard (33x
    the deadline).
    """
    release = asyncio.Event()
    arrived: list[float] = []
    stalled = asyncio.Event()

    async def stall(latency: float) -> None:  # the emulator's latency: held until released
        arrived.append(latency)
        if len(arrived) == 2:
            stalled.set()
        await release.wait()

    failures: list[tuple[list[Event], PersonalizeEventsError]] = []
    async with (
        Emulator(faults=Faults(latency=2.0), sleep=stall) as emulator,
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDX", "s")
        ) as client,
    ):
        recorder = client.event_recorder(
            tracking_id=TRACKER, max_concurrency=2, on_failure=lambda ev, err: failures.append((ev, err))
        )
        for i in range(95):
            recorder.record(_event(i), session_id=f"s{i % 5}")
        await asyncio.wait_for(stalled.wait(), 10)  # the first calls went out and stall (a hang guard)
        await asyncio.wait_for(recorder.close(timeout=0.3), 10)
        await recorder.close(timeout=0.3)  # idempotent
        release.set()
    stats = recorder.stats
    assert (stats.recorded, stats.failed, stats.pending, stats.sent) == (95, 95, 0, 0)
    assert sum(len(ev) for ev, _ in failures) == 95
    assert all(isinstance(err, RecorderClosedError) for _, err in failures)


async def test_record_after_close_is_dropped(client: PersonalizeEventsClient) -> None:
    """After close(), record() drops the event (counted, reported) and put() raises RecorderClosedError."""
    reasons: list[str] = []
    recorder = client.event_recorder(tracking_id=TRACKER, on_drop=lambda e, r: reasons.append(r))
    async with recorder:
        pass
    assert recorder.record(_event(1), session_id="s") is False
    assert reasons == ["closed"]
    _check_invariant(recorder)
    with pytest.raises(RecorderClosedError):
        await recorder.put(_event(2), session_id="s")


async def test_invalid_input_raises_before_recording(client: PersonalizeEventsClient) -> None:
    """A non-Event, a bad session id or user id raises ValidationError and is not counted."""
    async with client.event_recorder(tracking_id=TRACKER) as recorder:
        with pytest.raises(ValidationError) as info:
            recorder.record({"eventType": "x"}, session_id="s")  # type: ignore[arg-type]
        assert info.value.path == "event"
        with pytest.raises(ValidationError) as info:
            recorder.record(_event(1), session_id="")
        assert info.value.path == "session_id"
        with pytest.raises(ValidationError) as info:
            recorder.record(_event(1), session_id="s", user_id="u" * 257)
        assert info.value.path == "user_id"
        assert recorder.stats.recorded == 0


@pytest.mark.parametrize("member", ["session_id", "user_id"])
async def test_a_lone_surrogate_is_refused_by_record_not_hung_in_flush(
    client: PersonalizeEventsClient, emulator: Emulator, member: str
) -> None:
    """record() refuses an id the request could not carry (a lone surrogate); flush() returns; nothing is lost."""
    async with client.event_recorder(tracking_id=TRACKER) as recorder:
        ids = {"session_id": "good", "user_id": None, member: "bad\ud800"}
        with pytest.raises(ValidationError) as info:
            recorder.record(_event(1), **ids)  # type: ignore[arg-type]
        assert info.value.path == member
        assert recorder.record(_event(2), session_id="good") is True
        await asyncio.wait_for(recorder.flush(), 10)
        assert recorder.stats.sent == 1
        _check_invariant(recorder)
    assert len(emulator.events(TRACKER)) == 1


async def test_loop_survives_an_internal_error(
    client: PersonalizeEventsClient,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception inside the background loop is logged and the loop goes on delivering."""
    recorder = client.event_recorder(tracking_id=TRACKER, flush_interval=0.01)
    original = recorder._feeder.take  # the background loop's step: the spool's batches to the engine
    calls = 0

    def flaky(*, flush: bool) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        original(flush=flush)

    monkeypatch.setattr(recorder._feeder, "take", flaky)
    with caplog.at_level(logging.ERROR, logger="aiopersonalize_events.recorder"):
        async with recorder:
            recorder.record(_event(1), session_id="s")
            for _ in range(3000):  # a hang guard (30 s): polled, not timed
                if recorder.stats.sent:
                    break
                await asyncio.sleep(0.01)
    assert recorder.stats.sent == 1
    assert any("loop error" in r.message for r in caplog.records)


async def test_a_dead_background_task_fails_pending_events_loudly(
    client: PersonalizeEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    """If the background task ever dies, pending events go to on_failure instead of being lost."""
    failed: list[int] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER, flush_interval=60, on_failure=lambda ev, err: failed.append(len(ev))
    )
    async with recorder:
        for i in range(5):
            recorder.record(_event(i), session_id="s")
        runner = recorder._runner
        assert runner is not None
        with caplog.at_level(logging.ERROR, logger="aiopersonalize_events.recorder"):
            recorder._runner_done_for_test = True  # type: ignore[attr-defined]
            # simulate the impossible: the task ends with an exception
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            fake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fake.set_exception(RuntimeError("crash"))
            recorder._runner_done(fake)  # type: ignore[arg-type]
            for _ in range(3000):  # a hang guard (30 s): polled, not timed
                if failed:
                    break
                await asyncio.sleep(0.01)
    assert failed == [5]
    assert recorder.stats.failed == 5
    _check_invariant(recorder)
    assert any("task died" in r.message for r in caplog.records)


async def test_hot_loop_memory_is_bounded_by_max_queue_size(client: PersonalizeEventsClient) -> None:
    """100k record() calls without yielding hold at most max_queue_size events; the rest are dropped."""
    event = _event(1)
    async with client.event_recorder(tracking_id=TRACKER, max_queue_size=1000, flush_interval=60) as recorder:
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            for i in range(100_000):
                recorder.record(event, session_id=f"s{i % 10}")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        stats = recorder.stats
        assert stats.pending == 1000
        assert stats.dropped == 99_000
        # session strings and list slots for 1000 events, nowhere near 100k events' worth
        assert peak - base < 1000 * 1024
    assert recorder.stats.sent == 1000


async def test_closed_recorder_is_collectable(client: PersonalizeEventsClient) -> None:
    """Nothing keeps a closed recorder alive."""
    recorder = client.event_recorder(tracking_id=TRACKER)
    async with recorder:
        recorder.record(_event(1), session_id="s")
    ref = weakref.ref(recorder)
    del recorder
    gc.collect()
    assert ref() is None


async def test_close_is_idempotent_and_concurrent_safe(client: PersonalizeEventsClient) -> None:
    """close() may be called many times, even concurrently, and never raises."""
    recorder = client.event_recorder(tracking_id=TRACKER)
    async with recorder:
        recorder.record(_event(1), session_id="s")
        await asyncio.gather(recorder.close(), recorder.close(), recorder.close())
    await recorder.close()
    assert recorder.stats.sent == 1
    assert recorder.closed


async def test_mass_failure_logs_a_few_lines_not_one_per_batch(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """3,000 undeliverable events log the first failure and one line per 1,000, not 300 warnings.

    An unknown tracking id is the set-up's fault: the events are held until the close deadline (short here, so
    the test does not wait out the default 30 s), then reported unsent to ``on_failure``.
    """
    emulator.register(tracking_ids=["known"])
    failed: list[int] = []
    with caplog.at_level(logging.WARNING, logger="aiopersonalize_events.recorder"):
        async with (
            PersonalizeEventsClient(
                region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDX", "s")
            ) as client,
            client.event_recorder(
                tracking_id="unknown",
                max_queue_size=5000,
                close_timeout=0.5,
                on_failure=lambda ev, err: failed.append(len(ev)),
            ) as recorder,
        ):
            for i in range(3000):
                recorder.record(_event(i), session_id=f"s{i % 30}")
    assert sum(failed) == 3000
    warnings = [r for r in caplog.records if "could not deliver" in r.getMessage()]
    assert 1 <= len(warnings) <= 4
    assert warnings[-1].getMessage().endswith("3000 failed so far")


# -- the recorder over the Spool protocol ------------------------------------------------------------------


class _DurableMemory(MemorySpool):
    """A spool that says it is durable (kept in memory, for the test): what the recorder does for one."""

    durable = True

    def __init__(self) -> None:
        super().__init__()
        self.appended: list[Event] = []
        self.released: list[str | None] = []
        self.acked: list[str | None] = []
        self.failed: list[tuple[str | None, str]] = []

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        self.appended.append(event)
        super().append(event, session_id, user_id)

    def ack(self, batch: SpoolBatch) -> None:
        self.acked.extend(e.event_id for e in batch.events)
        super().ack(batch)

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        self.failed.extend((e.event_id, reason) for e in batch.events)
        super().fail(batch, reason)

    def release(self, batch: SpoolBatch) -> None:
        self.released.extend(e.event_id for e in batch.events)
        super().release(batch)


async def test_a_durable_spool_gets_each_event_with_its_id_and_keeps_what_is_unsent_at_close(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """With a durable spool the eventId is given at record() (before the spool sees the event); the spool
    is acked what was sent, and what is unsent at the close deadline is released to it, not failed."""
    spool = _DurableMemory()
    recorder = client.event_recorder(tracking_id=TRACKER, spool=spool, flush_interval=0.01)
    async with recorder:
        recorder.record(_event(1), session_id="s")
        recorder.record(_event(2, event_id="mine"), session_id="s")
        assert [e.event_id is not None for e in spool.appended] == [True, True]
        assert spool.appended[1].event_id == "mine"
        await recorder.flush()
    assert sorted(map(str, spool.acked)) == sorted(str(e.event_id) for e in spool.appended)
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == sorted(map(str, spool.acked))

    emulator.faults = Faults(server_error=1.0)
    failures: list[Any] = []
    spool = _DurableMemory()
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=spool,
        flush_interval=0.01,
        close_timeout=0.1,
        on_failure=lambda events, error: failures.append(events),
    )
    async with recorder:
        for i in range(12):
            recorder.record(_event(i), session_id="s")
    assert failures == []
    assert sorted(map(str, spool.released)) == sorted(str(e.event_id) for e in spool.appended)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.pending) == (12, 0, 0, 12)
    _check_invariant(recorder)


async def test_a_spool_that_is_not_one_is_refused(client: PersonalizeEventsClient) -> None:
    """spool= takes a Spool, a path or None; anything else is a ValidationError naming `spool`."""
    with pytest.raises(ValidationError) as info:
        client.event_recorder(tracking_id=TRACKER, spool=42)  # type: ignore[arg-type]
    assert info.value.path == "spool"


async def test_the_memory_spool_is_the_default_and_bounded_by_max_queue_size(client: PersonalizeEventsClient) -> None:
    """Without spool= the recorder keeps events in a MemorySpool holding max_queue_size events at most."""
    recorder = client.event_recorder(tracking_id=TRACKER, max_queue_size=3, flush_interval=60)
    assert isinstance(recorder.spool, MemorySpool)
    assert not recorder.spool.durable
    async with recorder:
        assert [recorder.record(_event(i), session_id=f"s{i}") for i in range(4)] == [True, True, True, False]
        assert len(recorder.spool) == 3
    assert len(recorder.spool) == 0
