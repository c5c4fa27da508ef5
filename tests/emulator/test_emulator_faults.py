"""Injected faults and rate quotas: rates, repeatability, dropped connections, latency, token buckets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import attrs
import pytest
from _emulator_support import ITEMS_ARN, USERS_ARN, sign, valid

from aiopersonalize_events import (
    ClientConfig,
    ConnectionClosedError,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    ServiceError,
    ThrottlingException,
    User,
)
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.emulator._faults import Fault, FaultInjector, Quotas, TokenBucket, quota_key

_ONE_TRY = ClientConfig(max_attempts=1)


def _client(emu: Emulator) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emu.endpoint_url, credentials=Credentials("AKIDTEST", "x"), config=_ONE_TRY
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for raw requests."""
    async with aiohttp.ClientSession() as raw:
        yield raw


async def _statuses(emu: Emulator, session: aiohttp.ClientSession, n: int) -> list[int]:
    """Statuses of ``n`` sequential raw PutItems calls (0 for a dropped connection)."""
    url = emu.endpoint_url + "/items"
    body = json.dumps(valid("PutItems")).encode()
    out = []
    for _ in range(n):
        try:
            async with session.post(url, data=body, headers=sign(url, body)) as response:
                await response.read()
                out.append(response.status)
        except aiohttp.ServerDisconnectedError:
            out.append(0)
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"throttle": -0.1},
        {"server_error": 1.5},
        {"disconnect": True},
        {"throttle": 0.6, "server_error": 0.5},
        {"latency": -1.0},
        {"latency": float("inf")},
        {"seed": 1.5},
    ],
)
def test_faults_refuses_bad_values(kwargs: dict[str, object]) -> None:
    """Faults takes probabilities in [0, 1] summing to at most 1, a finite latency and an integer seed."""
    with pytest.raises(ValueError, match="Faults"):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_faults_is_frozen() -> None:
    """Faults is immutable; change faults by assigning a new one to the emulator."""
    faults = Faults(throttle=0.5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        faults.throttle = 0.1  # type: ignore[misc]


def test_injector_rates_over_many_draws() -> None:
    """Over 20000 draws each fault comes at its rate (within 1.5 points), server errors split 500/503."""
    injector = FaultInjector(Faults(throttle=0.1, server_error=0.2, disconnect=0.05, seed=42))
    counts = Counter(injector.draw() for _ in range(20000))
    assert abs(counts[Fault.THROTTLE] / 20000 - 0.1) < 0.015
    assert abs(counts[Fault.DISCONNECT] / 20000 - 0.05) < 0.015
    assert abs(counts[Fault.INTERNAL_FAILURE] / 20000 - 0.1) < 0.015
    assert abs(counts[Fault.SERVICE_UNAVAILABLE] / 20000 - 0.1) < 0.015


def test_injector_without_rates_never_faults() -> None:
    """Default Faults never fault a call."""
    injector = FaultInjector(Faults())
    assert {injector.draw() for _ in range(1000)} == {None}


async def test_throttle_rate_over_2000_calls() -> None:
    """Throttle 0.1 with a fixed seed throttles between 7% and 13% of 2000 calls; the rest are stored."""
    async with Emulator(faults=Faults(throttle=0.1, seed=2024)) as emu, _client(emu) as client:
        semaphore = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with semaphore:
                with contextlib.suppress(ThrottlingException):
                    await client.put_events(
                        tracking_id="t", session_id="s", event_list=[Event(event_type="e", sent_at=1, event_id=str(i))]
                    )

        await asyncio.gather(*(one(i) for i in range(2000)))
    throttled = emu.calls[("PutEvents", 400)]
    assert 140 <= throttled <= 260
    assert emu.calls[("PutEvents", 200)] == 2000 - throttled
    assert len(emu.events()) == 2000 - throttled


async def test_same_seed_gives_same_sequence(session: aiohttp.ClientSession) -> None:
    """Two emulators with the same seed fault the same calls; another seed differs."""
    faults = Faults(throttle=0.2, server_error=0.2, disconnect=0.1, seed=7)
    runs = []
    for seed in (7, 7, 8):
        async with Emulator(faults=attrs.evolve(faults, seed=seed)) as emu:
            runs.append(await _statuses(emu, session, 60))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {0, 200, 400} <= set(runs[0])


async def test_disconnect_really_drops_the_connection(session: aiohttp.ClientSession) -> None:
    """A disconnect fault closes the connection with no answer: aiohttp sees ServerDisconnectedError."""
    async with Emulator(faults=Faults(disconnect=1.0)) as emu:
        url = emu.endpoint_url + "/items"
        body = json.dumps(valid("PutItems")).encode()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.post(url, data=body, headers=sign(url, body)) as response:
                await response.read()
        assert emu.calls == {("PutItems", 0): 1}
        assert emu.items() == []


async def test_client_sees_a_drop_as_connection_closed() -> None:
    """Our client (one attempt) raises ConnectionClosedError for a dropped connection; nothing is stored."""
    async with Emulator(faults=Faults(disconnect=1.0)) as emu, _client(emu) as client:
        with pytest.raises(ConnectionClosedError):
            await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])
    assert emu.users() == []
    assert emu.calls == {("PutUsers", 0): 1}


