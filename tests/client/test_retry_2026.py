"""The AWS SDKs' updated retry behaviour of 2026, the default (as in botocore 1.44), as botocore implements it.

``ClientConfig(retries_2026=False)`` / ``AWS_NEW_RETRIES_2026=false`` (deprecated) keep the earlier
standard behaviour; its numbers are pinned here and in ``test_client_retry``.

Published values (AWS SDKs and Tools reference guide, "Retry behavior"; botocore's
``retries/standard.py``): the wait before retry n is ``random() * min(20, base * 2 ** (n - 1))``
with base 50 ms after a transient error and 1 s after throttling; a retry takes 14 tokens of the
500-token quota (5 after throttling); ``x-amz-retry-after`` (milliseconds) is honoured as
``max(t, min(hint, t + 5))``. Delays are asserted exactly on an injected ``random`` and ``sleep``,
against the emulator's throttling and 5xx faults and a scripted server's headers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from _scripted_server import ScriptedServer, Sleeps, error_reply, make_client

from aiopersonalize_events import ClientConfig, Event, PersonalizeEventsClient, ServiceError, ThrottlingException
from aiopersonalize_events._retry import RetryPolicy
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.emulator._faults import Fault, FaultInjector

NEW = ClientConfig(retries_2026=True)


def randoms(*values: float) -> Any:
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def _events(tag: str) -> list[Event]:
    return [Event(event_type="click", item_id="i", event_id=tag, sent_at=1_700_000_000)]


async def _put(client: PersonalizeEventsClient, tag: str = "e") -> Any:
    return await client.put_events(tracking_id="t", session_id="s", event_list=_events(tag))


def _client(emu: Emulator, config: ClientConfig) -> Any:
    return make_client(endpoint_url=emu.endpoint_url, config=config)


def test_it_is_on_by_default_and_the_environment_variable_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, ``true`` or anything but ``false``: on; AWS_NEW_RETRIES_2026=false (any case) or the argument: off."""
    monkeypatch.delenv("AWS_NEW_RETRIES_2026", raising=False)
    assert ClientConfig().retries_2026 is True
    monkeypatch.setenv("AWS_NEW_RETRIES_2026", "TRUE")
    assert ClientConfig().retries_2026 is True
    assert ClientConfig(retries_2026=False).retries_2026 is False
    monkeypatch.setenv("AWS_NEW_RETRIES_2026", "false")
    assert ClientConfig().retries_2026 is False
    monkeypatch.setenv("AWS_NEW_RETRIES_2026", " False ")
    assert ClientConfig().retries_2026 is False
    assert ClientConfig(retries_2026=True).retries_2026 is True  # the argument wins
    monkeypatch.setenv("AWS_NEW_RETRIES_2026", "")
    assert ClientConfig().retries_2026 is True


def _default(monkeypatch: pytest.MonkeyPatch, **config: Any) -> ClientConfig:
    """A ``ClientConfig`` that does not name the behaviour, with nothing in the environment choosing it."""
    monkeypatch.delenv("AWS_NEW_RETRIES_2026", raising=False)
    return ClientConfig(**config)


