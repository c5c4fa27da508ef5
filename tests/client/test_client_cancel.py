"""Cancelling a put_* call at a random point loses nothing and leaves the client usable."""

from __future__ import annotations

import asyncio
import contextlib
import gc

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
    PersonalizeEventsError,
)
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.emulator import Emulator


@CANCELS
@given(
    op=st.sampled_from(ops.OPERATIONS),
    n=st.integers(1, 10),
    delay=st.floats(0, 0.08),
    seed=st.integers(0, 1000),
)
async def test_cancelling_a_put_call_loses_nothing_and_leaves_the_client_usable(
    op: ops.Operation, n: int, delay: float, seed: int
) -> None:
    """A put_* call cancelled at any point stores all of its records or none, and the client keeps working."""
    prefix = f"p{next(_examples)}"
    records = _records(op, prefix, n)
    async with Emulator(faults=_faults(seed)) as emu, _client(emu) as client:
        method = getattr(client, op.snake_name)
        call = asyncio.create_task(method(**_fixed(op), **{op.record_field: records}))
        cancelled = await _cancel_after(call, delay)
        if not cancelled:
            with contextlib.suppress(PersonalizeEventsError):
                call.result()
        assert library_tasks() == []
        stored = set(_stored(emu, op))
        assert stored in (set(), {_record_id(op, r) for r in records})  # a call is all or nothing

        emu.faults = None
        again = _records(op, prefix + "-again", 2)
        meta = await method(**_fixed(op), **{op.record_field: again})
        assert meta.http_status == 200
        assert {_record_id(op, r) for r in again} <= set(_stored(emu, op))
    gc.collect()
