"""Cancelling a *_batched call at a random point cancels its calls and loses no record."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from _cancel_support import (
    CANCELS,
    _cancel_after,
    _client,
    _examples,
    _faults,
    _fixed,
    _record_id,
    _records,
    _stored,
    library_tasks,
)
from hypothesis import given
from hypothesis import strategies as st

from aiopersonalize_events import (
    ActionInteraction,
    Event,
)
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.emulator import Emulator


@CANCELS
@given(
    op=st.sampled_from(ops.OPERATIONS),
    n=st.integers(0, 60),
    concurrency=st.integers(1, 4),
    delay=st.floats(0, 0.1),
    stream=st.booleans(),
    seed=st.integers(0, 1000),
)
async def test_cancelling_a_batched_call_cancels_its_calls_and_loses_no_record(
    op: ops.Operation, n: int, concurrency: int, delay: float, stream: bool, seed: int
) -> None:
    """A *_batched call cancelled anywhere leaves no task behind; it stored a subset, and resending completes it."""
    prefix = f"b{next(_examples)}"
    records = _records(op, prefix, n)
    every = {_record_id(op, r) for r in records}

    async def lazily() -> Any:
        for record in records:
            yield record
            await asyncio.sleep(0)

    async with Emulator(faults=_faults(seed)) as emu, _client(emu) as client:
        method = getattr(client, f"{op.snake_name}_batched")
        source = lazily() if stream else records
        call = asyncio.create_task(
            method(**_fixed(op), **{op.record_field: source}, max_concurrency=concurrency, requests_per_second=None)
        )
        cancelled = await _cancel_after(call, delay)
        assert library_tasks() == []  # the calls in flight were cancelled and awaited
        stored = _stored(emu, op)
        assert set(stored) <= every
        assert len(stored) == len(set(stored))
        if not cancelled:
            result = call.result()
            assert result.sent + result.failed == n

        emu.faults = None
        result = await method(**_fixed(op), **{op.record_field: records}, requests_per_second=None)
        assert result.ok
        assert set(_stored(emu, op)) == every
        if op.record is Event or op.record is ActionInteraction:
            assert emu.duplicates == len(stored)  # resent ids de-duplicated, never stored twice
    gc.collect()
