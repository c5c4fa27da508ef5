"""Which failures are retried, how long the client waits, and how the retry budget stops retry storms."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from _scripted_server import Reply, ScriptedServer, Sleeps, make_client

from aiopersonalize_events import (
    ClientConfig,
    Item,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    ResponseMetadata,
    ServiceError,
    TransportError,
)
from aiopersonalize_events._retry import RETRY_COST, TIMEOUT_RETRY_COST

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


async def put_one(client: PersonalizeEventsClient) -> ResponseMetadata:
    return await client.put_items(dataset_arn=ARN, items=[Item(item_id="i")])


def sleeps_of(client: PersonalizeEventsClient) -> list[float]:
    sleep = client.retry_policy.sleep
    assert isinstance(sleep, Sleeps)
    return sleep.delays


def randoms(*values: float) -> Any:
    """An injectable random() returning ``values`` in turn."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


RETRYABLE = [
    ("ThrottlingException", 400),
    ("ThrottlingException", 429),
    (None, 429),
    ("TooManyRequestsException", 429),
    ("ProvisionedThroughputExceededException", 400),
    ("InternalFailure", 500),
    (None, 500),
    (None, 502),
    ("ServiceUnavailableException", 503),
    (None, 504),
]
NOT_RETRYABLE = [
    ("InvalidInputException", 400),
    ("AccessDeniedException", 403),
    ("UnrecognizedClientException", 403),
    ("InvalidSignatureException", 403),
    ("ResourceNotFoundException", 404),
    ("ResourceInUseException", 409),
    ("SomethingNewException", 400),
]


@pytest.mark.parametrize(("code", "status"), RETRYABLE)
async def test_retryable_errors_use_every_attempt(server: ScriptedServer, code: str | None, status: int) -> None:
    """Throttling, 429 and 5xx answers are tried max_attempts times in all, as the server sees."""
    server.error(code, status, times=10)
    async with make_client(server) as client:
        with pytest.raises(ServiceError) as info:
            await put_one(client)
    assert len(server.requests) == 3
    assert info.value.attempts == 3
    assert len(sleeps_of(client)) == 2


@pytest.mark.parametrize(("code", "status"), NOT_RETRYABLE)
async def test_validation_type_errors_are_never_retried(server: ScriptedServer, code: str, status: int) -> None:
    """400 InvalidInputException, 403 and 404 are sent once and raised at once, without sleeping."""
    server.error(code, status, times=10)
    async with make_client(server, config=ClientConfig(max_attempts=5)) as client:
        with pytest.raises(ServiceError) as info:
            await put_one(client)
    assert len(server.requests) == 1
    assert info.value.attempts == 1
    assert sleeps_of(client) == []


@pytest.mark.parametrize("action", ["drop", "truncate"])
async def test_dropped_connections_are_retried(server: ScriptedServer, action: str) -> None:
    """A connection closed without a full answer is retried, then succeeds."""
    server.reply(Reply(action=action), Reply(action=action))
    async with make_client(server) as client:
        meta = await put_one(client)
    assert meta.retry_attempts == 2
    assert len(server.requests) == 3


async def test_timeouts_are_retried(server: ScriptedServer) -> None:
    """A read timeout is retried; the next attempt's answer is returned."""
    server.reply(Reply(action="hang"))
    async with make_client(server, config=ClientConfig(read_timeout=0.2)) as client:
        meta = await put_one(client)
    assert meta.retry_attempts == 1
    assert len(server.requests) == 2


