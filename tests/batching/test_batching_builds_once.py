"""The *_batched helpers' one path per record, with a list and with an async stream: each record
checked once, one request and one body per call, however many attempts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from _builds_once import TRACKER, _calls, _events, client_fixture, counts_fixture  # noqa: F401 (the fixtures client and counts: imported, pytest finds them)

from aiopersonalize_events import Item, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"


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
