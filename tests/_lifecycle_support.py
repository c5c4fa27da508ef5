"""Helpers shared by the client's and the recorder's lifecycle and re-send tests: a client of the
emulator, and numbered events.
"""

from __future__ import annotations

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
