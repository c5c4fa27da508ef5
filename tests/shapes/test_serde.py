"""serde turns shapes into the service's exact camelCase JSON and back, validating on the way in."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
T = 1_700_000_000

FULL_EVENT = Event(
    event_type="click",
    sent_at=T + 0.25,
    event_id="evt-1",
    event_value=4.5,
    item_id="item-1",
    properties={"color": "rouge fonc\u00e9", "n": 1},
    recommendation_id="rec-1",
    impression=["item-1", "item-2"],
    metric_attribution=MetricAttribution(event_attribution_source="newsletter"),
)
FULL_EVENT_WIRE = {
    "eventType": "click",
    "sentAt": T + 0.25,
    "eventId": "evt-1",
    "eventValue": 4.5,
    "itemId": "item-1",
    "properties": '{"color":"rouge fonc\u00e9","n":1}',
    "recommendationId": "rec-1",
    "impression": ["item-1", "item-2"],
    "metricAttribution": {"eventAttributionSource": "newsletter"},
}
FULL_INTERACTION = ActionInteraction(
    action_id="act-1",
    session_id="sess-1",
    timestamp=T,
    event_type="Taken",
    user_id="user-1",
    event_id="evt-2",
    recommendation_id="rec-2",
    impression=["act-1", "act-2"],
    properties={"channel": "web"},
)
FULL_INTERACTION_WIRE = {
    "actionId": "act-1",
    "sessionId": "sess-1",
    "timestamp": T,
    "eventType": "Taken",
    "userId": "user-1",
    "eventId": "evt-2",
    "recommendationId": "rec-2",
    "impression": ["act-1", "act-2"],
    "properties": '{"channel":"web"}',
}

GOLDEN: list[tuple[str, Any, dict[str, Any]]] = [
    ("Event full", FULL_EVENT, FULL_EVENT_WIRE),
    ("Event minimal", Event(event_type="view", sent_at=T), {"eventType": "view", "sentAt": T}),
    (
        "MetricAttribution",
        MetricAttribution(event_attribution_source="email campaign"),
        {"eventAttributionSource": "email campaign"},
    ),
    (
        "Item full",
        Item(item_id="item-1", properties={"genre": "jazz", "price": 9.99}),
        {"itemId": "item-1", "properties": '{"genre":"jazz","price":9.99}'},
    ),
    ("Item minimal", Item(item_id="item-1"), {"itemId": "item-1"}),
    (
        "User full",
        User(user_id="user-1", properties={"tier": "gold"}),
        {"userId": "user-1", "properties": '{"tier":"gold"}'},
    ),
    ("User minimal", User(user_id="user-1"), {"userId": "user-1"}),
    (
        "Action full",
        Action(action_id="act-1", properties='{"value": 3}'),
        {"actionId": "act-1", "properties": '{"value": 3}'},
    ),
    ("Action minimal", Action(action_id="act-1"), {"actionId": "act-1"}),
    ("ActionInteraction full", FULL_INTERACTION, FULL_INTERACTION_WIRE),
    (
        "ActionInteraction minimal",
        ActionInteraction(action_id="a", session_id="s", timestamp=T + 0.001, event_type="Viewed"),
        {"actionId": "a", "sessionId": "s", "timestamp": T + 0.001, "eventType": "Viewed"},
    ),
    (
        "PutEventsRequest full",
        PutEventsRequest(tracking_id="trk", session_id="sess", user_id="user", event_list=[FULL_EVENT]),
        {"trackingId": "trk", "sessionId": "sess", "eventList": [FULL_EVENT_WIRE], "userId": "user"},
    ),
    (
        "PutEventsRequest minimal",
        PutEventsRequest(tracking_id="trk", session_id="sess", event_list=[Event(event_type="v", sent_at=T)]),
        {"trackingId": "trk", "sessionId": "sess", "eventList": [{"eventType": "v", "sentAt": T}]},
    ),
    (
        "PutItemsRequest full",
        PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="1", properties={"a": 1}), Item(item_id="2")]),
        {"datasetArn": ARN, "items": [{"itemId": "1", "properties": '{"a":1}'}, {"itemId": "2"}]},
    ),
    (
        "PutItemsRequest minimal",
        PutItemsRequest(dataset_arn=ARN, items=[Item(item_id="1")]),
        {"datasetArn": ARN, "items": [{"itemId": "1"}]},
    ),
    (
        "PutUsersRequest full",
        PutUsersRequest(dataset_arn=ARN, users=[User(user_id="1", properties={"age": 30}), User(user_id="2")]),
        {"datasetArn": ARN, "users": [{"userId": "1", "properties": '{"age":30}'}, {"userId": "2"}]},
    ),
    (
        "PutUsersRequest minimal",
        PutUsersRequest(dataset_arn=ARN, users=[User(user_id="1")]),
        {"datasetArn": ARN, "users": [{"userId": "1"}]},
    ),
    (
        "PutActionsRequest full",
        PutActionsRequest(
            dataset_arn=ARN, actions=[Action(action_id="1", properties={"v": True}), Action(action_id="2")]
        ),
        {"datasetArn": ARN, "actions": [{"actionId": "1", "properties": '{"v":true}'}, {"actionId": "2"}]},
    ),
    (
        "PutActionsRequest minimal",
        PutActionsRequest(dataset_arn=ARN, actions=[Action(action_id="1")]),
        {"datasetArn": ARN, "actions": [{"actionId": "1"}]},
    ),
    (
        "PutActionInteractionsRequest full",
        PutActionInteractionsRequest(tracking_id="trk", action_interactions=[FULL_INTERACTION]),
        {"trackingId": "trk", "actionInteractions": [FULL_INTERACTION_WIRE]},
    ),
    (
        "PutActionInteractionsRequest minimal",
        PutActionInteractionsRequest(
            tracking_id="trk",
            action_interactions=[ActionInteraction(action_id="a", session_id="s", timestamp=T, event_type="e")],
        ),
        {
            "trackingId": "trk",
            "actionInteractions": [{"actionId": "a", "sessionId": "s", "timestamp": T, "eventType": "e"}],
        },
    ),
]


@pytest.mark.parametrize(("name", "shape", "wire"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_to_wire_gives_the_services_exact_json(name: str, shape: Any, wire: dict[str, Any]) -> None:
    """Each shape becomes exactly the service's camelCase dict, with unset members left out."""
    assert to_wire(shape) == wire
    assert json.dumps(to_wire(shape), sort_keys=True) == json.dumps(wire, sort_keys=True)


