"""Helpers shared by the outage tests of the client and the recorder: retries at once, a client of
the emulator, numbered events, and the count of calls the emulator saw.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

TRACKER = "tracker-outage"
HANG_GUARD = 60.0


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
