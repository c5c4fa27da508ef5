"""The *_batched helpers' one path per record, with a list and with an async stream: each record
checked once, one request and one body per call, however many attempts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from _counting import counting

from aiopersonalize_events import ClientConfig, Credentials, Event, Item, PersonalizeEventsClient, _client, _shapes
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-one-path"
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of record checks (Event/Item construction, properties encoding), requests built, bodies encoded."""
    seen: Counter[str] = Counter()
    monkeypatch.setattr(_shapes.Event, "__init__", counting(seen, "Event", _shapes.Event.__init__))
    monkeypatch.setattr(_shapes, "to_properties", counting(seen, "properties", _shapes.to_properties))
    monkeypatch.setattr(_shapes.Item, "__init__", counting(seen, "Item", _shapes.Item.__init__))
    for request in (_shapes.PutEventsRequest, _shapes.PutItemsRequest):
        monkeypatch.setattr(request, "__init__", counting(seen, request.__name__, request.__init__))
    monkeypatch.setattr(_client, "dumps_wire", counting(seen, "body", _client.dumps_wire))
    return seen


@pytest.fixture
async def client(emulator: Emulator, retry_testing: None) -> AsyncIterator[PersonalizeEventsClient]:
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


async def test_batched_list(client: PersonalizeEventsClient, emulator: Emulator, counts: Counter[str]) -> None:
    """put_events_batched with a list of 95: 95 checks, 10 requests, 10 bodies."""
    events = _events(95)
    result = await client.put_events_batched(tracking_id=TRACKER, session_id="s", event_list=events)
    assert (result.sent, result.calls, result.failures) == (95, 10, ())
    assert _calls(emulator, "PutEvents") == 10
    assert counts == {"Event": 95, "properties": 95, "PutEventsRequest": 10, "body": 10}


async def test_batched_stream(client: PersonalizeEventsClient, emulator: Emulator, counts: Counter[str]) -> None:
    """put_items_batched with an async stream of 33 items: 33 checks, 4 requests, 4 bodies."""

    async def stream() -> AsyncIterator[Item]:
        for i in range(33):
            yield Item(item_id=f"sku-{i}", properties={"GENRE": "drama"})

    result = await client.put_items_batched(dataset_arn=ARN, items=stream(), requests_per_second=None)
    assert (result.sent, result.calls) == (33, 4)
    assert len(emulator.items(ARN)) == 33
    assert counts == {"Item": 33, "properties": 33, "PutItemsRequest": 4, "body": 4}
