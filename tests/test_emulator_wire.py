"""The emulator's own checks of the wire JSON: body parsing, types, nulls, unknown members, messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from test_emulator_support import ITEMS_ARN, TRACKING_ID, error_code, post_signed, valid

from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.emulator._answers import Refusal
from aiopersonalize_events.emulator._wire import WIRE, check_request, parse_body


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator accepting any well-formed signature."""
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for raw requests."""
    async with aiohttp.ClientSession() as raw:
        yield raw


def _refusal(operation: str, document: object) -> str:
    """The InvalidInputException message the emulator's check gives ``document``."""
    wire = WIRE[operation]
    body = json.dumps(document).encode()
    with pytest.raises(Refusal) as info:
        check_request(wire, wire.request(10), parse_body(body), len(body))
    assert (info.value.status, info.value.code) == (400, "InvalidInputException")
    return info.value.message


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"trackingId": }', b"\xff\xfe"])
async def test_malformed_body_is_invalid_input(emu: Emulator, session: aiohttp.ClientSession, body: bytes) -> None:
    """A body that is not JSON (or not UTF-8) gets 400 InvalidInputException, stores nothing."""
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/events", body)
    assert (status, error_code(headers)) == (400, "InvalidInputException")
    assert payload["message"].startswith("Could not parse the request body")
    assert emu.events() == []


async def test_body_over_the_size_cap_is_refused(session: aiohttp.ClientSession) -> None:
    """A body larger than max_body_bytes gets 413 with the service's error JSON, and nothing is stored."""
    async with Emulator(max_body_bytes=1000) as emu:
        request = valid("PutItems")
        request["items"][0]["properties"] = json.dumps({"a": "x" * 2000})
        status, headers, payload = await post_signed(session, emu.endpoint_url, "/items", request)
        assert (status, error_code(headers)) == (413, "RequestEntityTooLargeException")
        assert "1000 bytes" in payload["message"]
        assert emu.items() == []
        assert emu.calls == {("PutItems", 413): 1}


