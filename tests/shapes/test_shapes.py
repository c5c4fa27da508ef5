"""The shapes enforce every service limit exactly, normalise their values once, and stay quiet in repr.

The length limits come from the shared table in ``tests/_limits_cases.py``
(the emulator's and the hostile-input tests loop over the same rows).
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

import _limits_cases as C
import attrs
import pytest

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    Event,
    Item,
    MetricAttribution,
    PutActionInteractionsRequest,
    PutActionsRequest,
    PutEventsRequest,
    PutItemsRequest,
    PutUsersRequest,
    User,
    ValidationError,
)
from aiopersonalize_events import _limits as L
from aiopersonalize_events.serde import from_wire, to_wire

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/dsg/ITEMS"


def event(**kw: Any) -> Event:
    kw.setdefault("event_type", "click")
    kw.setdefault("sent_at", 1_700_000_000)
    return Event(**kw)


def interaction(**kw: Any) -> ActionInteraction:
    kw.setdefault("action_id", "a1")
    kw.setdefault("session_id", "s1")
    kw.setdefault("timestamp", 1_700_000_000)
    kw.setdefault("event_type", "watch")
    return ActionInteraction(**kw)


def props_of_length(n: int, char: str = "x") -> dict[str, str]:
    """A mapping whose compact JSON is exactly ``n`` characters long (n >= 8)."""
    mapping = {"k": char * (n - 8)}  # {"k":""} is 8 characters
    assert len(json.dumps(mapping, separators=(",", ":"), ensure_ascii=False)) == n
    return mapping


def refused(path: str) -> Any:
    """pytest.raises for a ValidationError whose path is exactly ``path``."""
    return pytest.raises(ValidationError, match="^" + re.escape(path) + ": ")


# --- a builder per shape, taking one member to set ----------------------------------------------

RECORD_BUILDERS: dict[str, Any] = {
    "Event": event,
    "Item": lambda **kw: Item(**{"item_id": "i1", **kw}),
    "User": lambda **kw: User(**{"user_id": "u1", **kw}),
    "Action": lambda **kw: Action(**{"action_id": "a1", **kw}),
    "ActionInteraction": interaction,
}

# the records a request of each shape takes, one fresh valid record per call
REQUEST_RECORDS: dict[str, Any] = {
    "PutEventsRequest": event,
    "PutItemsRequest": lambda: Item(item_id="i"),
    "PutUsersRequest": lambda: User(user_id="u"),
    "PutActionsRequest": lambda: Action(action_id="a"),
    "PutActionInteractionsRequest": interaction,
}

SHAPE_BUILDERS: dict[str, Any] = {
    **RECORD_BUILDERS,
    "MetricAttribution": lambda **kw: MetricAttribution(**{"event_attribution_source": "email", **kw}),
    "PutEventsRequest": lambda **kw: PutEventsRequest(
        **{"tracking_id": "t", "session_id": "s", "event_list": [event()], **kw}
    ),
    "PutItemsRequest": lambda **kw: PutItemsRequest(**{"dataset_arn": ARN, "items": [Item(item_id="i")], **kw}),
    "PutUsersRequest": lambda **kw: PutUsersRequest(**{"dataset_arn": ARN, "users": [User(user_id="u")], **kw}),
    "PutActionsRequest": lambda **kw: PutActionsRequest(
        **{"dataset_arn": ARN, "actions": [Action(action_id="a")], **kw}
    ),
    "PutActionInteractionsRequest": lambda **kw: PutActionInteractionsRequest(
        **{"tracking_id": "t", "action_interactions": [interaction()], **kw}
    ),
}


# --- every length limit of the shared table (tests/_limits_cases.py), at N and N+1 -------------


def _attribute(row: C.Limit) -> str:
    return row.member.removesuffix("[]")


def client_value(row: C.Limit, n: int) -> Any:
    """A value of ``row``'s member of size ``n`` as a caller passes it (records as shapes)."""
    if row.kind == "records":
        return [REQUEST_RECORDS[row.shape]() for _ in range(n)]
    return row.value(n)