@pytest.mark.parametrize(("name", "shape", "wire"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_from_wire_reads_the_golden_json_back(name: str, shape: Any, wire: dict[str, Any]) -> None:
    """The service's camelCase dict turns back into an equal shape."""
    assert from_wire(type(shape), wire) == shape


@pytest.mark.parametrize(
    ("given", "expected"),
    [(T, T), (T + 0.5, T + 0.5), (T + 0.1234, T + 0.123), ("2023-11-14T22:13:20Z", T), (float(T), T)],
)
def test_timestamps_are_an_int_when_whole_else_a_float_to_the_millisecond(given: Any, expected: float) -> None:
    """sentAt and timestamp go out as epoch seconds: an int when whole, else a float rounded to ms."""
    wire = to_wire(Event(event_type="v", sent_at=given))["sentAt"]
    assert wire == pytest.approx(expected, abs=1e-9)
    assert type(wire) is (int if expected == int(expected) else float)
    assert json.dumps(wire) == json.dumps(expected)
    interaction = ActionInteraction(action_id="a", session_id="s", timestamp=given, event_type="e")
    assert to_wire(interaction)["timestamp"] == wire


def test_from_wire_accepts_properties_as_object_or_string() -> None:
    """A JSON line may carry properties as an object or as the string the service uses; both give one shape."""
    as_object = from_wire(Item, {"itemId": "i", "properties": {"genre": "jazz", "n": [1, 2]}})
    as_string = from_wire(Item, {"itemId": "i", "properties": '{"genre":"jazz","n":[1,2]}'})
    assert as_object == as_string
    assert as_object.properties == '{"genre":"jazz","n":[1,2]}'


def test_from_wire_accepts_iso_timestamps() -> None:
    """A JSON line may carry its timestamp as an ISO-8601 string."""
    assert from_wire(Event, {"eventType": "v", "sentAt": "2023-11-14T22:13:20Z"}).sent_at == T


@pytest.mark.parametrize(
    ("cls", "data", "path"),
    [
        (Item, {}, "item_id"),
        (Event, {"eventType": "v"}, "sent_at"),
        (Event, {"sentAt": T}, "event_type"),
        (MetricAttribution, {}, "event_attribution_source"),
        (ActionInteraction, {"actionId": "a", "sessionId": "s", "timestamp": T}, "event_type"),
        (PutItemsRequest, {"items": [{"itemId": "i"}]}, "dataset_arn"),
        (PutEventsRequest, {"trackingId": "t", "sessionId": "s"}, "event_list"),
        (
            PutEventsRequest,
            {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "v", "sentAt": T}, {"eventType": "v"}]},
            "event_list[1].sent_at",
        ),
        (
            PutEventsRequest,
            {
                "trackingId": "t",
                "sessionId": "s",
                "eventList": [{"eventType": "v", "sentAt": T, "metricAttribution": {}}],
            },
            "event_list[0].metric_attribution.event_attribution_source",
        ),
        (
            PutActionInteractionsRequest,
            {"trackingId": "t", "actionInteractions": [{}]},
            "action_interactions[0].action_id",
        ),
    ],
)
def test_from_wire_names_a_missing_required_member(cls: type[Any], data: dict[str, Any], path: str) -> None:
    """A missing required member raises ValidationError naming it in snake_case, with its place in the request."""
    with pytest.raises(ValidationError) as info:
        from_wire(cls, data)
    assert info.value.path == path
    assert "required" in info.value.message


