"""The shapes enforce every service limit exactly, normalise their values once, and stay quiet in repr."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

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


# --- a builder per record shape, taking one member to set --------------------------------------

RECORD_BUILDERS: dict[str, Any] = {
    "Event": event,
    "Item": lambda **kw: Item(**{"item_id": "i1", **kw}),
    "User": lambda **kw: User(**{"user_id": "u1", **kw}),
    "Action": lambda **kw: Action(**{"action_id": "a1", **kw}),
    "ActionInteraction": interaction,
}

# (shape, member, maximum length) for every plain string member of a record or request
ID_MEMBERS = [
    ("Event", "event_type", 256),
    ("Event", "event_id", 256),
    ("Event", "item_id", 256),
    ("Event", "recommendation_id", 40),
    ("Item", "item_id", 256),
    ("User", "user_id", 256),
    ("Action", "action_id", 256),
    ("ActionInteraction", "action_id", 256),
    ("ActionInteraction", "session_id", 256),
    ("ActionInteraction", "event_type", 256),
    ("ActionInteraction", "user_id", 256),
    ("ActionInteraction", "event_id", 256),
    ("ActionInteraction", "recommendation_id", 40),
]


@pytest.mark.parametrize(("shape", "member", "maximum"), ID_MEMBERS)
def test_id_members_accept_their_maximum_length(shape: str, member: str, maximum: int) -> None:
    """An id of exactly the service's maximum length is accepted and kept as given."""
    value = "é" * maximum  # lengths are characters, not bytes
    record = RECORD_BUILDERS[shape](**{member: value})
    assert getattr(record, member) == value


@pytest.mark.parametrize(("shape", "member", "maximum"), ID_MEMBERS)
def test_id_members_refuse_one_past_their_maximum(shape: str, member: str, maximum: int) -> None:
    """An id one character over the maximum raises ValidationError naming the member."""
    with refused(member):
        RECORD_BUILDERS[shape](**{member: "x" * (maximum + 1)})


@pytest.mark.parametrize(("shape", "member", "maximum"), ID_MEMBERS)
def test_id_members_refuse_empty_and_non_strings(shape: str, member: str, maximum: int) -> None:
    """An empty id or one that is not a str raises ValidationError naming the member."""
    with refused(member):
        RECORD_BUILDERS[shape](**{member: ""})
    with refused(member):
        RECORD_BUILDERS[shape](**{member: 12345})


@pytest.mark.parametrize(
    ("build", "member"),
    [
        (lambda v: PutEventsRequest(tracking_id=v, session_id="s", event_list=[event()]), "tracking_id"),
        (lambda v: PutEventsRequest(tracking_id="t", session_id=v, event_list=[event()]), "session_id"),
        (lambda v: PutEventsRequest(tracking_id="t", session_id="s", event_list=[event()], user_id=v), "user_id"),
        (lambda v: PutActionInteractionsRequest(tracking_id=v, action_interactions=[interaction()]), "tracking_id"),
    ],
)
def test_request_ids_are_1_to_256_characters(build: Any, member: str) -> None:
    """Request-level ids accept 1 and 256 characters and refuse 0 and 257, naming the member."""
    build("x")
    build("x" * 256)
    for bad in ("", "x" * 257):
        with refused(member):
            build(bad)


def test_lone_surrogate_in_an_id_is_refused() -> None:
    """An id that cannot be encoded as UTF-8 is refused before it could break the request."""
    with refused("event_type"):
        event(event_type="a\ud800")


# --- impression -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["Event", "ActionInteraction"])
def test_impression_takes_1_to_25_entries(shape: str) -> None:
    """An impression list of 25 entries is accepted (as a tuple); 26 or none is refused."""
    build = RECORD_BUILDERS[shape]
    record = build(impression=[f"i{n}" for n in range(25)])
    assert record.impression == tuple(f"i{n}" for n in range(25))
    assert build(impression=["only"]).impression == ("only",)
    for bad in ([f"i{n}" for n in range(26)], []):
        with refused("impression"):
            build(impression=bad)