async def test_by_default_throttling_waits_from_one_second_and_5xx_from_fifty_ms(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client given no retry settings: the 2026 waits (1 s / 50 ms bases) and costs (5 / 14), exactly."""
    emulator.faults = Faults(throttle=1.0)
    async with _client(emulator, _default(monkeypatch)) as client:
        client.retry_policy.random = randoms(0.5, 0.25)
        with pytest.raises(ThrottlingException):
            await _put(client, "t")
        assert client.retry_policy.sleep.delays == [0.5 * 1.0, 0.25 * 2.0]
        assert client.retry_policy.budget.tokens == 500 - 2 * 5
        emulator.faults = Faults(server_error=1.0)
        client.retry_policy.random = randoms(0.5, 1.0)
        with pytest.raises(ServiceError):
            await _put(client, "s")
        assert client.retry_policy.sleep.delays == [0.5 * 1.0, 0.25 * 2.0, 0.5 * 0.05, 1.0 * 0.1]
        assert client.retry_policy.budget.tokens == 500 - 2 * 5 - 2 * 14
        emulator.faults = None
        await _put(client, "ok")  # a first-try success gives one token back
        assert client.retry_policy.budget.tokens == 500 - 2 * 5 - 2 * 14 + 1
    assert emulator.calls[("PutEvents", 400)] == 3
    assert sum(n for (_, status), n in emulator.calls.items() if status >= 500) == 3
    assert [e["eventId"] for e in emulator.events(tracking_id="t")] == ["ok"]


async def test_by_default_x_amz_retry_after_is_honoured(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client given no retry settings reads x-amz-retry-after within t + 5 s, as botocore 1.44 does."""
    server.reply(error_reply("ThrottlingException", 400, headers={"x-amz-retry-after": "60000"}))
    async with make_client(server, config=_default(monkeypatch)) as client:
        client.retry_policy.random = randoms(0.5)
        await _put(client)
        assert client.retry_policy.budget.tokens == 500  # 5 taken, 5 given back by the success
    assert client.retry_policy.sleep.delays == [0.5 * 1.0 + 5.0]


async def test_an_explicit_backoff_base_replaces_the_transient_base_only(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``backoff_base=0.2``: a 5xx waits random * 0.2 * 2**(n-1); throttling keeps its 1 s base."""
    server.error(None, 503, times=2)
    server.error("ThrottlingException", 400)
    async with make_client(server, config=_default(monkeypatch, backoff_base=0.2, max_attempts=4)) as client:
        client.retry_policy.random = randoms(0.5, 0.5, 0.5)
        await _put(client)
        assert client.retry_policy.budget.tokens == 500 - 14 - 14 - 5 + 5
    assert client.retry_policy.sleep.delays == [0.5 * 0.2, 0.5 * 0.4, 0.5 * 4.0]


async def test_throttling_waits_from_a_one_second_base_and_costs_five(emulator: Emulator) -> None:
    """Three throttled attempts: waits random * 1 s * 2**(n-1); the quota pays 5 per retry (500 -> 490)."""
    emulator.faults = Faults(throttle=1.0)
    async with _client(emulator, NEW) as client:
        client.retry_policy.random = randoms(0.5, 0.25)
        with pytest.raises(ThrottlingException):
            await _put(client)
        assert client.retry_policy.sleep.delays == [0.5 * 1.0, 0.25 * 2.0]
        assert client.retry_policy.budget.tokens == 490
    assert emulator.calls[("PutEvents", 400)] == 3


async def test_transient_errors_wait_from_fifty_ms_and_cost_fourteen(emulator: Emulator) -> None:
    """Three 5xx attempts: waits random * 50 ms * 2**(n-1); 14 tokens per retry (500 -> 472)."""
    emulator.faults = Faults(server_error=1.0)
    async with _client(emulator, NEW) as client:
        client.retry_policy.random = randoms(0.5, 1.0)
        with pytest.raises(ServiceError) as info:
            await _put(client)
        assert client.retry_policy.sleep.delays == [0.5 * 0.05, 1.0 * 0.1]
        assert client.retry_policy.budget.tokens == 472
    assert info.value.http_status in (500, 503)


async def test_a_success_after_retries_refunds_the_last_retry_cost(emulator: Emulator) -> None:
    """A seeded mix of throttles and 5xx: each wait and cost follows the error it came after, exactly."""
    faults = Faults(throttle=0.4, server_error=0.4, seed=11)
    emulator.faults = faults
    predict = FaultInjector(faults)  # the same seed draws the same faults, one per call
    drawn = [predict.draw() for _ in range(60)]
    config = ClientConfig(retries_2026=True, max_attempts=10)
    async with _client(emulator, config) as client:
        client.retry_policy.random = lambda: 0.5
        for i in range(10):
            with contextlib.suppress(ServiceError):
                await _put(client, f"e{i}")
        delays = client.retry_policy.sleep.delays
        tokens = client.retry_policy.budget.tokens
    expected_delays: list[float] = []
    expected_tokens = 500
    index = delivered = 0
    for _ in range(10):
        attempt, cost = 1, 0
        while True:
            fault = drawn[index]
            index += 1
            if fault is None:
                expected_tokens = min(500, expected_tokens + (cost or 1))
                delivered += 1
                break
            if attempt == config.max_attempts:
                break
            throttled = fault is Fault.THROTTLE
            cost = 5 if throttled else 14
            expected_tokens -= cost
            expected_delays.append(0.5 * min(20.0, (1.0 if throttled else 0.05) * 2 ** (attempt - 1)))
            attempt += 1
    assert delays == pytest.approx(expected_delays)
    assert tokens == expected_tokens
    assert sum(emulator.calls.values()) == index
    assert len(emulator.events(tracking_id="t")) == delivered
    assert 0 < delivered < 10  # the seed gives both outcomes: attempts used up, and success after retries


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3000", 3.0),  # within the bound: the hint
        ("60000", 0.5 + 5.0),  # beyond it: t + 5 s
        ("100", 0.5),  # shorter than the jittered wait: the wait
        ("soon", 0.5),  # not milliseconds: ignored
    ],
)
async def test_x_amz_retry_after_is_honoured_within_a_bound(
    server: ScriptedServer, header: str, expected: float
) -> None:
    """x-amz-retry-after (ms) gives max(t, min(hint, t + 5)) for the jittered t = 0.5 * 1 s."""
    server.reply(error_reply("ThrottlingException", 400, headers={"x-amz-retry-after": header}))
    async with make_client(server, config=NEW) as client:
        client.retry_policy.random = randoms(0.5)
        await _put(client)
    assert client.retry_policy.sleep.delays == [expected]


async def test_without_it_x_amz_retry_after_is_not_read(server: ScriptedServer) -> None:
    """The pre-2026 standard mode keeps its waits (backoff_base 0.1) and costs (5): the header is not read."""
    server.reply(error_reply("ThrottlingException", 400, headers={"x-amz-retry-after": "3000"}))
    async with make_client(server, config=ClientConfig(retries_2026=False)) as client:
        client.retry_policy.random = randoms(0.5)
        await _put(client)
        assert client.retry_policy.budget.tokens == 500  # 5 taken, 5 refunded on success
    assert client.retry_policy.sleep.delays == [0.5 * 0.1]


def test_the_policy_for_each_behaviour_has_the_published_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """RetryPolicy.for_config: 2026 (default) -> bases 0.05/1.0, costs 14/14/5, bound 5 s; else backoff_base, 5/10."""
    for config in (NEW, _default(monkeypatch)):
        new = RetryPolicy.for_config(config)
        assert (new.backoff_base, new.throttling_backoff_base, new.retry_after_extra) == (0.05, 1.0, 5.0)
        assert (new.budget.retry_cost, new.budget.timeout_cost, new.budget.throttling_cost) == (14, 14, 5)
        assert new.budget.tokens == 500
    given = RetryPolicy.for_config(_default(monkeypatch, backoff_base=0.3))
    assert (given.backoff_base, given.throttling_backoff_base, given.retry_after_extra) == (0.3, 1.0, 5.0)
    assert repr(ClientConfig()).count("backoff_base=0.1,") == 1  # the default shows as the number it is
    old = RetryPolicy.for_config(ClientConfig(backoff_base=0.3, retries_2026=False))
    assert (old.backoff_base, old.throttling_backoff_base, old.retry_after_extra) == (0.3, None, None)
    assert (old.budget.retry_cost, old.budget.timeout_cost, old.budget.throttling_cost) == (5, 10, None)
    assert isinstance(make_client(config=NEW).retry_policy.sleep, Sleeps)
