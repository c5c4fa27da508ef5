"""Outage and recovery: the emulator refuses everything for a while, then recovers.

During the outage the client-wide retry budget must stop callers from
multiplying the load (the emulator sees about one call per caller call, not
``max_attempts``), delivery must resume once the service is back, and a
recorder closed during the outage must hand every one of its events to
``on_failure``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    RecorderClosedError,
    ServiceError,
    TransportError,
)
from aiopersonalize_events._retry import RETRY_COST, TIMEOUT_RETRY_COST
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-outage"
HANG_GUARD = 60.0
BUDGET = 500  # ClientConfig's default retry budget


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """Retries here happen at once (the package's testing switch), the worst case for load."""


def _client(emu: Emulator, **config: Any) -> PersonalizeEventsClient:
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emu.endpoint_url,
        credentials=Credentials("AKIDOUTAGE", "outage-secret"),
        config=ClientConfig(**config),
    )
    return client


def _event(n: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + n, event_id=f"e{n}")


def _seen(emu: Emulator) -> int:
    return sum(emu.calls.values())


async def _callers(
    client: PersonalizeEventsClient, emu: Emulator, *, callers: int, calls: int, first_id: int
) -> dict[str, Any]:
    """``callers`` tasks make ``calls`` put_events calls each, back to back; returns what they and the emulator saw.

    Counted, not timed: the same number of calls is made however loaded the
    machine is. ``timeline`` samples (time, caller calls, emulator calls)
    every ``callers`` calls; the times are only printed.
    """
    made = ok = 0
    errors: list[PersonalizeEventsError] = []
    next_id = first_id
    seen_before = _seen(emu)
    timeline: list[tuple[float, int, int]] = []  # (time, caller calls so far, emulator calls so far)
    started = time.monotonic()

    async def caller(n: int) -> None:
        nonlocal made, ok, next_id
        for _ in range(calls):
            next_id += 1
            made += 1
            try:
                meta = await client.put_events(tracking_id=TRACKER, session_id=f"s{n}", event_list=[_event(next_id)])
            except PersonalizeEventsError as error:
                errors.append(error)
            else:
                assert meta.http_status == 200
                ok += 1
            if made % callers == 0:
                timeline.append((time.monotonic() - started, made, _seen(emu) - seen_before))
            await asyncio.sleep(0)

    timeline.append((0.0, 0, 0))
    await asyncio.wait_for(asyncio.gather(*(caller(n) for n in range(callers))), HANG_GUARD)
    timeline.append((time.monotonic() - started, made, _seen(emu) - seen_before))
    return {"made": made, "ok": ok, "errors": errors, "seen": _seen(emu) - seen_before, "timeline": timeline}


def _rates(timeline: list[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """(caller calls per second, emulator calls per second) for each sampling interval."""
    out = []
    for (t0, c0, e0), (t1, c1, e1) in itertools.pairwise(timeline):
        if t1 > t0:
            out.append((round((c1 - c0) / (t1 - t0)), round((e1 - e0) / (t1 - t0))))
    return out


@pytest.mark.parametrize(
    ("faults", "cost", "error_type"),
    [
        (Faults(server_error=1.0, seed=1), RETRY_COST, ServiceError),
        (Faults(disconnect=1.0, seed=1), TIMEOUT_RETRY_COST, TransportError),
    ],
    ids=["5xx", "dropped connections"],
)
async def test_the_retry_budget_stops_an_outage_from_multiplying_load(
    emulator: Emulator, faults: Faults, cost: int, error_type: type[PersonalizeEventsError]
) -> None:
    """With every call failing, retries stop once the budget is spent: the emulator sees ~1 call per caller call."""
    emulator.faults = faults
    async with _client(emulator, max_attempts=3) as client:
        outage = await _callers(client, emulator, callers=16, calls=40, first_id=0)
        tokens_after_outage = client.retry_policy.budget.tokens
        emulator.faults = None
        recovery = await _callers(client, emulator, callers=16, calls=10, first_id=1_000_000)
        tokens_after_recovery = client.retry_policy.budget.tokens

    made, seen = outage["made"], outage["seen"]
    retries = seen - made
    # the budget pays for BUDGET // cost retries, then none: without it there would be 2 retries per call
    assert retries == BUDGET // cost
    assert made == 16 * 40
    assert made > 4 * retries  # long enough for the budget to run out (counted calls: no race with the machine's load)
    assert outage["ok"] == 0
    assert all(isinstance(e, error_type) for e in outage["errors"])
    assert sum(e.attempts for e in outage["errors"]) == seen
    # once the budget is empty, each caller call is exactly one call at the emulator
    rates = _rates(outage["timeline"])
    late = outage["timeline"][len(outage["timeline"]) // 2 :]
    late_calls, late_seen = late[-1][1] - late[0][1], late[-1][2] - late[0][2]
    assert abs(late_seen - late_calls) <= 16  # the callers' calls in flight at either sample
    assert tokens_after_outage < cost

    # delivery resumes at once, every call accepted on its first attempt, and the budget refills
    assert recovery["errors"] == []
    assert recovery["ok"] == recovery["made"] == recovery["seen"] > 0
    assert tokens_after_recovery > tokens_after_outage
    stored = {e["eventId"] for e in emulator.events(TRACKER)}
    assert len(stored) == recovery["ok"]
    print(
        f"outage ({faults}): caller calls {made}, emulator calls {seen} "
        f"(ratio {seen / made:.3f}, retries {retries}), per-interval (caller/s, emulator/s) {rates}; "
        f"recovery: {recovery['made']} calls, all accepted; tokens {tokens_after_outage} -> {tokens_after_recovery}"
    )


async def test_without_a_budget_the_same_outage_triples_the_load(emulator: Emulator) -> None:
    """The control: with a budget too large to run out, every failing call makes max_attempts calls."""
    emulator.faults = Faults(server_error=1.0, seed=2)
    async with _client(emulator, max_attempts=3, retry_budget=10**9) as client:
        outage = await _callers(client, emulator, callers=8, calls=20, first_id=0)
    assert outage["seen"] == 3 * outage["made"]
    print(f"no budget: caller calls {outage['made']}, emulator calls {outage['seen']} (ratio 3)")


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