@pytest.mark.parametrize(
    ("cls", "data", "path"),
    [
        (Item, {"itemId": "i", "colour": "red"}, "colour"),
        (Event, {"eventType": "v", "sentAt": T, "event_type": "v"}, "event_type"),
        (PutUsersRequest, {"datasetArn": ARN, "users": [{"userId": "u", "age": 3}]}, "users[0].age"),
        (
            PutEventsRequest,
            {"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "v", "sentAt": T}], "x": 1},
            "x",
        ),
    ],
)
def test_from_wire_refuses_unknown_members(cls: type[Any], data: dict[str, Any], path: str) -> None:
    """A member the service does not know (a typo, a snake_case name) is refused, not silently dropped."""
    with pytest.raises(ValidationError) as info:
        from_wire(cls, data)
    assert info.value.path == path


EVENTS = {"trackingId": "t", "sessionId": "s"}


@pytest.mark.parametrize(
    ("cls", "data", "path"),
    [
        (Item, {"itemId": 5}, "item_id"),
        (Item, {"itemId": None}, "item_id"),
        (Item, {"itemId": "i", "properties": 5}, "properties"),
        (Item, {"itemId": "i", "properties": [1]}, "properties"),
        (Event, {"eventType": "v", "sentAt": [T]}, "sent_at"),
        (Event, {"eventType": "v", "sentAt": T, "eventValue": "4.5"}, "event_value"),
        (Event, {"eventType": "v", "sentAt": T, "eventValue": True}, "event_value"),
        (Event, {"eventType": "v", "sentAt": T, "impression": "i"}, "impression"),
        (Event, {"eventType": "v", "sentAt": T, "metricAttribution": "x"}, "metric_attribution"),
        (PutEventsRequest, {**EVENTS, "eventList": {"eventType": "v"}}, "event_list"),
        (PutEventsRequest, {**EVENTS, "eventList": ["v"]}, "event_list[0]"),
        (PutEventsRequest, {**EVENTS, "eventList": []}, "event_list"),
        (PutEventsRequest, {**EVENTS, "eventList": None}, "event_list"),
        (PutItemsRequest, {"datasetArn": 7, "items": [{"itemId": "i"}]}, "dataset_arn"),
        (PutItemsRequest, {"datasetArn": ARN, "items": [{"itemId": "i"}, {"itemId": ""}]}, "items[1].item_id"),
        (
            PutActionsRequest,
            {"datasetArn": ARN, "actions": [{"actionId": "a", "properties": "{"}]},
            "actions[0].properties",
        ),
    ],
)
def test_from_wire_names_a_member_of_the_wrong_type(cls: type[Any], data: dict[str, Any], path: str) -> None:
    """A member of the wrong type or value raises ValidationError naming its snake_case path."""
    with pytest.raises(ValidationError) as info:
        from_wire(cls, data)
    assert info.value.path == path


@pytest.mark.parametrize("data", [[], "text", None, 5])
def test_from_wire_refuses_data_that_is_not_an_object(data: Any) -> None:
    """from_wire takes a JSON object; anything else is a ValidationError, not a crash."""
    with pytest.raises(ValidationError):
        from_wire(Item, data)


# --- hypothesis: strategies for valid shapes ------------------------------------------------------

_CHARS = st.characters(codec="utf-8")  # every code point UTF-8 can carry (no lone surrogates)


def ids(max_size: int = L.ID_MAX) -> st.SearchStrategy[str]:
    return st.text(_CHARS, min_size=1, max_size=max_size)


short_ids = ids(24)
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars | st.text(_CHARS, max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(_CHARS, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def properties(maximum: int, reserved: bool) -> st.SearchStrategy[Any]:
    keys = st.text(_CHARS, max_size=12)
    if reserved:
        keys = keys.filter(lambda k: k.lower() not in L.RESERVED_PROPERTY_KEYS)
    mappings = st.dictionaries(keys, json_values, max_size=6)
    as_text = mappings.map(lambda d: json.dumps(d, ensure_ascii=False, indent=1))  # a JSON object string, as given
    return (mappings | as_text).filter(
        lambda p: len(p if isinstance(p, str) else json.dumps(p, separators=(",", ":"), ensure_ascii=False)) <= maximum
    )


timestamps = st.one_of(
    st.integers(0, 32_503_680_000),
    st.floats(0, 32_503_680_000, allow_nan=False),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30)),
)
impressions = st.lists(short_ids, min_size=1, max_size=L.IMPRESSION_MAX_ENTRIES)
attribution = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60).filter(
    lambda s: s.strip(" ") != ""
)
maybe = st.none().__or__

