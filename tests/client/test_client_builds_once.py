"""One path per record on a direct call: each record checked once (when made), each request built
once and each body encoded once, however many attempts (faults make the client retry).
"""

from __future__ import annotations

from collections import Counter

from _builds_once import TRACKER, _attempts, _events, client_fixture, counts_fixture  # noqa: F401 (the fixtures client and counts: imported, pytest finds them)

from aiopersonalize_events import PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator


async def test_direct_call(client: PersonalizeEventsClient, emulator: Emulator, counts: Counter[str]) -> None:
    """put_events: each event checked once (when made), one request, one body, however many attempts."""
    for _ in range(8):
        await client.put_events(tracking_id=TRACKER, session_id="s", event_list=_events(10))
    assert _attempts(emulator, "PutEvents") > 8  # some calls were retried
    assert counts == {"Event": 80, "properties": 80, "PutEventsRequest": 8, "body": 8}
