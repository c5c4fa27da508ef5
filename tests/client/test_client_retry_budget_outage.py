"""Outage and recovery: the client-wide retry budget stops callers from multiplying the load on a
service that refuses everything for a while.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from _outage_support import (
    HANG_GUARD,
    TRACKER,
    _client,
    _event,
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    _seen,
)

from aiopersonalize_events import (
    PersonalizeEventsClient,
    PersonalizeEventsError,
    ServiceError,
    TransportError,
)
from aiopersonalize_events._retry import RETRY_COST, RETRY_COST_2026, TIMEOUT_RETRY_COST
from aiopersonalize_events.emulator import Emulator, Faults

BUDGET = 500  # ClientConfig's default retry budget


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
    ("faults", "cost", "error_type", "behaviour"),
    [
        (Faults(server_error=1.0, seed=1), RETRY_COST_2026, ServiceError, {}),
        (Faults(disconnect=1.0, seed=1), RETRY_COST_2026, TransportError, {}),
        (Faults(server_error=1.0, seed=1), RETRY_COST, ServiceError, {"retries_2026": False}),
        (Faults(disconnect=1.0, seed=1), TIMEOUT_RETRY_COST, TransportError, {"retries_2026": False}),
    ],
    ids=["5xx", "dropped connections", "5xx, pre-2026", "dropped connections, pre-2026"],
)
async def test_the_retry_budget_stops_an_outage_from_multiplying_load(
    emulator: Emulator, faults: Faults, cost: int, error_type: type[PersonalizeEventsError], behaviour: dict[str, bool]
) -> None:
    """With every call failing, retries stop once the budget is spent: the emulator sees ~1 call per caller call.

    By default a retry costs 14 tokens (the 2026 behaviour); with
    ``retries_2026=False`` 5, or 10 after a dropped connection.
    """
    emulator.faults = faults
    async with _client(emulator, max_attempts=3, **behaviour) as client:
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
