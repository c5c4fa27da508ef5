"""The *_batched helpers against the emulator: chunking, concurrency, pacing, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    BatchError,
    ClientConfig,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    User,
    ValidationError,
)
from aiopersonalize_events._batching import RateLimiter
from aiopersonalize_events.emulator import Emulator, Faults

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDBATCHTEST", "batch-secret"),
        config=ClientConfig(max_attempts=5),
    ) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """Retries here happen at once (the package's testing switch), the worst case for load."""


async def test_1003_items_from_async_generator_arrive_in_101_calls(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """1,003 items from an async generator are stored, in exactly 101 PutItems calls."""

    async def items() -> AsyncIterator[Item]:
        for i in range(1003):
            yield Item(item_id=f"item-{i}", properties={"n": i})

    result = await client.put_items_batched(dataset_arn=ARN, items=items(), requests_per_second=None)
    assert (result.sent, result.calls, result.failures) == (1003, 101, ())
    assert emulator.calls[("PutItems", 200)] == 101
    stored = emulator.items(ARN)
    assert sorted(r["itemId"] for r in stored) == sorted(f"item-{i}" for i in range(1003))


@pytest.mark.parametrize(
    ("method", "fixed", "field", "make", "kind"),
    [
        (
            "put_events_batched",
            {"tracking_id": "tracker", "session_id": "s1"},
            "event_list",
            lambda i: Event(event_type="click", sent_at=1_700_000_000 + i, event_id=f"e{i}"),
            "events",
        ),
        ("put_items_batched", {"dataset_arn": ARN}, "items", lambda i: Item(item_id=f"i{i}"), "items"),
        ("put_users_batched", {"dataset_arn": ARN}, "users", lambda i: User(user_id=f"u{i}"), "users"),
        ("put_actions_batched", {"dataset_arn": ARN}, "actions", lambda i: Action(action_id=f"a{i}"), "actions"),
        (
            "put_action_interactions_batched",
            {"tracking_id": "tracker"},
            "action_interactions",
            lambda i: ActionInteraction(
                action_id=f"a{i}", session_id="s1", timestamp=1_700_000_000, event_type="Taken", event_id=f"x{i}"
            ),
            "action-interactions",
        ),
    ],
)
async def test_every_operation_has_a_batched_helper(
    client: PersonalizeEventsClient,
    emulator: Emulator,
    method: str,
    fixed: dict[str, Any],
    field: str,
    make: Any,
    kind: str,
) -> None:
    """Each *_batched helper sends 25 records from a plain generator as 3 calls, all stored."""

    def records() -> Iterator[Any]:
        return (make(i) for i in range(25))

    result = await getattr(client, method)(**fixed, **{field: records()}, requests_per_second=None)
    assert (result.sent, result.calls, result.ok) == (25, 3, True)
    assert len(emulator.records(kind)) == 25


async def test_invalid_list_is_refused_whole_before_any_io(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """A list with one wrong record raises ValidationError naming its index, and nothing is sent."""
    records: list[Any] = [Item(item_id=f"i{i}") for i in range(30)]
    records[17] = {"itemId": "not a shape"}
    with pytest.raises(ValidationError) as info:
        await client.put_items_batched(dataset_arn=ARN, items=records)
    assert info.value.path == "items[17]"
    assert sum(emulator.calls.values()) == 0


async def test_bad_dataset_arn_fails_before_any_io_for_a_stream(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """A malformed dataset ARN raises ValidationError before the first call, even for a stream."""
    with pytest.raises(ValidationError) as info:
        await client.put_items_batched(dataset_arn="not-an-arn", items=(Item(item_id=f"i{i}") for i in range(5)))
    assert info.value.path == "dataset_arn"
    assert sum(emulator.calls.values()) == 0


async def test_invalid_record_in_a_stream_is_a_failure_at_its_position(
    client: PersonalizeEventsClient, emulator: Emulator
) -> None:
    """In a stream, a record of the wrong type is reported with its position and the rest are sent."""

    async def records() -> AsyncIterator[Any]:
        for i in range(12):
            yield "oops" if i == 4 else User(user_id=f"u{i}")

    result = await client.put_users_batched(dataset_arn=ARN, users=records(), requests_per_second=None)
    assert result.sent == 11
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert (failure.position, failure.records) == (4, ("oops",))
    assert isinstance(failure.error, ValidationError)
    assert failure.error.path == "users[4]"
    assert len(emulator.users(ARN)) == 11
    with pytest.raises(BatchError) as info:
        result.raise_for_failures()
    assert info.value.result is result


async def test_failed_calls_return_their_records(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """Calls that fail after the client's retries come back as failures carrying their records and error."""
    emulator.faults = Faults(server_error=1.0, seed=1)
    items = [Item(item_id=f"i{i}") for i in range(15)]
    result = await client.put_items_batched(dataset_arn=ARN, items=items, requests_per_second=None)
    assert result.sent == 0
    assert result.failed == 15
    assert [f.position for f in result.failures] == [0, 10]
    assert [len(f.records) for f in result.failures] == [10, 5]
    assert all(f.error.retryable for f in result.failures)
    assert emulator.items(ARN) == []


async def test_concurrency_is_bounded(emulator: Emulator) -> None:
    """No more than max_concurrency calls are in flight at once.

    The first three calls wait for each other (an event, not a sleep), so the peak reaches the bound however
    slow the machine; a bound below three would never open the gate (the wait_for is a hang guard).
    """
    in_flight = 0
    peak = 0
    gate = asyncio.Event()

    async def invoke(op: Any, request: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            gate.set()
        await gate.wait()
        await asyncio.sleep(0.001)
        in_flight -= 1

    from aiopersonalize_events import _operations as ops
    from aiopersonalize_events._batching import run_batched

    items = [Item(item_id=f"i{i}") for i in range(200)]
    result = await asyncio.wait_for(
        run_batched(invoke, ops.PUT_ITEMS, {"dataset_arn": ARN}, items, max_concurrency=3, requests_per_second=None),
        60,
    )
    assert result.calls == 20
    assert peak == 3


async def test_a_stream_is_not_materialised(emulator: Emulator) -> None:
    """The helper pulls records lazily: it never reads far ahead of the calls it can make."""
    pulled = 0
    sent_when_pulled: list[int] = []
    sent = 0

    async def invoke(op: Any, request: Any) -> None:
        nonlocal sent
        await asyncio.sleep(0)
        sent += len(request.items)

    def records() -> Iterator[Item]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            sent_when_pulled.append(sent)
            yield Item(item_id=f"i{i}")

    from aiopersonalize_events import _operations as ops
    from aiopersonalize_events._batching import run_batched

    await run_batched(
        invoke, ops.PUT_ITEMS, {"dataset_arn": ARN}, records(), max_concurrency=2, requests_per_second=None
    )
    # when record n is pulled, at least n - (2 calls in flight + 1 chunk being filled) * 10 were sent
    assert all(n - s <= 30 for n, s in enumerate(sent_when_pulled))


async def test_put_items_is_paced_at_the_service_quota_by_default() -> None:
    """PutItems is paced at 10 requests/s by default; the rate limiter waits the exact gaps."""
    now = 0.0
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        sleeps.append(seconds)
        now += seconds

    limiter = RateLimiter(10.0, clock=lambda: now, sleep=sleep)
    for _ in range(12):
        await limiter.acquire()
    assert sleeps == pytest.approx([0.1, 0.1])  # a burst of 10, then one every 100 ms

    from aiopersonalize_events import _operations as ops

    assert ops.PUT_ITEMS.rate == 10.0
    assert ops.PUT_USERS.rate == 10.0
    assert ops.PUT_EVENTS.rate is None


async def test_requests_per_second_is_respected(
    client: PersonalizeEventsClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requests_per_second limit spreads the calls out (its limiter's waits are counted, not timed)."""
    import aiopersonalize_events._batching as batching

    made: list[float] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    def limiter(rate: float) -> RateLimiter:  # the helper's own limiter, with its waits recorded
        made.append(rate)
        return RateLimiter(rate, sleep=sleep)

    monkeypatch.setattr(batching, "RateLimiter", limiter)
    result = await client.put_actions_batched(
        dataset_arn=ARN, actions=[Action(action_id=f"a{i}") for i in range(60)], requests_per_second=50
    )
    assert result.calls == 6
    assert made == [50]
    # a burst of 50 tokens covers the 6 calls: no waiting at all beyond the calls themselves
    assert waits == []


async def test_cancelling_a_batched_call_cancels_calls_in_flight(emulator: Emulator) -> None:
    """Cancelling a *_batched call cancels its calls in flight and leaves no task behind."""
    emulator.faults = Faults(latency=5.0)
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDX", "s")
    ) as client:
        before = asyncio.all_tasks()
        task = asyncio.create_task(
            client.put_actions_batched(
                dataset_arn=ARN, actions=[Action(action_id=f"a{i}") for i in range(100)], max_concurrency=4
            )
        )
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        leftover = [t for t in asyncio.all_tasks() - before if _is_client_task(t)]
        assert leftover == []


def _is_client_task(task: asyncio.Task[Any]) -> bool:
    """True for tasks running this library's client-side code (not the emulator's handlers)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code is not None else ""
    return "aiopersonalize_events" in filename and "emulator" not in filename


async def test_empty_input_makes_no_call(client: PersonalizeEventsClient, emulator: Emulator) -> None:
    """An empty input returns an empty result without any call."""
    result = await client.put_events_batched(tracking_id="t", session_id="s", event_list=[])
    assert (result.sent, result.calls, result.failures) == (0, 0, ())
    assert sum(emulator.calls.values()) == 0


_LAST_CALL_ENDS_WITH_THE_STREAM = r"""
import asyncio

from aiopersonalize_events import Item
from aiopersonalize_events import _operations as ops
from aiopersonalize_events._batching import run_batched

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


async def main() -> None:
    answer = asyncio.Event()
    sent = []

    async def invoke(op, request):  # the service answers when `answer` is set
        await answer.wait()
        sent.append(len(request.items))

    async def items():
        for i in range(10):
            yield Item(item_id=f"sku-{i}")
        for _ in range(3):  # the call starts and waits for its answer first
            await asyncio.sleep(0)
        await answer.wait()  # then the stream ends in the same loop iteration as the call

    async def respond() -> None:
        for _ in range(10):
            await asyncio.sleep(0)
        answer.set()

    responder = asyncio.create_task(respond())
    result = await run_batched(invoke, ops.PUT_ITEMS, {"dataset_arn": ARN}, items(), requests_per_second=None)
    await responder
    print(result.sent, result.calls, sent)


asyncio.run(main())
"""


def test_a_stream_that_ends_as_its_last_call_ends_returns() -> None:
    """The last call and the stream ending in one loop iteration: the helper returns (it once spun forever).

    Waiting "while tasks remain" let ``gather`` of already-finished tasks return
    without yielding (Python 3.12+), so the callback that removes them never ran
    and the loop never got back control. Run in a child process: a spin cannot be
    interrupted from inside its loop.
    """
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _LAST_CALL_ENDS_WITH_THE_STREAM], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10", "1", "[10]"]
