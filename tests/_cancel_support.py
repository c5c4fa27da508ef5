"""Helpers shared by the cancellation tests (batching, client, recorder): clients, records, cancelling."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from hypothesis import HealthCheck, settings

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    User,
)
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.emulator._wire import WIRE

TRACKER = "tracker-cancel"
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/cancel/ITEMS"
HANG_GUARD = 30.0
CANCELS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_examples = iter(range(10**9))  # a fresh id prefix for every example: emulators are per example anyway


def library_tasks() -> list[asyncio.Task[Any]]:
    """Tasks running the library's own coroutines (recorder loop and deliveries, batching calls)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        in_library = (
            f"{os.sep}aiopersonalize_events{os.sep}" in filename and f"{os.sep}emulator{os.sep}" not in filename
        )
        if in_library or task.get_name() == "aiopersonalize_events-recorder":
            found.append(task)
    return found


def _client(emu: Emulator) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emu.endpoint_url,
        credentials=Credentials("AKIDCANCEL", "cancel-secret"),
        config=ClientConfig(max_attempts=3, backoff_base=0.005, backoff_max=0.02),
    )


def _records(op: ops.Operation, prefix: str, n: int) -> list[Any]:
    if op is ops.PUT_EVENTS:
        return [Event(event_type="view", sent_at=1_700_000_000, event_id=f"{prefix}-{i}") for i in range(n)]
    if op is ops.PUT_ITEMS:
        return [Item(item_id=f"{prefix}-{i}") for i in range(n)]
    if op is ops.PUT_USERS:
        return [User(user_id=f"{prefix}-{i}") for i in range(n)]
    if op is ops.PUT_ACTIONS:
        return [Action(action_id=f"{prefix}-{i}") for i in range(n)]
    return [
        ActionInteraction(
            action_id="a", session_id="s", timestamp=1_700_000_000, event_type="view", event_id=f"{prefix}-{i}"
        )
        for i in range(n)
    ]


def _record_id(op: ops.Operation, record: Any) -> str:
    name = {"eventId": "event_id", "itemId": "item_id", "userId": "user_id", "actionId": "action_id"}
    value: str = getattr(record, name[WIRE[op.name].record_id])
    return value


def _fixed(op: ops.Operation) -> dict[str, Any]:
    if op.resource_field == "dataset_arn":
        return {"dataset_arn": ARN}
    fixed: dict[str, Any] = {"tracking_id": TRACKER}
    if op is ops.PUT_EVENTS:
        fixed["session_id"] = "s"
    return fixed


def _stored(emu: Emulator, op: ops.Operation) -> list[str]:
    wire = WIRE[op.name]
    return [r[wire.record_id] for r in emu.records(wire.kind)]


async def _cancel_after(task: asyncio.Task[Any], delay: float) -> bool:
    """Cancel ``task`` after ``delay`` seconds; True when it was cancelled, False when it had finished."""
    await asyncio.sleep(delay)
    cancelled = task.cancel()
    # wait() rather than awaiting the task: a call that had already failed (say, throttled three times)
    # must not raise here; the caller reads its outcome
    done, _ = await asyncio.wait([task], timeout=HANG_GUARD)
    assert done, "the cancelled task did not end"
    return cancelled and task.cancelled()


def _faults(seed: int) -> Faults:
    return Faults(throttle=0.3, latency=0.01, seed=seed)