metric_attributions = st.builds(MetricAttribution, event_attribution_source=attribution)
events = st.builds(
    Event,
    event_type=ids(),
    sent_at=timestamps,
    event_id=maybe(ids()),
    event_value=maybe(st.floats(allow_nan=False, allow_infinity=False)),
    item_id=maybe(ids()),
    properties=maybe(properties(L.EVENT_PROPERTIES_MAX, reserved=True)),
    recommendation_id=maybe(ids(L.RECOMMENDATION_ID_MAX)),
    impression=maybe(impressions),
    metric_attribution=maybe(metric_attributions),
)
small_events = st.builds(  # small enough that ten always fit the 10 KB per event
    Event,
    event_type=short_ids,
    sent_at=timestamps,
    event_id=maybe(short_ids),
    event_value=maybe(st.floats(allow_nan=False, allow_infinity=False)),
    item_id=maybe(short_ids),
    properties=maybe(properties(200, reserved=True)),
    impression=maybe(st.lists(short_ids, min_size=1, max_size=3)),
    metric_attribution=maybe(metric_attributions),
)
items = st.builds(Item, item_id=ids(), properties=maybe(properties(L.ITEM_PROPERTIES_MAX, reserved=False)))
users = st.builds(User, user_id=ids(), properties=maybe(properties(L.USER_PROPERTIES_MAX, reserved=False)))
actions = st.builds(Action, action_id=ids(), properties=maybe(properties(L.ACTION_PROPERTIES_MAX, reserved=False)))
interactions = st.builds(
    ActionInteraction,
    action_id=ids(),
    session_id=ids(),
    timestamp=timestamps,
    event_type=ids(),
    user_id=maybe(ids()),
    event_id=maybe(ids()),
    recommendation_id=maybe(ids(L.RECOMMENDATION_ID_MAX)),
    impression=maybe(impressions),
    properties=maybe(properties(L.ACTION_INTERACTION_PROPERTIES_MAX, reserved=True)),
)
arns = st.builds(
    lambda partition, region, rest: f"arn:{partition}:personalize:{region}:123456789012:dataset/{rest}",
    st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
    st.sampled_from(["us-east-1", "cn-north-1", "us-gov-west-1", "eu-west-1"]),
    st.text(_CHARS, min_size=1, max_size=100),
).filter(lambda a: len(a) <= L.ARN_MAX)
records = st.lists  # records per call: 1..10