@pytest.mark.parametrize("shape", ["Event", "ActionInteraction"])
def test_impression_entries_are_1_to_256_characters(shape: str) -> None:
    """Each impression entry takes 1..256 characters; a bad one is named by its index."""
    build = RECORD_BUILDERS[shape]
    build(impression=["x" * 256])
    with refused("impression[1]"):
        build(impression=["ok", "x" * 257])
    with refused("impression[0]"):
        build(impression=[""])
    with refused("impression[2]"):
        build(impression=["a", "b", 3])


def test_impression_must_be_a_sequence_not_a_string() -> None:
    """A bare string is not taken as a list of its characters."""
    with refused("impression"):
        event(impression="abc")
    with refused("impression"):
        event(impression=5)


# --- record counts ----------------------------------------------------------------------------

REQUEST_BUILDERS = [
    ("event_list", lambda n: PutEventsRequest(tracking_id="t", session_id="s", event_list=[event()] * n)),
    ("items", lambda n: PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="i")] * n)),
    ("users", lambda n: PutUsersRequest(dataset_arn=ARN, users=[User(user_id="u")] * n)),
    ("actions", lambda n: PutActionsRequest(dataset_arn=ARN, actions=[Action(action_id="a")] * n)),
    (
        "action_interactions",
        lambda n: PutActionInteractionsRequest(tracking_id="t", action_interactions=[interaction()] * n),
    ),
]


@pytest.mark.parametrize(("member", "build"), REQUEST_BUILDERS)
def test_requests_take_1_to_10_records(member: str, build: Any) -> None:
    """Every request takes 1 to 10 records; 0 or 11 raises ValidationError naming the list."""
    assert len(getattr(build(10), member)) == 10
    assert len(getattr(build(1), member)) == 1
    for bad in (0, 11):
        with refused(member):
            build(bad)


@pytest.mark.parametrize(("member", "build"), REQUEST_BUILDERS)
def test_request_records_become_a_tuple(member: str, build: Any) -> None:
    """The record list is stored as a tuple, so a request cannot change after validation."""
    assert isinstance(getattr(build(3), member), tuple)


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


def test_dataset_arn_is_at_most_256_characters() -> None:
    """A valid-looking ARN of 256 characters is accepted, 257 refused."""
    prefix = "arn:aws:personalize:us-east-1:123456789012:dataset/"
    PutUsersRequest(dataset_arn=prefix + "x" * (256 - len(prefix)), users=[User(user_id="u")])
    with refused("dataset_arn"):
        PutUsersRequest(dataset_arn=prefix + "x" * (257 - len(prefix)), users=[User(user_id="u")])


# --- eventAttributionSource -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["x", "x" * 1024, " padded ", "~!@#$%^&*()_+{}|:<>?", "a b"])
def test_attribution_source_accepts_printable_ascii_up_to_1024(source: str) -> None:
    """Printable ASCII that is not blank, up to 1024 characters, is accepted."""
    assert MetricAttribution(event_attribution_source=source).event_attribution_source == source


@pytest.mark.parametrize(
    "source",
    ["", " ", "   ", "x" * 1025, "caf\u00e9", "tab\there", "line\n", "\nline", "nul\x00", "del\x7f", "\u3042"],
)
def test_attribution_source_refuses_blank_long_or_non_printable(source: str) -> None:
    """Blank, over-long, non-ASCII or control characters (even a final newline) are refused."""
    with refused("event_attribution_source"):
        MetricAttribution(event_attribution_source=source)


def test_metric_attribution_must_be_the_shape() -> None:
    """Event.metric_attribution refuses anything but a MetricAttribution."""
    with refused("metric_attribution"):
        event(metric_attribution={"eventAttributionSource": "x"})


# --- properties -------------------------------------------------------------------------------

PROPERTY_LIMITS = [("Event", 1024), ("ActionInteraction", 1024), ("Item", 32000), ("Action", 32000), ("User", 24000)]


@pytest.mark.parametrize(("shape", "maximum"), PROPERTY_LIMITS)
def test_properties_accept_exactly_their_maximum(shape: str, maximum: int) -> None:
    """Compact JSON of exactly the maximum length is accepted, as a mapping or as a string."""
    mapping = props_of_length(maximum)
    text = json.dumps(mapping, separators=(",", ":"))
    assert RECORD_BUILDERS[shape](properties=mapping).properties == text
    assert RECORD_BUILDERS[shape](properties=text).properties == text


