"""serde.from_wire takes the dicts boto3 users already have, and names a member it does not know."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aiopersonalize_events import (
    ActionInteraction,
    Event,
    ValidationError,
)
from aiopersonalize_events.serde import from_wire, to_wire

# --- boto3's dicts ------------------------------------------------------------------------------------------------


def test_from_wire_takes_boto3_put_events_dicts() -> None:
    """An eventList entry written for boto3 (sentAt a datetime, properties a JSON string) becomes an Event."""
    boto3_event = {
        "eventId": "e-1",
        "eventType": "click",
        "sentAt": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        "itemId": "sku-1",
        "eventValue": 4.5,
        "properties": '{"numberOfRatings": "12"}',
        "recommendationId": "r-1",
        "impression": ["sku-1", "sku-2"],
        "metricAttribution": {"eventAttributionSource": "newsletter"},
    }
    event = from_wire(Event, boto3_event)
    assert event.sent_at == 1714564800
    wire = to_wire(event)
    assert wire == {**boto3_event, "sentAt": 1714564800}
    naive = from_wire(Event, {"eventType": "click", "sentAt": datetime(2024, 5, 1, 12, 0)})  # boto3 takes it as UTC
    assert naive.sent_at == 1714564800


def test_from_wire_takes_boto3_action_interaction_dicts() -> None:
    """An actionInteractions entry written for boto3 (timestamp a datetime) becomes an ActionInteraction."""
    entry = {
        "actionId": "a1",
        "sessionId": "s1",
        "userId": "u1",
        "eventType": "Taken",
        "timestamp": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
    }
    assert to_wire(from_wire(ActionInteraction, entry))["timestamp"] == 1714564800


def test_from_wire_names_a_boto3_member_it_does_not_know() -> None:
    """A request member put inside an event by mistake (boto3 would refuse it too) is named."""
    with pytest.raises(ValidationError) as info:
        from_wire(Event, {"eventType": "click", "sentAt": 1, "sessionId": "s1"})
    assert info.value.path == "sessionId"
