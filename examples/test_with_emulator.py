"""Testing your own code against the emulator, with the pytest fixtures this package installs.

Installing aiopersonalize-events registers a pytest plugin with two fixtures
(they need pytest-asyncio, in strict or auto mode, or anyio's pytest plugin
with ``@pytest.mark.anyio``):

- ``personalize_emulator``: a running emulator on 127.0.0.1, fresh for each test;
- ``personalize_client``: a ``PersonalizeEventsClient`` bound to it.

Override ``personalize_emulator_options`` (a dict of ``Emulator`` keyword
arguments) to inject faults, verify credentials or register resources, as the
classes below do. This example always runs against the emulator the fixture
starts (so it takes no ``--endpoint-url``); that is its point.

    pytest examples/test_with_emulator.py
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest

from aiopersonalize_events import BatchError, Event, Item, PersonalizeEventsClient, ResourceNotFoundException
from aiopersonalize_events.emulator import Emulator, Faults

pytestmark = pytest.mark.asyncio  # not needed with asyncio_mode = "auto", harmless with it

TRACKER = "signup-tracker"
ITEMS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


# -- the code under test: in your project it lives in your package ------------------------------------------------


async def record_signup(client: PersonalizeEventsClient, *, user_id: str, session_id: str) -> None:
    """Tell Personalize that ``user_id`` signed up (the event id makes a resend harmless)."""
    event = Event(event_type="signup", sent_at=time.time(), event_id=f"signup-{user_id}")
    await client.put_events(tracking_id=TRACKER, session_id=session_id, user_id=user_id, event_list=[event])


async def publish_catalog(client: PersonalizeEventsClient, products: Iterable[dict[str, Any]]) -> int:
    """Upsert products into the Items dataset; raise if any was refused; return how many were sent."""
    items = (Item(item_id=p["sku"], properties={"PRICE": p["price"]}) for p in products)
    result = await client.put_items_batched(dataset_arn=ITEMS_ARN, items=items, requests_per_second=None)
    result.raise_for_failures()
    return result.sent


# -- the tests ------------------------------------------------------------------------------------------------------


async def test_signup_is_recorded(personalize_client: PersonalizeEventsClient, personalize_emulator: Emulator) -> None:
    """The signup event reaches the service with its session and user."""
    await record_signup(personalize_client, user_id="u1", session_id="s1")
    [event] = personalize_emulator.events(TRACKER)
    assert event["eventType"] == "signup"
    assert (event["sessionId"], event["userId"]) == ("s1", "u1")


async def test_catalog_is_published_in_calls_of_ten(
    personalize_client: PersonalizeEventsClient, personalize_emulator: Emulator
) -> None:
    """25 products are upserted in three PutItems calls."""
    products = [{"sku": f"sku-{i}", "price": 10 + i} for i in range(25)]
    assert await publish_catalog(personalize_client, products) == 25
    assert len(personalize_emulator.items(ITEMS_ARN)) == 25
    assert personalize_emulator.calls[("PutItems", 200)] == 3


class TestWhenTheServiceThrottles:
    """The same code, with a third of the calls throttled by the emulator."""

    @pytest.fixture
    def personalize_emulator_options(self) -> dict[str, Any]:
        return {"faults": Faults(throttle=0.3, seed=11)}

    async def test_retries_deliver_every_signup(
        self, personalize_client: PersonalizeEventsClient, personalize_emulator: Emulator
    ) -> None:
        """The client retries throttled calls with backoff; every signup arrives exactly once."""
        for i in range(8):
            await record_signup(personalize_client, user_id=f"u{i}", session_id=f"s{i}")
        assert len(personalize_emulator.events(TRACKER)) == 8
        assert personalize_emulator.calls[("PutEvents", 400)] > 0  # some calls were throttled, then retried


class TestWithAnUnknownDataset:
    """Register the resources that exist: any other gets ResourceNotFoundException, as from the service."""

    @pytest.fixture
    def personalize_emulator_options(self) -> dict[str, Any]:
        return {"dataset_arns": ["arn:aws:personalize:us-east-1:123456789012:dataset/other/ITEMS"]}

    async def test_publishing_to_a_missing_dataset_fails(self, personalize_client: PersonalizeEventsClient) -> None:
        """The refusal surfaces as a typed error carrying the service's code and status."""
        with pytest.raises(BatchError) as info:  # raise_for_failures(): its result holds each failure
            await publish_catalog(personalize_client, [{"sku": "sku-1", "price": 1}])
        error = info.value.result.failures[0].error
        assert isinstance(error, ResourceNotFoundException)
        assert error.http_status == 404