@pytest.mark.parametrize(("shape", "maximum"), PROPERTY_LIMITS)
def test_properties_refuse_one_past_their_maximum(shape: str, maximum: int) -> None:
    """Compact JSON one character over the maximum raises ValidationError naming properties."""
    mapping = props_of_length(maximum + 1)
    with refused("properties"):
        RECORD_BUILDERS[shape](properties=mapping)
    with refused("properties"):
        RECORD_BUILDERS[shape](properties=json.dumps(mapping, separators=(",", ":")))


def test_properties_length_counts_characters_not_bytes() -> None:
    """1024 non-ASCII characters (far more than 1024 UTF-8 bytes) fit in an event's properties."""
    mapping = props_of_length(1024, char="\u00e9")
    assert len(event(properties=mapping).properties or "") == 1024
    with refused("properties"):
        event(properties=props_of_length(1025, char="\u00e9"))


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


def test_an_event_over_10_kb_is_refused_naming_its_index() -> None:
    """An event of 10241 bytes of wire JSON raises ValidationError naming event_list[i]."""
    big = event_of_size(10 * 1024 + 1)
    with refused("event_list[2]"):
        PutEventsRequest(tracking_id="t", session_id="s", event_list=[event(), event(), big])


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

SECRET = "S3NSITIVE"


def _all_reprs() -> list[tuple[str, str, list[str]]]:
    """(name, repr, members that must show) for a fully populated instance of every shape."""
    e = event(
        event_id="evt-1",
        event_value=1.5,
        item_id=SECRET + "item",
        properties={"k": SECRET + "prop"},
        recommendation_id="rec-1",
        impression=[SECRET + "imp"],
        metric_attribution=MetricAttribution(event_attribution_source="src-1"),
    )
    ai = interaction(
        action_id=SECRET + "action",
        session_id=SECRET + "session",
        user_id=SECRET + "user",
        event_id="evt-2",
        recommendation_id="rec-2",
        impression=[SECRET + "imp"],
        properties={"k": SECRET + "prop"},
    )
    return [
        ("Event", repr(e), ["event_type='click'", "event_id='evt-1'", "event_value=1.5", "recommendation_id='rec-1'"]),
        ("ActionInteraction", repr(ai), ["event_type='watch'", "event_id='evt-2'"]),
        ("Item", repr(Item(item_id=SECRET, properties={"k": SECRET})), ["Item("]),
        ("User", repr(User(user_id=SECRET, properties={"k": SECRET})), ["User("]),
        ("Action", repr(Action(action_id=SECRET, properties={"k": SECRET})), ["Action("]),
        (
            "PutEventsRequest",
            repr(PutEventsRequest(tracking_id="trk-1", session_id=SECRET, event_list=[e], user_id=SECRET)),
            ["tracking_id='trk-1'", "event_type='click'"],
        ),
        (
            "PutActionInteractionsRequest",
            repr(PutActionInteractionsRequest(tracking_id="trk-2", action_interactions=[ai])),
            ["tracking_id='trk-2'"],
        ),
        ("PutItemsRequest", repr(PutItemsRequest(dataset_arn=ARN, items=[Item(item_id=SECRET)])), [ARN]),
    ]


@pytest.mark.parametrize(("name", "text", "shown"), _all_reprs(), ids=lambda v: v if isinstance(v, str) else "")
def test_repr_hides_sensitive_members_and_shows_the_rest(name: str, text: str, shown: list[str]) -> None:
    """Ids, sessions, impressions and properties never appear in repr; event types and ids of events do."""
    assert SECRET not in text
    assert "'***'" in text
    for fragment in shown:
        assert fragment in text


def test_repr_says_when_a_hidden_member_is_unset() -> None:
    """A hidden member that is unset shows as None, so the repr still tells what was given."""
    assert "item_id=None" in repr(event())
    assert "properties=None" in repr(event())


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
