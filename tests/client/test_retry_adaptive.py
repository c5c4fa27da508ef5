"""The adaptive retry mode: a client-side rate limiter (CUBIC on throttling, a token bucket), per client.

Time is virtual: the limiter's clock, the emulator's quota clock and every
sleep (the limiter's waits and the retry backoff) are one ``VirtualTime``
that moves only when something sleeps, so a test says "the client sent 100
calls in 10.4 virtual seconds" without waiting for any of them. The
emulator enforces a real token-bucket quota on that clock.
"""

from __future__ import annotations

import contextlib

import pytest
from _scripted_server import make_client

from aiopersonalize_events import (
    ClientConfig,
    ClientRateLimitError,
    Event,
    PersonalizeEventsClient,
    ThrottlingException,
)
from aiopersonalize_events._retry import AdaptiveRateLimiter
from aiopersonalize_events.emulator import Emulator

QUOTA = 10.0


class VirtualTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def _events(tag: str) -> list[Event]:
    return [Event(event_type="click", item_id="i", event_id=tag, sent_at=1_700_000_000)]


def _client(emu: Emulator, vt: VirtualTime, **config: object) -> PersonalizeEventsClient:
    client: PersonalizeEventsClient = make_client(endpoint_url=emu.endpoint_url, config=ClientConfig(**config))  # type: ignore[arg-type]
    policy = client.retry_policy
    policy.sleep = vt.sleep
    policy.random = lambda: 0.5
    if policy.rate_limiter is not None:  # the client's limiter, on the virtual clock
        policy.rate_limiter = AdaptiveRateLimiter(
            fail_fast=policy.rate_limiter.fail_fast, clock=vt.time, sleep=vt.sleep
        )
    return client


class Phase:
    """What a run of sequential calls saw at the emulator: accepted and throttled attempts, virtual seconds."""

    def __init__(self, ok: int, throttled: int, seconds: float) -> None:
        self.ok, self.throttled, self.seconds = ok, throttled, seconds


async def _run(client: PersonalizeEventsClient, emu: Emulator, vt: VirtualTime, calls: int, tag: str) -> Phase:
    start, ok, throttled = vt.now, emu.calls[("PutEvents", 200)], emu.calls[("PutEvents", 400)]
    for i in range(calls):
        with contextlib.suppress(ThrottlingException):
            await client.put_events(tracking_id="t", session_id="s", event_list=_events(f"{tag}{i}"))
    return Phase(emu.calls[("PutEvents", 200)] - ok, emu.calls[("PutEvents", 400)] - throttled, vt.now - start)


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


async def test_adaptive_slows_the_send_rate_to_the_quota_and_throttles_less_than_standard(vt: VirtualTime) -> None:
    """Against a 10/s quota: standard keeps hammering (most attempts throttled); adaptive settles near the quota.

    The standard baseline is the pre-2026 one (``retries_2026=False``, waits
    from 0.1 s after throttling), which spaces its attempts least.
    """
    async with Emulator(quotas={"PutEvents": QUOTA}, clock=vt.time) as emu:
        async with _client(emu, vt, retry_mode="standard", retries_2026=False) as standard:
            plain = await _run(standard, emu, vt, 200, "s")
        vt.now += 60.0
        emu.quotas.reset()  # type: ignore[union-attr]
        async with _client(emu, vt, retry_mode="adaptive") as adaptive:
            warm = await _run(adaptive, emu, vt, 100, "a")
            steady = await _run(adaptive, emu, vt, 200, "b")
            stats = adaptive.retry_policy.rate_limiter.stats  # type: ignore[union-attr]
    # standard: only the retry backoff spaces its attempts, so most are throttled
    assert plain.throttled > plain.ok
    # adaptive, once it has learnt the quota: a small share of attempts is throttled, and the
    # accepted rate is close to the quota (not far below it: it does not starve itself)
    assert steady.throttled * 4 < steady.ok
    assert 0.6 * QUOTA < steady.ok / steady.seconds <= 1.2 * QUOTA
    assert steady.throttled / (steady.ok + steady.throttled) < plain.throttled / (plain.ok + plain.throttled) / 3
    assert warm.throttled >= 1
    assert stats.enabled
    assert stats.throttles == warm.throttled + steady.throttled
    assert stats.waits > 0
    assert stats.waited > 0.5 * steady.seconds  # the pacing, not the backoff, is what spaced the calls
    assert stats.rate is not None
    assert stats.rate < 2 * QUOTA


async def test_adaptive_recovers_when_the_throttling_stops(vt: VirtualTime) -> None:
    """After the quota is lifted, CUBIC grows the allowed rate well past the old quota within virtual seconds."""
    emu = Emulator(quotas={"PutEvents": QUOTA}, clock=vt.time)
    async with emu, _client(emu, vt, retry_mode="adaptive") as client:
        limiter = client.retry_policy.rate_limiter
        assert limiter is not None
        throttled = await _run(client, emu, vt, 150, "a")
        slow_rate = limiter.stats.rate
        assert slow_rate is not None
        emu.quotas.rates["PutEvents"] = 10_000.0  # type: ignore[union-attr]
        emu.quotas.reset()  # type: ignore[union-attr]
        recovered = await _run(client, emu, vt, 400, "b")
        fast_rate = limiter.stats.rate
    assert throttled.throttled > 0
    assert slow_rate < 2 * QUOTA
    assert recovered.throttled == 0
    assert fast_rate is not None
    assert fast_rate > 4 * slow_rate
    assert recovered.ok / recovered.seconds > 3 * QUOTA  # the send rate came back up
    assert len(emu.events(tracking_id="t")) == throttled.ok + recovered.ok  # each accepted call's event, once
    assert emu.duplicates == 0