def build_with(row: C.Limit, value: Any) -> Any:
    """The shape of ``row`` with its member set to ``value``."""
    return SHAPE_BUILDERS[row.shape](**{_attribute(row): value})


def test_limits_table_numbers_are_the_library_constants() -> None:
    """Each literal number of the table (the service model's) is the one _limits holds for the client."""
    for row in C.LIMITS:
        assert row.constant is not None, row.id
        assert getattr(L, row.constant) == row.maximum, row.id
        assert row.client_maximum == row.maximum
    assert L.EVENT_MAX_BYTES == C.EVENT_MAX_BYTES


def test_limits_table_covers_every_shape_member_with_a_length() -> None:
    """The table has a row for every str, properties, impression and record-list member of every shape."""
    rows = {(row.shape, _attribute(row)) for row in C.LIMITS}
    lengthy = {"properties", "impression"} | {row.member for row in C.by_kind("records")}
    for name, build in SHAPE_BUILDERS.items():
        for field in attrs.fields(type(build())):
            text = "str" in str(field.type) and "float" not in str(field.type)
            if text or field.name in lengthy:
                assert (name, field.name) in rows, (name, field.name)


@pytest.mark.parametrize("row", C.LIMITS, ids=lambda r: r.id)
def test_each_limit_accepts_its_shortest_and_its_maximum(row: C.Limit) -> None:
    """At the shortest valid size and at exactly the maximum the member is accepted and kept (lists as tuples)."""
    for n in row.accepted_sizes(row.client_maximum):
        value = client_value(row, n)
        kept = getattr(build_with(row, value), _attribute(row))
        assert kept == (tuple(value) if isinstance(value, list) else value), n


@pytest.mark.parametrize("row", [r for r in C.by_kind("text", "entry") if r.pattern is None], ids=lambda r: r.id)
def test_each_text_limit_counts_characters_not_bytes(row: C.Limit) -> None:
    """A maximum-length text of two-byte characters is accepted and kept (patterns aside, which want ASCII)."""
    text = "\u00e9" * row.client_maximum
    value = [text] if row.kind == "entry" else text
    kept = getattr(build_with(row, value), _attribute(row))
    assert kept == ((text,) if row.kind == "entry" else text)


@pytest.mark.parametrize("row", C.LIMITS, ids=lambda r: r.id)
def test_each_limit_refuses_one_past_its_maximum_and_one_under_its_minimum(row: C.Limit) -> None:
    """Size N+1 (and minimum - 1) raises ValidationError whose path names the member."""
    for n in row.refused_sizes(row.client_maximum):
        with refused(row.client_path):
            build_with(row, client_value(row, n))


@pytest.mark.parametrize("row", C.by_kind("text"), ids=lambda r: r.id)
def test_text_members_refuse_non_strings(row: C.Limit) -> None:
    """A text member given something that is not a str raises ValidationError naming it."""
    with refused(row.client_path):
        build_with(row, 12345)


def test_lone_surrogate_in_an_id_is_refused() -> None:
    """An id that cannot be encoded as UTF-8 is refused before it could break the request."""
    with refused("event_type"):
        event(event_type="a\ud800")


# --- impression -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["Event", "ActionInteraction"])
def test_impression_entries_are_named_by_their_index(shape: str) -> None:
    """A bad impression entry is named by its index: too long, or not a str."""
    build = RECORD_BUILDERS[shape]
    too_long = C.limit(shape, "impression[]").client_maximum + 1
    assert build(impression=["only"]).impression == ("only",)
    with refused("impression[1]"):
        build(impression=["ok", "x" * too_long])
    with refused("impression[2]"):
        build(impression=["a", "b", 3])


def test_impression_must_be_a_sequence_not_a_string() -> None:
    """A bare string is not taken as a list of its characters."""
    with refused("impression"):
        event(impression="abc")
    with refused("impression"):
        event(impression=5)


