"""The emulator's own checks of the wire JSON: body parsing, types, nulls, unknown members, messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import _limits_cases as C
import aiohttp
import pytest
from _emulator_support import TRACKING_ID, error_code, post_signed, valid

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


def _check(operation: str, document: object) -> dict[str, Any]:
    """The emulator's check of ``document`` sent as ``operation``'s JSON body (10 records a call, as the service)."""
    wire = WIRE[operation]
    body = json.dumps(document).encode()
    return check_request(wire, wire.request(10), parse_body(body), len(body))


def _refusal(operation: str, document: object) -> str:
    """The InvalidInputException message the emulator's check gives ``document``."""
    with pytest.raises(Refusal) as info:
        _check(operation, document)
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


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    "where",
    ['"eventValue": 4.5', '"sentAt": 1700000000', '"trackingId": "tracker-1"'],
    ids=["eventValue", "sentAt", "unknown-member"],
)
async def test_bare_nan_and_infinity_in_the_body_are_refused(
    emu: Emulator, session: aiohttp.ClientSession, constant: str, where: str
) -> None:
    """A bare NaN, Infinity or -Infinity anywhere in the body (even in a member it ignores) is not JSON: 400."""
    text = json.dumps(valid("PutEvents"))
    if where.startswith('"trackingId"'):
        text = text.replace(where, f'{where}, "extra": [{constant}]')
    else:
        text = text.replace(where, where.split(":")[0] + ": " + constant)
    assert constant in text
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/events", text.encode())
    assert (status, error_code(headers)) == (400, "InvalidInputException")
    assert payload["message"] == f"Could not parse the request body as JSON: {constant} is not JSON."
    assert emu.events() == []


def test_smithy_string_nan_event_value_is_refused_naming_the_member() -> None:
    """eventValue as the string "NaN" (how Smithy JSON protocols, so boto3, write it) is refused naming eventValue."""
    request = valid("PutEvents")
    request["eventList"][0]["eventValue"] = "NaN"
    message = _refusal("PutEvents", request)
    assert "Value at 'eventList.1.member.eventValue' failed to satisfy constraint: Member must be a finite number" in (
        message
    )


PROPERTIES_ROWS = C.by_kind("properties")


@pytest.mark.parametrize("text", ['{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":[1,{"b":NaN}]}'])
@pytest.mark.parametrize("row", PROPERTIES_ROWS, ids=lambda r: r.id)
def test_nan_and_infinity_inside_properties_text_are_refused(row: C.Limit, text: str) -> None:
    """properties holding NaN or an infinity (which Python's json takes, the service's does not): 400 naming it."""
    message = _refusal(row.operation, row.wire_request(text))
    constant = "-Infinity" if "-Infinity" in text else ("Infinity" if "Infinity" in text else "NaN")
    assert message == (
        f"1 validation error detected: Value at '{row.message_path}' failed to satisfy constraint: "
        f"Member must be the text of a JSON object, and {constant} is not JSON"
    )


@pytest.mark.parametrize("row", PROPERTIES_ROWS, ids=lambda r: r.id)
def test_out_of_range_numbers_and_nan_strings_in_properties_are_json(row: C.Limit) -> None:
    """1e400 and the string "NaN" are valid JSON text: the emulator takes them, as the client's shapes do."""
    for text in ('{"a":1e400}', '{"a":"NaN","b":"Infinity"}'):
        request = row.wire_request(text)
        assert _check(row.operation, request) == request


