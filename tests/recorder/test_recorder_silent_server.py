"""A recorder whose server never answers hands every event to on_failure when close(timeout)
passes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _hostile_servers import (
    HANG_GUARD,
    _client,
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    never_answers,
    serving,
)


async def test_recorder_against_a_silent_server_fails_events_and_closes_in_time() -> None:
    """A recorder whose server never answers hands every event to on_failure when close(timeout) passes."""
    failed: list[int] = []
    async with serving(never_answers) as server, _client(server.url, max_attempts=1) as client:
        recorder = client.event_recorder(
            tracking_id="t",
            flush_interval=0.05,
            on_failure=lambda events, error: failed.append(len(events)),
        )
        async with recorder:
            for i in range(95):
                recorder.record(_event(i), session_id=f"s{i % 7}")
            await asyncio.sleep(0.1)
            await asyncio.wait_for(recorder.close(timeout=0.5), HANG_GUARD)
        stats = recorder.stats
    assert sum(failed) == 95
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (95, 0, 95, 0, 0)


def _event(i: int) -> Any:
    from aiopersonalize_events import Event

    return Event(event_type="click", sent_at=1_700_000_000 + i, event_id=f"e{i}")