# --- record counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("row", C.by_kind("records"), ids=lambda r: r.id)
def test_request_records_become_a_tuple(row: C.Limit) -> None:
    """The record list is stored as a tuple, so a request cannot change after validation."""
    assert isinstance(getattr(build_with(row, client_value(row, 3)), row.member), tuple)


def test_records_of_the_wrong_shape_are_named_by_index() -> None:
    """A record of the wrong class in a request is named by its index."""
    with refused("items[1]"):
        PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="i"), User(user_id="u")])  # type: ignore[list-item]
    with refused("event_list"):
        PutEventsRequest(tracking_id="t", session_id="s", event_list="not a list")  # type: ignore[arg-type]


def test_records_may_come_from_any_iterable() -> None:
    """A generator of records is accepted as the record list."""
    request = PutUsersRequest(dataset_arn=ARN, users=(User(user_id=str(n)) for n in range(3)))
    assert [u.user_id for u in request.users] == ["0", "1", "2"]


# --- dataset ARN ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        ARN,
        "arn:aws-cn:personalize:cn-north-1:123456789012:dataset/x/USERS",
        "arn:aws-us-gov:personalize:us-gov-west-1:123456789012:dataset/x/ACTIONS",
        "arn:aws:personalize:::x",
    ],
)
def test_dataset_arn_matching_the_service_pattern_is_accepted(arn: str) -> None:
    """Dataset ARNs of every partition match the service's pattern."""
    assert PutItemsRequest(dataset_arn=arn, items=[Item(item_id="i")]).dataset_arn == arn
    assert PutUsersRequest(dataset_arn=arn, users=[User(user_id="u")]).dataset_arn == arn
    assert PutActionsRequest(dataset_arn=arn, actions=[Action(action_id="a")]).dataset_arn == arn


@pytest.mark.parametrize(
    "arn",
    ["", "not-an-arn", "arn:aws:s3:::bucket", "arn:AWS:personalize:us-east-1:1:x", "arn:aws:personalize:us-east-1:1:"],
)
def test_dataset_arn_not_matching_the_pattern_is_refused(arn: str) -> None:
    """A string that is not a Personalize ARN raises ValidationError naming dataset_arn."""
    with refused("dataset_arn"):
        PutItemsRequest(dataset_arn=arn, items=[Item(item_id="i")])


# --- eventAttributionSource -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["x", " padded ", "~!@#$%^&*()_+{}|:<>?", "a b"])
def test_attribution_source_accepts_printable_ascii(source: str) -> None:
    """Printable ASCII that is not blank is accepted (its length limit: the table tests above)."""
    assert MetricAttribution(event_attribution_source=source).event_attribution_source == source


@pytest.mark.parametrize(
    "source",
    ["", " ", "   ", "caf\u00e9", "tab\there", "line\n", "\nline", "nul\x00", "del\x7f", "\u3042"],
)
def test_attribution_source_refuses_blank_or_non_printable(source: str) -> None:
    """Blank, non-ASCII or control characters (even a final newline) are refused."""
    with refused("event_attribution_source"):
        MetricAttribution(event_attribution_source=source)


def test_metric_attribution_must_be_the_shape() -> None:
    """Event.metric_attribution refuses anything but a MetricAttribution."""
    with refused("metric_attribution"):
        event(metric_attribution={"eventAttributionSource": "x"})


# --- properties -------------------------------------------------------------------------------

PROPERTY_ROWS = C.by_kind("properties")


@pytest.mark.parametrize("row", PROPERTY_ROWS, ids=lambda r: r.id)
def test_properties_accept_exactly_their_maximum_as_a_mapping_or_a_string(row: C.Limit) -> None:
    """Compact JSON of exactly the maximum length is accepted, as a mapping or as a string."""
    mapping = props_of_length(row.client_maximum)
    text = json.dumps(mapping, separators=(",", ":"))
    assert build_with(row, mapping).properties == text
    assert build_with(row, text).properties == text