async def test_nan_in_properties_over_http_stores_nothing(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A PutItems call whose properties hold NaN gets 400 InvalidInputException and stores nothing."""
    row = C.limit("Item", "properties")
    status, headers, payload = await post_signed(session, emu.endpoint_url, "/items", row.wire_request('{"n":NaN}'))
    assert (status, error_code(headers)) == (400, "InvalidInputException")
    assert "'items.1.member.properties'" in payload["message"]
    assert emu.items() == []


# -- lone surrogates -----------------------------------------------------------------------------------------

STRING_ROWS = C.by_kind("text", "entry", "properties")


def _with_surrogate(row: C.Limit) -> Any:
    if row.kind == "properties":
        return '{"a":"\ud800"}'
    if row.kind == "entry":
        return ["ok", "a\udfff"]
    return row.sample[:-1] + "\ud800"  # keeps an ARN's or a source's pattern otherwise matched


def _surrogate_path(row: C.Limit) -> str:
    return row.message_path.replace("impression.1.member", "impression.2.member")


@pytest.mark.parametrize("row", STRING_ROWS, ids=lambda r: r.id)
def test_lone_surrogate_in_every_string_member_is_refused(row: C.Limit) -> None:
    """A string member (id, ARN, impression entry, source, properties text) holding a lone surrogate: 400 naming it."""
    message = _refusal(row.operation, row.wire_request(_with_surrogate(row)))
    assert message == (
        f"1 validation error detected: Value at '{_surrogate_path(row)}' failed to satisfy constraint: "
        "Member must be valid Unicode text, without a lone surrogate (U+D800 to U+DFFF)"
    )


async def test_escaped_lone_surrogates_in_the_body_are_refused(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """The JSON escape "\\ud800" in the body, for each string member of each operation: 400, nothing stored."""
    for row in STRING_ROWS:
        body = json.dumps(row.wire_request(_with_surrogate(row))).encode()  # ASCII, with \ud800 escapes
        assert b"\\ud800" in body or b"\\udfff" in body
        path = C.VALID[row.operation]
        status, headers, payload = await post_signed(session, emu.endpoint_url, _PATHS[row.operation], body)
        assert (status, error_code(headers)) == (400, "InvalidInputException"), (row.id, path)
        assert f"'{_surrogate_path(row)}'" in payload["message"]
        assert "lone surrogate" in payload["message"]
    assert emu.events() == emu.items() == emu.users() == emu.actions() == emu.action_interactions() == []


async def test_surrogate_pairs_and_escapes_inside_properties_text_are_accepted(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """An escaped pair (a whole emoji) is fine; so is the six-character escape \\ud800 inside properties' own text."""
    request = valid("PutItems")
    request["items"][0]["itemId"] = "item-\U0001f44d"
    request["items"][0]["properties"] = '{"a":"\\ud800"}'
    body = json.dumps(request).encode()
    assert b"\\ud83d\\udc4d" in body
    status, _, _ = await post_signed(session, emu.endpoint_url, "/items", body)
    assert status == 200
    (item,) = emu.items()
    assert item["itemId"] == "item-\U0001f44d"
    assert item["properties"] == '{"a":"\\ud800"}'


_PATHS = {"PutEvents": "/events", "PutItems": "/items", "PutUsers": "/users", "PutActions": "/actions"}
_PATHS["PutActionInteractions"] = "/action-interactions"


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


# -- the limits table: every member at each edge, against the service model's literal numbers ------------------


def test_limits_table_covers_every_length_checked_member_of_the_emulator() -> None:
    """Each member the emulator checks a length of has a row in the limits table, with the same maximum."""
    from aiopersonalize_events.emulator._wire import JsonObjectText, StructList, Text, TextList

    table = {(row.operation, row.wire_path, row.kind): row.maximum for row in C.LIMITS}
    found: dict[tuple[str, tuple[str | int, ...], str], int] = {}

    def walk(operation: str, member: object, path: tuple[str | int, ...]) -> None:
        if isinstance(member, Text):
            found[(operation, path, "text")] = member.maximum
        elif isinstance(member, JsonObjectText):
            found[(operation, path, "properties")] = member.maximum
        elif isinstance(member, TextList):
            found[(operation, path, "list")] = member.maximum
            found[(operation, path, "entry")] = member.entry.maximum
        elif isinstance(member, StructList):
            found[(operation, path, "records")] = member.maximum
            for name, inner in member.entry.members.items():
                walk(operation, inner, (*path, 0, name))
        elif hasattr(member, "members"):
            for name, inner in member.members.items():  # a nested structure (metricAttribution)
                walk(operation, inner, (*path, name))

    for operation, wire in WIRE.items():
        for name, member in wire.request(10).members.items():
            walk(operation, member, (name,))
    assert found == table


@pytest.mark.parametrize("row", C.LIMITS, ids=lambda r: r.id)
def test_each_limit_accepts_values_at_its_edges(row: C.Limit) -> None:
    """The shortest valid value and one of exactly the service's maximum pass the emulator's check, unchanged."""
    for n in row.accepted_sizes():
        request = row.wire_request(row.value(n))
        assert _check(row.operation, request) == request, n


@pytest.mark.parametrize("row", C.LIMITS, ids=lambda r: r.id)
def test_each_limit_refuses_values_just_past_its_edges(row: C.Limit) -> None:
    """One past the service's maximum (and one under its minimum): InvalidInputException naming the member."""
    for n in row.refused_sizes():
        message = _refusal(row.operation, row.wire_request(row.value(n)))
        if n > row.maximum:
            constraint = f"Member must have length less than or equal to {row.maximum}"
        else:
            constraint = f"Member must have length greater than or equal to {row.minimum}"
        expected = f"Value at '{row.message_path}' failed to satisfy constraint: {constraint}"
        assert message == f"1 validation error detected: {expected}", n


def test_members_at_their_maximum_together_are_accepted() -> None:
    """Several members at the service's maximum in one record, ten such records a call, pass the checks."""
    rows = [C.limit("Event", m) for m in ("event_type", "recommendation_id", "properties")]
    rows.append(C.limit("MetricAttribution", "event_attribution_source"))
    events = C.VALID["PutEvents"]
    for row in rows:
        events = C.set_at(events, row.wire_path, row.value(row.maximum))
    impression = C.limit("Event", "impression")
    entry = C.limit("Event", "impression[]").value(256)[0]
    events = C.set_at(events, impression.wire_path, [entry] * impression.maximum)
    events = C.set_at(events, ("eventList",), events["eventList"] * C.limit("PutEventsRequest", "event_list").maximum)
    assert _check("PutEvents", events) == events
    items = C.VALID["PutItems"]
    for row in (C.limit("PutItemsRequest", "dataset_arn"), C.limit("Item", "properties")):
        items = C.set_at(items, row.wire_path, row.value(row.maximum))
    assert _check("PutItems", items) == items


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