def batch(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return records(strategy, min_size=1, max_size=L.RECORDS_PER_CALL)


requests = st.one_of(
    st.builds(
        PutEventsRequest, tracking_id=ids(), session_id=ids(), event_list=batch(small_events), user_id=maybe(ids())
    ),
    st.builds(PutItemsRequest, dataset_arn=arns, items=batch(st.builds(Item, item_id=short_ids))),
    st.builds(PutUsersRequest, dataset_arn=arns, users=batch(st.builds(User, user_id=short_ids))),
    st.builds(PutActionsRequest, dataset_arn=arns, actions=batch(st.builds(Action, action_id=short_ids))),
    st.builds(PutActionInteractionsRequest, tracking_id=ids(), action_interactions=batch(interactions)),
)
any_shape = st.one_of(events, items, users, actions, interactions, metric_attributions, requests)

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(shape=any_shape)
def test_any_valid_shape_survives_the_json_round_trip(shape: Any) -> None:
    """to_wire -> json.dumps -> json.loads -> from_wire gives back an equal shape, unicode included."""
    text = json.dumps(to_wire(shape), ensure_ascii=False)
    assert from_wire(type(shape), json.loads(text)) == shape
    assert from_wire(type(shape), json.loads(json.dumps(to_wire(shape)))) == shape  # ASCII escapes too


@HYPOTHESIS
@given(shape=any_shape)
def test_to_wire_is_plain_json_with_camel_case_keys(shape: Any) -> None:
    """The wire dict holds only JSON types, and no member name has an underscore."""

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                assert isinstance(key, str)
                assert "_" not in key
                assert inner is not None  # unset members are omitted, never null
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)
        else:
            assert isinstance(value, (str, int, float, bool))
            if isinstance(value, float):
                assert math.isfinite(value)

    walk(to_wire(shape))


# --- hypothesis: any value past a limit is refused, naming the member ---------------------------

ID_LIMITS = [
    (Event, {"eventType": "v", "sentAt": T}, "eventType", "event_type", L.ID_MAX),
    (Event, {"eventType": "v", "sentAt": T}, "eventId", "event_id", L.ID_MAX),
    (Event, {"eventType": "v", "sentAt": T}, "itemId", "item_id", L.ID_MAX),
    (Event, {"eventType": "v", "sentAt": T}, "recommendationId", "recommendation_id", L.RECOMMENDATION_ID_MAX),
    (Item, {"itemId": "i"}, "itemId", "item_id", L.ID_MAX),
    (User, {"userId": "u"}, "userId", "user_id", L.ID_MAX),
    (Action, {"actionId": "a"}, "actionId", "action_id", L.ID_MAX),
    (
        PutEventsRequest,
        {**EVENTS, "eventList": [{"eventType": "v", "sentAt": T}]},
        "trackingId",
        "tracking_id",
        L.ID_MAX,
    ),
    (PutEventsRequest, {**EVENTS, "eventList": [{"eventType": "v", "sentAt": T}]}, "sessionId", "session_id", L.ID_MAX),
    (PutEventsRequest, {**EVENTS, "eventList": [{"eventType": "v", "sentAt": T}]}, "userId", "user_id", L.ID_MAX),
]
for _wire, _snake in [
    ("actionId", "action_id"),
    ("sessionId", "session_id"),
    ("eventType", "event_type"),
    ("userId", "user_id"),
    ("eventId", "event_id"),
]:
    ID_LIMITS.append(
        (
            ActionInteraction,
            {"actionId": "a", "sessionId": "s", "timestamp": T, "eventType": "e"},
            _wire,
            _snake,
            L.ID_MAX,
        )
    )
ID_LIMITS.append(
    (
        ActionInteraction,
        {"actionId": "a", "sessionId": "s", "timestamp": T, "eventType": "e"},
        "recommendationId",
        "recommendation_id",
        L.RECOMMENDATION_ID_MAX,
    )
)


@HYPOTHESIS
@given(case=st.sampled_from(ID_LIMITS), data=st.data())
def test_any_id_past_its_limit_is_refused_naming_the_member(case: Any, data: st.DataObject) -> None:
    """An id longer than the service allows raises ValidationError naming that member."""
    cls, base, wire_name, snake, maximum = case
    value = data.draw(st.text(_CHARS, min_size=maximum + 1, max_size=maximum + 300))
    with pytest.raises(ValidationError) as info:
        from_wire(cls, {**base, wire_name: value})
    assert info.value.path == snake