@pytest.mark.parametrize("row", PROPERTY_ROWS, ids=lambda r: r.id)
def test_properties_refuse_one_past_their_maximum_as_a_mapping_or_a_string(row: C.Limit) -> None:
    """Compact JSON one character over the maximum raises ValidationError naming properties."""
    mapping = props_of_length(row.client_maximum + 1)
    with refused("properties"):
        build_with(row, mapping)
    with refused("properties"):
        build_with(row, json.dumps(mapping, separators=(",", ":")))


@pytest.mark.parametrize("row", PROPERTY_ROWS, ids=lambda r: r.id)
def test_properties_length_counts_characters_not_bytes(row: C.Limit) -> None:
    """The maximum in non-ASCII characters (far more UTF-8 bytes) fits; one more character does not."""
    mapping = props_of_length(row.client_maximum, char="\u00e9")
    assert len(build_with(row, mapping).properties or "") == row.client_maximum
    with refused("properties"):
        build_with(row, props_of_length(row.client_maximum + 1, char="\u00e9"))


def test_mapping_properties_are_encoded_compactly_without_ascii_escapes() -> None:
    """A mapping becomes compact JSON text, keeping non-ASCII characters as they are."""
    record = event(properties={"color": "bleu fonc\u00e9", "n": 1, "tags": ["a", "b"], "x": None, "ok": True})
    assert record.properties == '{"color":"bleu fonc\u00e9","n":1,"tags":["a","b"],"x":null,"ok":true}'


def test_mapping_properties_are_encoded_exactly_once() -> None:
    """On the wire properties is a string holding the object, not a string holding a string."""
    record = Item(item_id="i", properties={"genre": "jazz"})
    assert record.properties == '{"genre":"jazz"}'
    wire = json.loads(json.dumps(to_wire(record)))
    assert json.loads(wire["properties"]) == {"genre": "jazz"}


def test_json_object_string_properties_are_kept_as_given() -> None:
    """A string that holds a JSON object is sent exactly as the caller wrote it."""
    text = '{ "genre" : "jazz",\n "n": 1 }'
    assert Item(item_id="i", properties=text).properties == text


def test_an_empty_object_is_valid_properties() -> None:
    """{} is valid properties (two characters of JSON)."""
    assert event(properties={}).properties == "{}"
    assert event(properties="{}").properties == "{}"


@pytest.mark.parametrize(
    "value",
    [
        "[1, 2]",
        '"text"',
        "42",
        "null",
        "",
        "{not json}",
        '{"a": 1',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        "[" * 100_000,
        '{"a":' * 100_000,
    ],
)
def test_properties_strings_that_are_not_a_json_object_are_refused(value: str) -> None:
    """A string that is not exactly a JSON object (arrays, scalars, NaN, garbage, deep nesting) is refused."""
    for build in RECORD_BUILDERS.values():
        with refused("properties"):
            build(properties=value)


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        child: dict[str, Any] = {}
        node["a"] = child
        node = child
    return root


def _circular() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


@pytest.mark.parametrize(
    "value",
    [
        {1: "a"},
        {("tuple",): "a"},
        {"a": math.nan},
        {"a": math.inf},
        {"a": [1, -math.inf]},
        {"a": object()},
        {"a": {1, 2}},
        {"a": b"bytes"},
        {"a": datetime(2024, 1, 1)},
        {"a": "lone \ud800 surrogate"},
        {"lone \udfff key": 1},
        _deep(100_000),
        _circular(),
        ["not", "a", "mapping"],
        42,
        b'{"a": 1}',
    ],
    ids=lambda v: type(v).__name__,
)
def test_properties_that_cannot_be_json_objects_are_refused(value: Any) -> None:
    """Non-str keys, NaN, unserialisable values, lone surrogates, deep nesting and non-mappings are refused."""
    for build in RECORD_BUILDERS.values():
        with refused("properties"):
            build(properties=value)


def test_lone_surrogate_in_a_properties_string_is_refused() -> None:
    """A properties string that cannot be encoded as UTF-8 is refused."""
    with refused("properties"):
        Item(item_id="i", properties='{"a":"\ud800"}')


