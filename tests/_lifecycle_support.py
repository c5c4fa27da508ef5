"""Helpers shared by the client's and the recorder's lifecycle, re-send and set-up error tests: a client of the
emulator, numbered events, and a bounded wait for a condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

TRACKER = "tracker-r2"
HANG_GUARD = 20.0


def _client(emulator: Emulator, **config: Any) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDR2", "r2-secret"),
        config=ClientConfig(**config),
    )


def _event(n: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + n, event_id=f"e{n}")


async def until(condition: Callable[[], bool], what: str, turns: int = 2000) -> None:
    """Let the loop run (10 ms a turn, a bounded number of turns) until ``condition()`` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")
