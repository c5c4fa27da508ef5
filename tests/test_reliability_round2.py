"""Regression tests for the hangs and silent losses of the second adversarial review (library side).

Numbers refer to the review's list: 1 and 8 a recorder left open when its
loop ends, 2 close() bounded with slow callbacks, 3 a lone surrogate (see
test_recorder.py), 5 ``*_batched`` and unexpected exceptions, 6 ``record()``
from other threads, 7 async ``on_drop``, 15 a client used from another loop,
after close, or with a header-breaking config, 16 a pool wait reported as a
service timeout. And the one retry engine: the recorder's re-sends spend the
client's budget and honour ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
from _scripted_server import ScriptedServer, make_client

from aiopersonalize_events import (
    BatchIncompleteError,
    ClientConfig,
    ClientStateError,
    Credentials,
    Event,
    Item,
    ManualClock,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    PoolTimeoutError,
    RecorderClosedError,
    RecorderStateError,
    ResourceNotFoundException,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-r2"
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"
HANG_GUARD = 20.0


def _client(emulator: Emulator, **config: Any) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDR2", "r2-secret"),
        config=ClientConfig(**config),
    )


def _event(n: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + n, event_id=f"e{n}")


# -- 1 and 8: the loop ends with the recorder open ----------------------------------------------------------------

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


# -- 2: close() is bounded, callbacks included ---------------------------------------------------------------------


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


# -- 5: *_batched never loses records -------------------------------------------------------------------------------


class _FlakyProvider:
    """A custom credential provider that raises a plain exception on every third call (a bug in user code)."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(self) -> Credentials:
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("provider bug")
        return Credentials("AKIDR2", "r2-secret")


async def test_batched_accounts_for_every_record_whatever_the_exception(emulator: Emulator) -> None:
    """100 items, a provider that raises RuntimeError now and then: sent + failed == 100, failures say why."""
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=_FlakyProvider()
    ) as client:
        items = [Item(item_id=f"i{n}") for n in range(100)]
        result = await client.put_items_batched(dataset_arn=ARN, items=items, requests_per_second=None)
    assert result.sent + result.failed == 100
    assert result.failed > 0
    assert result.sent == len(emulator.items(ARN))
    assert all("RuntimeError" in str(f.error) for f in result.failures)
    assert all(isinstance(f.error.__cause__, RuntimeError) for f in result.failures)


async def test_a_failing_stream_says_what_was_already_sent(emulator: Emulator) -> None:
    """An async iterable that raises after 25 items: BatchIncompleteError carries sent=20 and the 5 read but unsent."""

    async def stream() -> AsyncIterator[Item]:
        for n in range(25):
            yield Item(item_id=f"i{n}")
        raise OSError("the feed broke")

    async with _client(emulator) as client:
        with pytest.raises(BatchIncompleteError) as info:
            await client.put_items_batched(dataset_arn=ARN, items=stream(), requests_per_second=None)
    result = info.value.result
    assert (result.sent, result.failed) == (20, 5)
    assert len(emulator.items(ARN)) == 20
    assert isinstance(info.value.__cause__, OSError)


async def test_a_client_closed_mid_batch_fails_the_rest_with_a_library_error(emulator: Emulator) -> None:
    """Closing the client during a batch: the calls not yet made fail with ClientStateError; nothing vanishes."""
    emulator.faults = Faults(latency=0.05)
    async with _client(emulator) as client:

        async def stream() -> AsyncIterator[Item]:
            for n in range(60):
                if n == 30:
                    await client.close()
                yield Item(item_id=f"i{n}")

        result = await client.put_items_batched(
            dataset_arn=ARN, items=stream(), requests_per_second=None, max_concurrency=2
        )
    assert result.sent + result.failed == 60
    assert result.failed >= 30
    assert any(isinstance(f.error, ClientStateError) for f in result.failures)


# -- 6: record() from other threads ---------------------------------------------------------------------------------


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


# -- 7: async on_drop ---------------------------------------------------------------------------------------------


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


# -- 15: the client's own misuse is a library error -------------------------------------------------------------


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


# -- 16: a pool wait is not a service timeout ---------------------------------------------------------------------


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


# -- the one retry engine: the recorder spends the client's budget and honours Retry-After -----------------------


async def test_recorder_resends_spend_the_clients_budget_then_probe(
    server: ScriptedServer, retry_testing: None
) -> None:
    """Three 503s, max_attempts=1, a 12-token budget: two paid re-sends (5 each), then a free probe gets through."""
    server.error("ServiceUnavailableException", 503, times=3)
    client = make_client(server, config=ClientConfig(max_attempts=1, retry_budget=12))
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


async def test_a_not_found_tracker_holds_the_events_without_spending_the_budget(emulator: Emulator) -> None:
    """An unknown tracker is a set-up error: held (pending, not failed) while open, budget kept, unsent at close."""
    emulator.register(tracking_ids=["known"])
    failures: list[PersonalizeEventsError] = []
    async with _client(emulator) as client:
        recorder = client.event_recorder(tracking_id="unknown", on_failure=lambda ev, err: failures.append(err))
        async with recorder:
            recorder.record(_event(1), session_id="s")
            for _ in range(1000):
                if emulator.calls[("PutEvents", 404)]:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            assert (recorder.stats.failed, recorder.stats.pending) == (0, 1)
            assert failures == []
            await recorder.close(timeout=0)
        tokens = client.retry_policy.budget.tokens
    assert [type(f) for f in failures] == [RecorderClosedError]  # a memory spool cannot keep them past close
    assert isinstance(failures[0].__cause__, ResourceNotFoundException)
    assert tokens == client.config.retry_budget


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


async def test_recorder_under_emulator_faults_spends_and_refills_the_clients_budget(
    emulator: Emulator, retry_testing: None
) -> None:
    """An outage of 5xx drains the client's budget through the recorder's re-sends; after it, all 100 arrive once."""
    emulator.faults = Faults(server_error=1.0, seed=8)
    async with _client(emulator, max_attempts=1, retry_budget=50) as client:
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