RESERVED = ["userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression"]


@pytest.mark.parametrize("key", [*RESERVED, "USERID", "userid", "SessionID", "TimeStamp", "IMPRESSION"])
@pytest.mark.parametrize("shape", ["Event", "ActionInteraction"])
def test_reserved_keys_are_refused_in_interaction_properties_in_any_case(shape: str, key: str) -> None:
    """The service's reserved keys are refused in event and action interaction properties, in any case."""
    with refused("properties"):
        RECORD_BUILDERS[shape](properties={key: "x"})
    with refused("properties"):
        RECORD_BUILDERS[shape](properties=json.dumps({"other": 1, key: "x"}))


@pytest.mark.parametrize("key", RESERVED)
@pytest.mark.parametrize("shape", ["Item", "User", "Action"])
def test_reserved_keys_are_allowed_in_catalog_properties(shape: str, key: str) -> None:
    """Items, users and actions may use the keys reserved for events."""
    assert RECORD_BUILDERS[shape](properties={key: "x"}).properties == json.dumps({key: "x"}, separators=(",", ":"))


def test_reserved_keys_are_only_checked_at_the_top_level() -> None:
    """A reserved name nested inside a value is ordinary data."""
    assert event(properties={"meta": {"userId": 1}}).properties == '{"meta":{"userId":1}}'


# --- event size and event value -----------------------------------------------------------------


def _wire_size(e: Event) -> int:
    return len(json.dumps(to_wire(e), separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def event_of_size(size: int) -> Event:
    """An event whose wire JSON is exactly ``size`` UTF-8 bytes (multi-byte characters included)."""
    impression = ["\u00e9" * 256] * 19  # about 515 bytes each on the wire

    def build(id_chars: int) -> Event:
        first = min(id_chars, 256)
        return event(impression=impression, event_id="e" * first, item_id="i" * (id_chars - first + 1))

    missing = size - _wire_size(build(1))
    assert 0 <= missing <= 500
    result = build(1 + missing)
    assert _wire_size(result) == size
    return result


def test_an_event_of_exactly_10_kb_is_accepted() -> None:
    """An event whose wire JSON is exactly 10240 bytes is accepted in a PutEventsRequest."""
    big = event_of_size(10 * 1024)
    request = PutEventsRequest(tracking_id="t", session_id="s", event_list=[event(), big])
    assert request.event_list[1] is big


def test_an_event_over_10_kb_is_refused_where_it_is_made() -> None:
    """An event of 10241 bytes of wire JSON cannot be made; in a request read from JSON the path names it."""
    with pytest.raises(ValidationError, match="10241 bytes") as info:
        event_of_size(10 * 1024 + 1)
    assert info.value.path == ""
    big = to_wire(event_of_size(10 * 1024))
    big["itemId"] += "x"
    with refused("event_list[2]"):
        events = [{"eventType": "v", "sentAt": 1}] * 2 + [big]
        from_wire(PutEventsRequest, {"trackingId": "t", "sessionId": "s", "eventList": events})


@pytest.mark.parametrize("value", [0, -1.5, 3, 1e300, 2.5])
def test_event_value_accepts_finite_numbers(value: float) -> None:
    """Any finite int or float is a valid event value, stored as a float."""
    stored = event(event_value=value).event_value
    assert stored == value
    assert isinstance(stored, float)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, False, "1.5", 10**400, [1.0]])
def test_event_value_refuses_non_finite_and_non_numbers(value: Any) -> None:
    """NaN, infinities, bools, strings and ints too large for a float are refused."""
    with refused("event_value"):
        event(event_value=value)


# --- timestamps -------------------------------------------------------------------------------