async def test_the_batching_helpers_and_the_recorder_share_the_clients_limiter(vt: VirtualTime) -> None:
    """put_events_batched and the recorder wait on the same AdaptiveRateLimiter as direct calls."""
    emu = Emulator(quotas={"PutEvents": QUOTA}, clock=vt.time)
    async with emu, _client(emu, vt, retry_mode="adaptive") as client:
        limiter = client.retry_policy.rate_limiter
        assert limiter is not None
        await _run(client, emu, vt, 40, "a")  # learn the quota
        waits = limiter.stats.waits
        events = [Event(event_type="click", item_id="i", event_id=f"b{i}", sent_at=1) for i in range(100)]
        result = await client.put_events_batched(tracking_id="t", session_id="s", event_list=events)
        after_batched = limiter.stats.waits
        async with client.event_recorder(tracking_id="t", flush_interval=0.01) as recorder:
            for i in range(50):
                recorder.record(Event(event_type="click", item_id="i", event_id=f"r{i}", sent_at=1), session_id="s")
        after_recorder = limiter.stats.waits
    assert result.ok
    assert after_batched > waits  # the batched calls were paced by the client's limiter
    assert after_recorder > after_batched  # and so were the recorder's
    ids = {e["eventId"] for e in emu.events(tracking_id="t")}
    assert {f"b{i}" for i in range(100)} <= ids
    assert {f"r{i}" for i in range(50)} <= ids


async def test_fail_fast_refuses_at_once_without_sending(vt: VirtualTime) -> None:
    """rate_limit_fail_fast: once throttled, a call with no token raises ClientRateLimitError; nothing is sent."""
    emu = Emulator(quotas={"PutEvents": 1.0}, clock=vt.time)
    async with emu, _client(emu, vt, retry_mode="adaptive", rate_limit_fail_fast=True, max_attempts=1) as client:
        limiter = client.retry_policy.rate_limiter
        assert limiter is not None
        await client.put_events(tracking_id="t", session_id="s", event_list=_events("a"))
        with pytest.raises(ThrottlingException):  # the quota's second call in the same instant
            await client.put_events(tracking_id="t", session_id="s", event_list=_events("b"))
        sent = sum(emu.calls.values())
        with pytest.raises(ClientRateLimitError) as info:
            await client.put_events(tracking_id="t", session_id="s", event_list=_events("c"))
        assert sum(emu.calls.values()) == sent
        assert limiter.stats.refused == 1
        assert info.value.retryable
        assert info.value.throttling
        assert "nothing was sent" in str(info.value)
        vt.now += 5.0  # tokens accrue: the next call goes out
        await client.put_events(tracking_id="t", session_id="s", event_list=_events("d"))
    assert [e["eventId"] for e in emu.events(tracking_id="t")] == ["a", "d"]


def test_cubic_follows_botocores_numbers() -> None:
    """The limiter's rate after a throttle is 0.7 x the rate in use, then grows as 0.4 (t - k)^3 + w_max."""
    vt = VirtualTime()
    limiter = AdaptiveRateLimiter(clock=vt.time, sleep=vt.sleep)
    for _ in range(21):  # 20 answers a second for a second: the measured rate is smoothed towards 20
        limiter.record(False)
        vt.now += 0.05
    measured = limiter.stats.measured_rate
    assert limiter.stats.enabled is False
    limiter.record(True)
    stats = limiter.stats
    assert stats.enabled
    w_max = stats.measured_rate
    assert stats.rate == pytest.approx(0.7 * w_max)
    k = (w_max * 0.3 / 0.4) ** (1 / 3)
    vt.now += 2.0
    limiter.record(False)
    expected = 0.4 * (2.0 - k) ** 3 + w_max
    assert limiter.stats.rate == pytest.approx(min(expected, 2 * limiter.stats.measured_rate))
    assert measured > 0


async def test_adaptive_from_the_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: object, vt: VirtualTime) -> None:
    """retry_mode = adaptive in the profile turns the limiter on when the client opens; AWS_RETRY_MODE wins."""
    from pathlib import Path

    config = Path(str(tmp_path)) / "config"
    config.write_text("[default]\nretry_mode = adaptive\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    async with Emulator() as emu:
        client = make_client(endpoint_url=emu.endpoint_url)
        assert client.retry_policy.rate_limiter is None
        async with client:
            assert isinstance(client.retry_policy.rate_limiter, AdaptiveRateLimiter)
        monkeypatch.setenv("AWS_RETRY_MODE", "standard")
        async with make_client(endpoint_url=emu.endpoint_url) as other:
            assert other.retry_policy.rate_limiter is None
        async with make_client(endpoint_url=emu.endpoint_url, config=ClientConfig(retry_mode="standard")) as given:
            assert given.retry_policy.rate_limiter is None