async def test_faulted_calls_store_nothing() -> None:
    """Throttled and failed calls store no record."""
    async with Emulator(faults=Faults(throttle=0.5, server_error=0.5, seed=1)) as emu, _client(emu) as client:
        for i in range(10):
            with pytest.raises(ServiceError):
                await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id=str(i))])
    assert emu.items() == []


async def test_latency_delays_every_answer_through_the_injected_sleep() -> None:
    """latency is awaited once per answer (errors too) through the emulator's sleep; nothing waits for real."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    async with Emulator(faults=Faults(latency=2.5), sleep=fake_sleep) as emu, _client(emu) as client:
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
        emu.faults = Faults(latency=0.75, throttle=1.0)
        with pytest.raises(ThrottlingException):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
        emu.faults = None
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
    assert slept == [2.5, 0.75]


async def test_latency_really_delays_the_answer() -> None:
    """With the real sleep, a 0.2 s latency makes the call take at least that long (a generous lower bound)."""
    loop = asyncio.get_running_loop()
    async with Emulator(faults=Faults(latency=0.2)) as emu, _client(emu) as client:
        started = loop.time()
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="i")])
        assert loop.time() - started >= 0.19


async def test_quotas_throttle_over_the_rate_and_refill_with_the_clock() -> None:
    """quotas=True: PutItems takes 10 calls per dataset group per second, then ThrottlingException until refilled."""
    now = [1000.0]
    async with Emulator(quotas=True, clock=lambda: now[0]) as emu, _client(emu) as client:
        for i in range(10):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id=str(i))])
        with pytest.raises(ThrottlingException):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="over")])
        other_group = ITEMS_ARN.replace("/shop/", "/other/")
        await client.put_items(dataset_arn=other_group, items=[Item(item_id="x")])
        await client.put_users(dataset_arn=USERS_ARN, users=[User(user_id="u")])  # its own bucket
        now[0] += 0.1  # one token back
        await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="refilled")])
        with pytest.raises(ThrottlingException):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id="over-again")])
    assert len(emu.items(ITEMS_ARN)) == 11
    assert emu.calls[("PutItems", 400)] == 2


async def test_custom_quotas_limit_only_the_named_operations() -> None:
    """A quotas mapping limits the operations it names; others are unlimited."""
    now = [0.0]
    async with Emulator(quotas={"PutEvents": 2}, clock=lambda: now[0]) as emu, _client(emu) as client:
        event = [Event(event_type="e", sent_at=1)]
        await client.put_events(tracking_id="t", session_id="s", event_list=event)
        await client.put_events(tracking_id="t", session_id="s", event_list=event)
        with pytest.raises(ThrottlingException):
            await client.put_events(tracking_id="t", session_id="s", event_list=event)
        await client.put_events(tracking_id="another-tracker", session_id="s", event_list=event)
        for i in range(20):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id=str(i))])
    assert emu.calls == {("PutEvents", 200): 3, ("PutEvents", 400): 1, ("PutItems", 200): 20}


async def test_quotas_are_off_by_default() -> None:
    """Without quotas=, 30 PutItems calls in the same instant are all accepted."""
    async with Emulator(clock=lambda: 0.0) as emu, _client(emu) as client:
        for i in range(30):
            await client.put_items(dataset_arn=ITEMS_ARN, items=[Item(item_id=str(i))])
    assert emu.quotas is None
    assert len(emu.items()) == 30


def test_token_bucket_refills_at_its_rate_up_to_capacity() -> None:
    """A token bucket starts full, takes one per call and refills rate per second, capped at capacity."""
    bucket = TokenBucket(rate=2.0, capacity=2.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]


def test_quota_key_is_the_dataset_group() -> None:
    """Quotas count per dataset group: datasets of one group share a key, a tracker is its own key."""
    assert quota_key(ITEMS_ARN) == quota_key(USERS_ARN) == "us-east-1:123456789012:shop"
    assert quota_key("tracker-1") == "tracker-1"


def test_quotas_refuse_a_non_positive_rate() -> None:
    """A quota must be a positive number of requests per second."""
    with pytest.raises(ValueError, match="PutItems"):
        Quotas({"PutItems": 0})