EPOCH_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EPOCH_2024, EPOCH_2024),
        (EPOCH_2024 + 0.5, EPOCH_2024 + 0.5),
        (datetime(2024, 1, 1, tzinfo=timezone.utc), EPOCH_2024),
        (datetime(2024, 1, 1), EPOCH_2024),
        (datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), EPOCH_2024),
        (datetime(2023, 12, 31, 19, tzinfo=timezone(timedelta(hours=-5))), EPOCH_2024),
        ("2024-01-01T00:00:00Z", EPOCH_2024),
        ("2024-01-01T00:00:00z", EPOCH_2024),
        ("2024-01-01T00:00:00+00:00", EPOCH_2024),
        ("2024-01-01T05:30:00+05:30", EPOCH_2024),
        ("2023-12-31T16:00:00-08:00", EPOCH_2024),
        ("2024-01-01T00:00:00", EPOCH_2024),
        ("2024-01-01T00:00:00.250Z", EPOCH_2024 + 0.25),
        ("2024-01-01", EPOCH_2024),
    ],
)
def test_timestamps_in_every_accepted_form(value: Any, expected: float) -> None:
    """Datetimes (naive = UTC), epoch numbers and ISO-8601 strings with Z or offsets give epoch seconds."""
    assert event(sent_at=value).sent_at == expected
    assert interaction(timestamp=value).timestamp == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EPOCH_2024 + 0.1234, EPOCH_2024 + 0.123),
        (EPOCH_2024 + 0.1236, EPOCH_2024 + 0.124),
        (datetime(2024, 1, 1, 0, 0, 0, 123456), EPOCH_2024 + 0.123),
        (datetime(2024, 1, 1, 0, 0, 0, 999600), EPOCH_2024 + 1.0),
        ("2024-01-01T00:00:00.123456Z", EPOCH_2024 + 0.123),
    ],
)
def test_timestamps_are_rounded_to_milliseconds(value: Any, expected: float) -> None:
    """Sub-millisecond precision is rounded to the nearest millisecond, as the service keeps it."""
    assert event(sent_at=value).sent_at == pytest.approx(expected, abs=1e-6)
    assert round(event(sent_at=value).sent_at, 3) == event(sent_at=value).sent_at


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        b"1700000000",
        date(2024, 1, 1),
        [EPOCH_2024],
        "yesterday",
        "",
        "2024-13-01T00:00:00Z",
        math.nan,
        math.inf,
        -1,
        10**400,
        EPOCH_2024 * 1000,  # milliseconds passed as seconds
        datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
    ],
    ids=repr,
)
def test_timestamps_of_the_wrong_type_or_range_are_refused(value: Any) -> None:
    """Anything that is not a sensible point in time raises ValidationError naming the member."""
    with refused("sent_at"):
        event(sent_at=value)
    with refused("timestamp"):
        interaction(timestamp=value)


# --- repr, immutability, keyword-only ---------------------------------------------------------

# repr against the service model's sensitive flags: tests/shapes/test_shapes_privacy.py

SECRET = "S3NSITIVE"


@pytest.mark.parametrize(
    "instance",
    [
        event(),
        interaction(),
        Item(item_id="i"),
        User(user_id="u"),
        Action(action_id="a"),
        MetricAttribution(event_attribution_source="s"),
        PutEventsRequest(tracking_id="t", session_id="s", event_list=[event()]),
        PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="i")]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_shapes_are_frozen_and_slotted(instance: Any) -> None:
    """A validated shape cannot be changed afterwards (and carries no __dict__ to sneak values into)."""
    first = attrs.fields(type(instance))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, first, "changed")
    assert not hasattr(instance, "__dict__")


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (Event, ("click", 1)),
        (Item, ("i",)),
        (User, ("u",)),
        (Action, ("a",)),
        (ActionInteraction, ("a", "s", 1, "e")),
        (MetricAttribution, ("s",)),
        (PutItemsRequest, (ARN, [Item(item_id="i")])),
    ],
)
def test_shapes_are_keyword_only(cls: type[Any], args: tuple[Any, ...]) -> None:
    """Positional arguments are refused, so members cannot be swapped by accident."""
    with pytest.raises(TypeError):
        cls(*args)