PROPERTY_LIMITS = [
    (Event, {"eventType": "v", "sentAt": T}, L.EVENT_PROPERTIES_MAX),
    (ActionInteraction, {"actionId": "a", "sessionId": "s", "timestamp": T, "eventType": "e"}, 1024),
    (Item, {"itemId": "i"}, L.ITEM_PROPERTIES_MAX),
    (User, {"userId": "u"}, L.USER_PROPERTIES_MAX),
    (Action, {"actionId": "a"}, L.ACTION_PROPERTIES_MAX),
]


@HYPOTHESIS
@given(case=st.sampled_from(PROPERTY_LIMITS), data=st.data(), as_text=st.booleans())
def test_any_properties_past_their_limit_are_refused(case: Any, data: st.DataObject, as_text: bool) -> None:
    """Properties whose JSON is longer than the service allows raise ValidationError naming properties."""
    cls, base, maximum = case
    head = data.draw(st.text(_CHARS, min_size=1, max_size=200))
    filler = head + "x" * data.draw(st.integers(maximum - 7 - len(head), maximum + 50))
    value: Any = {"k": filler}
    if as_text:
        value = json.dumps(value, ensure_ascii=False)
    with pytest.raises(ValidationError) as info:
        from_wire(cls, {**base, "properties": value})
    assert info.value.path == "properties"


@HYPOTHESIS
@given(count=st.integers(L.RECORDS_PER_CALL + 1, 40), op=st.sampled_from(["items", "users", "actions"]))
def test_any_record_count_past_ten_is_refused(count: int, op: str) -> None:
    """More than ten records in one call raises ValidationError naming the record list."""
    record = {"items": {"itemId": "i"}, "users": {"userId": "u"}, "actions": {"actionId": "a"}}[op]
    cls = {"items": PutItemsRequest, "users": PutUsersRequest, "actions": PutActionsRequest}[op]
    with pytest.raises(ValidationError) as info:
        from_wire(cls, {"datasetArn": ARN, op: [record] * count})
    assert info.value.path == op


@HYPOTHESIS
@given(
    entries=st.lists(short_ids, min_size=L.IMPRESSION_MAX_ENTRIES + 1, max_size=60) | st.just([]),
    cls=st.sampled_from([Event, ActionInteraction]),
)
def test_any_impression_past_25_entries_is_refused(entries: list[str], cls: type[Any]) -> None:
    """An impression list outside 1..25 entries raises ValidationError naming impression."""
    base = (
        {"eventType": "v", "sentAt": T}
        if cls is Event
        else {"actionId": "a", "sessionId": "s", "timestamp": T, "eventType": "e"}
    )
    with pytest.raises(ValidationError) as info:
        from_wire(cls, {**base, "impression": entries})
    assert info.value.path == "impression"


@HYPOTHESIS
@given(
    source=st.text(min_size=1, max_size=40).filter(
        lambda s: any(not 0x20 <= ord(c) <= 0x7E for c in s) or not s.strip(" ")
    )
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1025, max_size=1100)
)
def test_any_attribution_source_outside_the_pattern_is_refused(source: str) -> None:
    """A source with a non-printable or non-ASCII character, blank, or over 1024 characters is refused."""
    with pytest.raises(ValidationError) as info:
        from_wire(MetricAttribution, {"eventAttributionSource": source})
    assert info.value.path == "event_attribution_source"


@HYPOTHESIS
@given(
    value=st.sampled_from([math.nan, math.inf, -math.inf])
    | st.floats(max_value=-1e-3, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=32_503_680_001, allow_nan=False, allow_infinity=False)
    | st.integers(min_value=32_503_680_001)
    | st.text(max_size=30).filter(lambda s: not s.strip()[:4].isdigit())
)
def test_any_timestamp_out_of_range_is_refused(value: Any) -> None:
    """A timestamp that is not a sensible epoch second or ISO-8601 string raises ValidationError naming it."""
    with pytest.raises(ValidationError) as info:
        from_wire(Event, {"eventType": "v", "sentAt": value})
    assert info.value.path == "sent_at"