async def test_non_object_body_is_invalid_input(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A JSON body that is not an object gets 400 InvalidInputException."""
    status, headers, _ = await post_signed(session, emu.endpoint_url, "/items", [1, 2])
    assert (status, error_code(headers)) == (400, "InvalidInputException")


async def test_empty_body_names_every_required_member(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """An empty body is an empty object: each required member is reported null."""
    status, _, payload = await post_signed(session, emu.endpoint_url, "/events", b"")
    assert status == 400
    message = payload["message"]
    assert message.startswith("3 validation errors detected: ")
    for member in ("trackingId", "sessionId", "eventList"):
        assert f"Value null at '{member}' failed to satisfy constraint: Member must not be null" in message


def test_every_violation_is_listed() -> None:
    """Several violations are counted and listed, separated by '; '."""
    request = valid("PutActionInteractions")
    record = request["actionInteractions"][0]
    record["actionId"] = ""
    del record["eventType"]
    record["impression"] = ["a", None]
    message = _refusal("PutActionInteractions", request)
    assert message.startswith("3 validation errors detected: ")
    assert message.count("; ") == 2
    assert "Value at 'actionInteractions.1.member.actionId'" in message
    assert "Value null at 'actionInteractions.1.member.eventType'" in message
    assert "Value null at 'actionInteractions.1.member.impression.2.member'" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("sessionId",), 5, "Member must be a string, not a JSON number"),
        (("eventList", 0, "sentAt"), "2024-01-01T00:00:00Z", "seconds since the epoch, not a JSON string"),
        (("eventList", 0, "sentAt"), True, "not a JSON boolean"),
        (("eventList", 0, "eventValue"), "1.5", "Member must be a finite number, not a JSON string"),
        (("eventList", 0, "eventValue"), 10**400, "Member must be a finite number"),
        (("eventList", 0, "properties"), {"a": 1}, "string holding a JSON object, not a JSON object"),
        (("eventList", 0, "impression"), "item-1", "Member must be a list, not a JSON string"),
        (("eventList", 0, "metricAttribution"), "x", "Member must be a structure"),
        (("eventList", 0), "event", "Member must be a structure"),
        (("eventList",), {"eventType": "e"}, "Member must be a list, not a JSON object"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_wrong_json_types_are_refused(path: tuple[str | int, ...], value: Any, expected: str) -> None:
    """A member of the wrong JSON type is refused with a message naming it (no coercion)."""
    request = valid("PutEvents")
    target: Any = request
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert expected in _refusal("PutEvents", request)


async def test_json_nan_event_value_is_refused(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A bare NaN in the JSON for eventValue is refused as not finite."""
    body = json.dumps(valid("PutEvents")).replace("4.5", "NaN").encode()
    status, _, payload = await post_signed(session, emu.endpoint_url, "/events", body)
    assert status == 400
    assert (
        "eventList.1.member.eventValue' failed to satisfy constraint: Member must be a finite number"
        in (payload["message"])
    )


async def test_unknown_members_are_ignored_and_not_stored(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """Members the service does not know are accepted and left out of the stored record."""
    request = valid("PutEvents")
    request["extra"] = 1
    request["eventList"][0]["colour"] = "blue"
    request["eventList"][0]["metricAttribution"]["other"] = True
    status, _, _ = await post_signed(session, emu.endpoint_url, "/events", request)
    assert status == 200
    (event,) = emu.events()
    assert "colour" not in event
    assert "extra" not in event
    assert event["metricAttribution"] == {"eventAttributionSource": "email campaign"}


async def test_null_optional_members_are_absent(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """An optional member sent as JSON null is treated as absent, and userId is then not added."""
    request = valid("PutEvents")
    request["userId"] = None
    request["eventList"][0]["itemId"] = None
    status, _, _ = await post_signed(session, emu.endpoint_url, "/events", request)
    assert status == 200
    (event,) = emu.events(TRACKING_ID)
    assert "itemId" not in event
    assert "userId" not in event


def test_limits_at_the_edge_are_accepted() -> None:
    """Values exactly at each limit pass the checks."""
    events = valid("PutEvents")
    event = events["eventList"][0]
    event["eventType"] = "e" * 256
    event["recommendationId"] = "r" * 40
    event["impression"] = ["i" * 256] * 25
    event["properties"] = '{"a":"' + "x" * 1016 + '"}'
    event["metricAttribution"]["eventAttributionSource"] = " " + "s" * 1022 + " "
    events["eventList"] = [event] * 10
    wire = WIRE["PutEvents"]
    body = json.dumps(events).encode()
    assert check_request(wire, wire.request(10), parse_body(body), len(body)) == events
    items = {"datasetArn": ITEMS_ARN[:256], "items": [{"itemId": "i", "properties": '{"a":"' + "x" * 31992 + '"}'}]}
    body = json.dumps(items).encode()
    assert check_request(WIRE["PutItems"], WIRE["PutItems"].request(10), parse_body(body), len(body)) == items


def test_properties_keys_are_reserved_only_at_the_top_level() -> None:
    """Reserved keys are refused at the top of properties only, and only for events and action interactions."""
    events = valid("PutEvents")
    events["eventList"][0]["properties"] = '{"nested":{"userId":"u"},"Impression2":1}'
    wire = WIRE["PutEvents"]
    body = json.dumps(events).encode()
    check_request(wire, wire.request(10), parse_body(body), len(body))
    items = valid("PutItems")
    items["items"][0]["properties"] = '{"userId":"u","timestamp":1}'
    body = json.dumps(items).encode()
    check_request(WIRE["PutItems"], WIRE["PutItems"].request(10), parse_body(body), len(body))


def test_event_size_counts_utf8_bytes_of_compact_json() -> None:
    """The 10 KB per event is measured on the event's compact JSON in UTF-8 bytes."""
    events = valid("PutEvents")
    event = {"eventType": "e", "sentAt": 1, "impression": ["\u00e9" * 220] * 25}  # 5500 characters, 11000 bytes
    events["eventList"] = [event]
    assert "Member must be at most 10240 bytes of JSON" in _refusal("PutEvents", events)
    event["impression"] = ["e" * 220] * 25  # the same characters in ASCII fit
    wire = WIRE["PutEvents"]
    body = json.dumps(events).encode()
    check_request(wire, wire.request(10), parse_body(body), len(body))
