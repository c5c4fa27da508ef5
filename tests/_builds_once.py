"""Fixtures and helpers shared by the builds-once tests (batching, client, recorder): a client that
retries, and counts of record checks, requests built and bodies encoded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from _counting import counting

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient, _call, _shapes
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-one-path"


@pytest.fixture(name="counts")
def counts_fixture(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of record checks (Event/Item construction, properties encoding), requests built, bodies encoded."""
    seen: Counter[str] = Counter()
    monkeypatch.setattr(_shapes.Event, "__init__", counting(seen, "Event", _shapes.Event.__init__))
    monkeypatch.setattr(_shapes, "to_properties", counting(seen, "properties", _shapes.to_properties))
    monkeypatch.setattr(_shapes.Item, "__init__", counting(seen, "Item", _shapes.Item.__init__))
    for request in (_shapes.PutEventsRequest, _shapes.PutItemsRequest):
        monkeypatch.setattr(request, "__init__", counting(seen, request.__name__, request.__init__))
    monkeypatch.setattr(_call, "dumps_wire", counting(seen, "body", _call.dumps_wire))
    return seen


@pytest.fixture(name="client")
async def client_fixture(emulator: Emulator, retry_testing: None) -> AsyncIterator[PersonalizeEventsClient]:
    emulator.faults = Faults(throttle=0.3, seed=5)  # retries: the same body is sent again
    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDONE", "one-secret"),
        config=ClientConfig(max_attempts=10, retry_budget=10**6),
    ) as c:
        yield c


def _events(n: int) -> list[Event]:
    now = datetime.now(timezone.utc)
    return [
        Event(event_type="click", sent_at=now, item_id=f"i{i}", properties={"page": "home", "n": i}) for i in range(n)
    ]


def _calls(emulator: Emulator, op: str) -> int:
    return sum(n for (name, status), n in emulator.calls.items() if name == op and status == 200)


def _attempts(emulator: Emulator, op: str) -> int:
    return sum(n for (name, _), n in emulator.calls.items() if name == op)