async def test_connection_errors_are_retried_up_to_max_attempts() -> None:
    """Connection refused is retried max_attempts times in all, then raised as a TransportError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(endpoint_url=f"http://127.0.0.1:{port}", config=ClientConfig(max_attempts=4)) as client:
        with pytest.raises(TransportError) as info:
            await put_one(client)
    assert info.value.attempts == 4
    assert len(sleeps_of(client)) == 3


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
async def test_max_attempts_counts_the_first_try(server: ScriptedServer, max_attempts: int) -> None:
    """max_attempts=N means N requests in all."""
    server.error("ThrottlingException", 400, times=10)
    async with make_client(server, config=ClientConfig(max_attempts=max_attempts)) as client:
        with pytest.raises(ServiceError):
            await put_one(client)
    assert len(server.requests) == max_attempts


async def test_success_after_retries_reports_them(server: ScriptedServer) -> None:
    """A call that succeeds on its third attempt returns retry_attempts=2."""
    server.error("InternalFailure", 500, times=2)
    async with make_client(server) as client:
        meta = await put_one(client)
    assert meta.retry_attempts == 2
    assert meta.http_status == 200


# --- delays --------------------------------------------------------------------------------------------


async def test_backoff_is_exponential_with_full_jitter(server: ScriptedServer) -> None:
    """The wait after attempt n is random() * min(backoff_max, backoff_base * 2**(n-1)) (retries_2026=False)."""
    server.error("ThrottlingException", 400, times=4)
    config = ClientConfig(max_attempts=5, backoff_base=0.25, backoff_max=20.0, retries_2026=False)
    async with make_client(server, config=config) as client:
        client.retry_policy.random = randoms(0.5, 1.0, 0.0, 0.75)
        await put_one(client)
    assert sleeps_of(client) == [0.5 * 0.25, 1.0 * 0.5, 0.0 * 1.0, 0.75 * 2.0]


async def test_backoff_max_caps_the_wait(server: ScriptedServer) -> None:
    """Once backoff_base * 2**(n-1) passes backoff_max the wait stays at most backoff_max."""
    server.error(None, 503, times=6)
    config = ClientConfig(max_attempts=7, backoff_base=1.0, backoff_max=3.0)
    async with make_client(server, config=config) as client:
        client.retry_policy.random = lambda: 1.0
        await put_one(client)
    assert sleeps_of(client) == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


async def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    """A Retry-After header sets the wait instead of the backoff."""
    server.error("ThrottlingException", 429, headers={"Retry-After": "2"})
    server.error("ThrottlingException", 429, headers={"Retry-After": "0.5"})
    async with make_client(server, config=ClientConfig(backoff_max=10.0)) as client:
        client.retry_policy.random = lambda: 0.0
        await put_one(client)
    assert sleeps_of(client) == [2.0, 0.5]


async def test_retry_after_is_capped_by_backoff_max(server: ScriptedServer) -> None:
    """A Retry-After longer than backoff_max waits backoff_max (retries_2026=False; 2026: test_retry_2026)."""
    server.error(None, 503, headers={"Retry-After": "120"})
    async with make_client(server, config=ClientConfig(backoff_max=5.0, retries_2026=False)) as client:
        await put_one(client)
    assert sleeps_of(client) == [5.0]


async def test_an_unreadable_retry_after_falls_back_to_backoff(server: ScriptedServer) -> None:
    """A Retry-After that is an HTTP date (or garbage) is ignored in favour of the backoff."""
    server.error(None, 503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    async with make_client(server, config=ClientConfig(backoff_base=0.1)) as client:
        client.retry_policy.random = lambda: 0.5
        await put_one(client)
    assert sleeps_of(client) == [0.05]


async def test_default_sleep_really_waits_only_when_asked(server: ScriptedServer) -> None:
    """With the real sleep and a zero jitter the retry happens at once (the default sleep is asyncio.sleep)."""
    server.error("ThrottlingException", 400)
    async with make_client(server) as client:
        import asyncio

        client.retry_policy.sleep = asyncio.sleep
        client.retry_policy.random = lambda: 0.0
        meta = await put_one(client)
    assert meta.retry_attempts == 1


# --- the retry budget ---------------------------------------------------------------------------------


async def test_a_burst_of_failures_stops_retrying_when_the_budget_is_spent(server: ScriptedServer) -> None:
    """A budget of 20 tokens (5 a retry, retries_2026=False) pays four retries; later calls fail at once."""
    server.error(None, 500, times=100)
    async with make_client(server, config=ClientConfig(retry_budget=20, retries_2026=False)) as client:
        attempts = []
        for _ in range(5):
            with pytest.raises(ServiceError) as info:
                await put_one(client)
            attempts.append(info.value.attempts)
        assert client.retry_policy.budget.tokens == 0
    assert attempts == [3, 3, 1, 1, 1]
    assert len(server.requests) == 9
    assert len(sleeps_of(client)) == 4


async def test_transport_error_retries_cost_more(server: ScriptedServer) -> None:
    """A retry after a dropped connection takes 10 tokens (retries_2026=False), so a budget of 20 pays for two."""
    server.reply(*[Reply(action="drop")] * 10)
    async with make_client(server, config=ClientConfig(retry_budget=20, retries_2026=False)) as client:
        attempts = []
        for _ in range(3):
            with pytest.raises(TransportError) as info:
                await put_one(client)
            attempts.append(info.value.attempts)
    assert attempts == [3, 1, 1]
    assert TIMEOUT_RETRY_COST == 2 * RETRY_COST


async def test_successes_refill_the_budget(server: ScriptedServer) -> None:
    """After the budget is spent, successes give tokens back and retries resume (5 a retry: retries_2026=False)."""
    server.error(None, 500, times=3)
    async with make_client(server, config=ClientConfig(retry_budget=10, retries_2026=False)) as client:
        with pytest.raises(ServiceError):
            await put_one(client)  # two retries spend all 10 tokens
        assert client.retry_policy.budget.tokens == 0
        for _ in range(RETRY_COST):
            await put_one(client)  # each first-try success gives one token back
        assert client.retry_policy.budget.tokens == RETRY_COST
        server.error(None, 500, times=10)
        with pytest.raises(ServiceError) as info:
            await put_one(client)
    assert info.value.attempts == 2  # one retry paid for, then the budget is empty again


async def test_a_retried_success_refunds_its_retry(server: ScriptedServer) -> None:
    """A call that succeeds after a retry gives the retry's cost back, so steady recoveries never drain the budget."""
    async with make_client(server, config=ClientConfig(retry_budget=10)) as client:
        for _ in range(5):
            server.error("ThrottlingException", 400)
            meta = await put_one(client)
            assert meta.retry_attempts == 1
        assert client.retry_policy.budget.tokens == 10


async def test_a_success_after_a_transport_retry_refunds_what_it_took(server: ScriptedServer) -> None:
    """A call that succeeds after a dropped connection gives back the 10 tokens its retry took, not 5 (pre-2026)."""
    async with make_client(server, config=ClientConfig(retry_budget=30, retries_2026=False)) as client:
        for _ in range(4):
            server.reply(Reply(action="drop"))
            meta = await put_one(client)
            assert meta.retry_attempts == 1
        assert client.retry_policy.budget.tokens == 30


async def test_the_budget_never_exceeds_its_capacity(server: ScriptedServer) -> None:
    """Successes on a full budget do not raise it past its capacity."""
    async with make_client(server, config=ClientConfig(retry_budget=7)) as client:
        for _ in range(3):
            await put_one(client)
        assert client.retry_policy.budget.tokens == 7


async def test_non_retryable_errors_cost_nothing(server: ScriptedServer) -> None:
    """Errors that are not retried do not spend the budget."""
    server.error("InvalidInputException", 400, times=5)
    async with make_client(server, config=ClientConfig(retry_budget=5)) as client:
        for _ in range(5):
            with pytest.raises(PersonalizeEventsError):
                await put_one(client)
        assert client.retry_policy.budget.tokens == 5