def test_equal_inputs_give_equal_shapes() -> None:
    """Shapes compare by value, whatever form the timestamp or properties were given in."""
    a = event(sent_at="2024-01-01T00:00:00Z", properties={"a": 1})
    b = event(sent_at=EPOCH_2024, properties='{"a":1}')
    assert a == b
    assert hash(a) == hash(b)


# --- ValidationError paths and texts ------------------------------------------------------------


def _wire_events(bad_index: int, bad: dict[str, Any]) -> dict[str, Any]:
    events: list[dict[str, Any]] = [{"eventType": "click", "sentAt": EPOCH_2024} for _ in range(5)]
    events[bad_index].update(bad)
    return {"trackingId": "t", "sessionId": "s", "eventList": events}


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ({"properties": {"userId": "u"}}, "event_list[3].properties"),
        ({"properties": "[]"}, "event_list[3].properties"),
        ({"sentAt": "never"}, "event_list[3].sent_at"),
        ({"eventValue": "NaN"}, "event_list[3].event_value"),
        ({"impression": ["ok", ""]}, "event_list[3].impression[1]"),
        (
            {"metricAttribution": {"eventAttributionSource": " "}},
            "event_list[3].metric_attribution.event_attribution_source",
        ),
        ({"recommendationId": "r" * 41}, "event_list[3].recommendation_id"),
    ],
)
def test_validation_error_path_names_the_record_and_member(bad: dict[str, Any], path: str) -> None:
    """A bad member deep in a request is named with its full snake_case path, e.g. event_list[3].properties."""
    with pytest.raises(ValidationError) as info:
        from_wire(PutEventsRequest, _wire_events(3, bad))
    assert info.value.path == path
    assert str(info.value).startswith(path + ": ")
    assert info.value.message


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda v: event(event_type=v * 30), "event_type"),
        (lambda v: event(sent_at=v), "sent_at"),
        (lambda v: event(properties=v + "{"), "properties"),
        (lambda v: event(properties={"k": v, "n": math.nan}), "properties"),
        (lambda v: event(properties={"k": v * 200}), "properties"),
        (lambda v: event(impression=[v * 30]), "impression[0]"),
        (lambda v: Item(item_id="i", properties=f'["{v}"]'), "properties"),
        (lambda v: PutItemsRequest(dataset_arn=v, items=[Item(item_id="i")]), "dataset_arn"),
        (lambda v: MetricAttribution(event_attribution_source=v + "\u00e9"), "event_attribution_source"),
        (lambda v: event(recommendation_id=v * 5), "recommendation_id"),
    ],
)
def test_error_text_never_contains_the_offending_value(build: Any, path: str) -> None:
    """Ids and properties may be personal data, so a ValidationError names the member but never repeats the value."""
    with pytest.raises(ValidationError) as info:
        build(SECRET)
    assert info.value.path == path
    for text in (str(info.value), repr(info.value), info.value.message):
        assert SECRET not in text


def test_validation_error_is_a_value_error_and_pickles() -> None:
    """ValidationError is also a ValueError and survives pickling with its path."""
    import pickle

    with pytest.raises(ValueError, match="event_type") as info:
        event(event_type="")
    original = info.value
    assert isinstance(original, ValidationError)
    copy = pickle.loads(pickle.dumps(original))
    assert isinstance(copy, ValidationError)
    assert (copy.path, copy.message) == (original.path, original.message)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00.5Z", 1704067200.5),
        ("2024-01-01T00:00:00.25+00:00", 1704067200.25),
        ("2024-01-01T00:00:00.1234Z", 1704067200.123),
        ("2024-01-01T00:00:00,125Z", 1704067200.125),
        ("2024-01-01T00:00:00.123456789Z", 1704067200.123),
        ("2024-01-01T01:00:00.5+01:00", 1704067200.5),
    ],
)
def test_iso_fractions_of_any_length_parse_on_every_supported_python(text: str, expected: float) -> None:
    """ISO-8601 timestamps with 1 to 9 fraction digits (dot or comma) parse alike on Python 3.10 and later."""
    assert Event(event_type="x", sent_at=text).sent_at == expected
