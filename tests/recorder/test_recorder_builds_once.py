"""The recorder's one path per record: each event checked once, one request and one body per call,
however many attempts (faults make the client retry, which re-sends the same body).
"""

from __future__ import annotations

from collections import Counter

from _builds_once import TRACKER, _calls, _events, client_fixture, counts_fixture  # noqa: F401 (the fixtures client and counts: imported, pytest finds them)

from aiopersonalize_events import PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator


async def test_recorder(client: PersonalizeEventsClient, emulator: Emulator, counts: Counter[str]) -> None:
    """The recorder: 40 events of 2 sessions, checked once each; one request and one body per call."""
    async with client.event_recorder(tracking_id=TRACKER, flush_interval=60) as recorder:
        for i, event in enumerate(_events(40)):
            assert recorder.record(event, session_id=f"s{i % 2}")
        await recorder.flush()
    assert recorder.stats.sent == 40
    calls = _calls(emulator, "PutEvents")
    assert calls == 4
    assert counts == {"Event": 40, "properties": 40, "PutEventsRequest": calls, "body": calls}
