"""Hostile input: every shape and member, fed arbitrary values, gives a ValidationError naming it or a good request.

For each shape, hypothesis makes one member hostile (arbitrary text with lone
surrogates, NUL, RTL marks, strings far over the limits, huge ints, NaN and
infinities, deeply nested or non-string-keyed properties, values of the wrong
type) and the others valid, or every member hostile at once. Building the
shape (and then its request) must either raise ``ValidationError`` whose path
names that member, or succeed; any other exception fails. Every request that
succeeds is then sent to a running emulator, which checks the wire JSON with
its own rules: it must answer 200, never ``InvalidInputException``.

The same is done for fuzzed JSON Lines through the command line's own line
reader (``aiopersonalize_events.cli.parse_line``): a ``LineError`` with a
reason, or a record the emulator accepts. Two regressions found here are
pinned at the end: ``from_wire`` with non-string keys, and properties whose
nesting was judged by Python's recursion limit (so by the caller's stack).
"""

from __future__ import annotations

import asyncio
import json
import re
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

import _limits_cases as C
import aiohttp
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    InvalidInputException,
    Item,
    MetricAttribution,
    PersonalizeEventsClient,
    User,
    ValidationError,
)
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.serde import from_wire, to_wire

EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
TRACKER = "tracker-fuzz"

# -- strategies ------------------------------------------------------------------------------------------------

# the lengths at the edges of the service's limits, from the shared table (tests/_limits_cases.py)
TEXT_MAXIMA = sorted({row.maximum for row in C.by_kind("text", "entry")})
EDGE_LENGTHS = sorted({n for m in TEXT_MAXIMA for n in (m - 1, m, m + 1)})
PROPERTIES_MAXIMA = sorted({row.maximum for row in C.by_kind("properties")})
PROPERTIES_EDGES = sorted({n for m in PROPERTIES_MAXIMA for n in (m - 1, m, m + 1)})

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates included
SPECIAL_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\u202eevil\u202c",
        "\u200f\u200e\u061c",
        "\ufeffbom",
        "e\u0301\u0301\u0301",
        "\U0001f44d",
        "\ud800",
        "ok\udfff",
        "\n",
        "\r\n\t",
        "null",
        "{}",
        "[]",
        "\\",
        '"',
        "\u2028\u2029",
        *(char * n for char in ("x", "\u00e9", "\U0001d54f") for m in TEXT_MAXIMA for n in (m, m + 1)),
    ]
)
REPEATED_TEXT = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x", "\u00e9", "\U0001f44d", "\x00", "\u202e", '"', "\\", " ", "\ud800"]),
    st.sampled_from([1, *EDGE_LENGTHS, 4000, 100_000, 1_000_000]),
)
TEXT = st.one_of(st.text(max_size=30), st.text(ANY_CHAR, max_size=30), SPECIAL_TEXT, REPEATED_TEXT)


class _OddMapping(Mapping[str, int]):
    """A Mapping that is not a dict: JSON cannot encode it."""

    def __getitem__(self, key: str) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        return iter(["a"])

    def __len__(self) -> int:
        return 1


WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**400),
    st.floats(),
    st.binary(max_size=8),
    st.just(bytearray(b"id")),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.frozensets(st.integers(), max_size=2),
    st.just(object()),
    st.just(_OddMapping()),
    st.just(types.MappingProxyType({"a": 1})),
    st.decimals(allow_nan=True),
    st.complex_numbers(),
    st.just(date(2024, 1, 1)),
    st.just(Ellipsis),
)
HOSTILE_TEXT = st.one_of(TEXT, WRONG_TYPE)
VALID_ID = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


OFFSETS = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
VALID_TIMESTAMP = st.one_of(
    st.integers(0, 4_000_000_000),
    st.floats(0, 4e9),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=optional(OFFSETS)),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).map(datetime.isoformat),
)
ISO_TEXT = st.one_of(
    st.datetimes(timezones=optional(OFFSETS)).map(datetime.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-13-01", "2024-01-01T25:00", " "]),
)
HOSTILE_TIMESTAMP = st.one_of(
    st.integers(),
    st.integers(min_value=10**18),
    st.just(10**400),
    st.floats(),
    st.datetimes(timezones=optional(OFFSETS)),
    st.dates(),
    ISO_TEXT,
    TEXT,
    WRONG_TYPE,
)
HOSTILE_NUMBER = st.one_of(st.floats(), st.integers(), st.just(10**400), st.just(2**1024), st.decimals(), WRONG_TYPE)

RESERVED_KEYS = st.sampled_from(
    ["userId", "USERID", "sessionid", "EventType", "timestamp", "TimeStamp", "recommendationId", "IMPRESSION"]
)
KEYS = st.one_of(st.text(max_size=10), st.text(ANY_CHAR, max_size=5), RESERVED_KEYS)
ODD_KEYS = st.one_of(KEYS, st.integers(), st.none(), st.booleans(), st.floats(), st.tuples(st.integers()))
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**400),
    st.just(5000).map(lambda n: 10**n),
    st.floats(),
    TEXT,
    st.binary(max_size=4),
    st.sets(st.integers(), max_size=2),
    st.decimals(),
)
TREE = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_KEYS, inner, max_size=4), max_leaves=15
)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(ANY_CHAR, max_size=20)
)
JSON_TREE = st.recursive(
    JSON_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=15
)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return "{}"


PROPERTIES_TEXT = st.one_of(
    TEXT,
    st.dictionaries(KEYS, JSON_TREE, max_size=5).map(_to_json),
    JSON_TREE.map(_to_json),
    st.integers(1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 5000).map(lambda n: '{"a":' + "[" * n + "]" * n + "}"),
    st.sampled_from(
        [
            '{"a": NaN}',
            '{"a": Infinity}',
            '{"a": 1e400}',
            '{"\\ud800": "\\udfff"}',
            '{"a": 1} ',
            '{"a": 1, "a": 2}',
            '{"userId": "u"}',
            '{"USERID": 1}',
            '{"a": "\x00"}',
            "{\n}",
            "[{}]",
            '"{}"',
            "{'a': 1}",
            '{"a": ' + "9" * 5000 + "}",
        ]
    ),
    # json.dumps({"k": ...}) adds 9 characters: text of each edge length, and far under and over them all
    st.sampled_from([1000, *PROPERTIES_EDGES, 40000]).map(lambda n: json.dumps({"k": "x" * (n - 9)})),
)


def _circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


def _circular_list() -> dict[str, Any]:
    inner: list[Any] = []
    inner.append(inner)
    return {"a": inner}


HOSTILE_PROPERTIES = st.one_of(
    st.builds(_circular_dict),
    st.builds(_circular_list),
    st.dictionaries(ODD_KEYS, TREE, max_size=5),
    st.dictionaries(KEYS, JSON_TREE, max_size=5),
    st.integers(1, 3000).map(nested),
    PROPERTIES_TEXT,
    # {"k":"..."} compact adds 8 characters
    st.sampled_from([1000, *PROPERTIES_EDGES, 40000]).map(lambda n: {"k": "\u00e9" * (n - 8)}),
    WRONG_TYPE,
)
VALID_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), VALID_ID
)
VALID_PROPERTIES = st.dictionaries(st.sampled_from(["color", "size", "n"]), VALID_LEAF, min_size=1, max_size=3)
HOSTILE_IMPRESSION = st.one_of(
    st.lists(HOSTILE_TEXT, max_size=30),
    st.lists(VALID_ID, max_size=30),
    st.iterables(VALID_ID, max_size=26),
    st.dictionaries(VALID_ID, st.integers(), max_size=3),
    TEXT,
    WRONG_TYPE,
)
ATTRIBUTION_TEXT = st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30), TEXT)


def _attribution_or_text(text: str) -> Any:
    try:
        return MetricAttribution(event_attribution_source=text)
    except ValidationError:
        return text  # a str where a MetricAttribution belongs: the wrong type


HOSTILE_ATTRIBUTION = st.one_of(
    ATTRIBUTION_TEXT.map(_attribution_or_text),
    st.dictionaries(st.just("eventAttributionSource"), st.text(max_size=5)),
    WRONG_TYPE,
)


@attrs.frozen
class Member:
    valid: st.SearchStrategy[Any]
    hostile: st.SearchStrategy[Any]
    required: bool = False


def _id(required: bool = False) -> Member:
    return Member(VALID_ID if required else optional(VALID_ID), HOSTILE_TEXT, required)


def _props() -> Member:
    return Member(optional(VALID_PROPERTIES), HOSTILE_PROPERTIES)


SHAPES: dict[type[Any], dict[str, Member]] = {
    Event: {
        "event_type": _id(required=True),
        "sent_at": Member(VALID_TIMESTAMP, HOSTILE_TIMESTAMP, required=True),
        "event_id": _id(),
        "event_value": Member(optional(st.floats(allow_nan=False, allow_infinity=False)), HOSTILE_NUMBER),
        "item_id": _id(),
        "properties": _props(),
        "recommendation_id": _id(),
        "impression": Member(optional(st.lists(VALID_ID, min_size=1, max_size=3)), HOSTILE_IMPRESSION),
        "metric_attribution": Member(
            optional(st.builds(MetricAttribution, event_attribution_source=st.just("email"))), HOSTILE_ATTRIBUTION
        ),
    },
    MetricAttribution: {"event_attribution_source": Member(st.just("campaign"), ATTRIBUTION_TEXT | WRONG_TYPE, True)},
    Item: {"item_id": _id(required=True), "properties": _props()},
    User: {"user_id": _id(required=True), "properties": _props()},
    Action: {"action_id": _id(required=True), "properties": _props()},
    ActionInteraction: {
        "action_id": _id(required=True),
        "session_id": _id(required=True),
        "timestamp": Member(VALID_TIMESTAMP, HOSTILE_TIMESTAMP, required=True),
        "event_type": _id(required=True),
        "user_id": _id(),
        "event_id": _id(),
        "recommendation_id": _id(),
        "impression": Member(optional(st.lists(VALID_ID, min_size=1, max_size=3)), HOSTILE_IMPRESSION),
        "properties": _props(),
    },
}

# how a record of each shape travels: the operation and the fixed members of its request
CARRIER: dict[type[Any], tuple[ops.Operation, dict[str, Any]]] = {
    Event: (ops.PUT_EVENTS, {"tracking_id": TRACKER, "session_id": "s", "user_id": "u"}),
    Item: (ops.PUT_ITEMS, {"dataset_arn": ARN}),
    User: (ops.PUT_USERS, {"dataset_arn": ARN.replace("ITEMS", "USERS")}),
    Action: (ops.PUT_ACTIONS, {"dataset_arn": ARN.replace("ITEMS", "ACTIONS")}),
    ActionInteraction: (ops.PUT_ACTION_INTERACTIONS, {"tracking_id": TRACKER}),
}


_T = TypeVar("_T")


def outcome(build: Callable[[], _T]) -> _T | ValidationError:
    """What ``build()`` returns, or the ValidationError it raises (anything else propagates)."""
    try:
        return build()
    except ValidationError as error:
        return error


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _root(path: str) -> str:
    found = re.match(r"[a-z_]+", path)
    return found.group() if found else path


def _assert_quiet(error: ValidationError, values: list[Any]) -> None:
    """The message never repeats a (long enough to tell) string value it was given."""
    text = str(error)
    for value in values:
        if isinstance(value, str) and len(value) >= 16 and value.strip():
            assert value not in text, f"{error.path}: the message repeats the value"


@attrs.define
class Accepted:
    """Requests that passed the client's validation; the emulator must accept each of them."""

    calls: list[tuple[ops.Operation, dict[str, Any]]] = attrs.field(factory=list)
    refused: int = 0

    def carry(self, record: Any) -> None:
        """Wrap a built record in its request; a request-level refusal must name the record."""
        if isinstance(record, MetricAttribution):
            record = Event(event_type="view", sent_at=1, metric_attribution=record)
        op, fixed = CARRIER[type(record)]
        kwargs = {**fixed, op.record_field: [record]}
        error = outcome(lambda: op.request(**kwargs))
        if isinstance(error, ValidationError):  # only the size of a whole event is checked at the request
            assert error.path == f"{op.record_field}[0]", error
            assert "bytes" in error.message
            self.refused += 1
            return
        self.calls.append((op, kwargs))


async def send_all(accepted: Accepted) -> int:
    """Send every accepted request to a fresh emulator; each must be answered 200."""
    async with (
        Emulator() as emu,
        PersonalizeEventsClient(
            region="us-east-1",
            endpoint_url=emu.endpoint_url,
            credentials=Credentials("AKIDFUZZ", "fuzz-secret"),
            config=ClientConfig(max_attempts=1),
        ) as client,
    ):
        slots = asyncio.Semaphore(16)

        async def send(op: ops.Operation, kwargs: dict[str, Any]) -> None:
            async with slots:
                try:
                    meta = await getattr(client, op.snake_name)(**kwargs)
                except InvalidInputException as error:
                    shown = [to_wire(r) for r in kwargs[op.record_field]]
                    pytest.fail(f"the emulator refused a request the client accepted: {error.message}: {shown!r:.2000}")
                assert meta.http_status == 200

        await asyncio.gather(*(send(op, kwargs) for op, kwargs in accepted.calls))
        statuses = {status for (_, status) in emu.calls}
    assert statuses <= {200}
    return len(accepted.calls)


def _draw_members(data: st.DataObject, members: dict[str, Member], hostile: set[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, member in members.items():
        value = data.draw(member.hostile if name in hostile else member.valid, label=name)
        if value is None and name not in hostile and not member.required:
            continue
        kwargs[name] = value
    return kwargs


# -- the tests -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES), ids=lambda s: s.__name__)
async def test_one_hostile_member_is_named_or_the_emulator_accepts_the_request(shape: type[Any]) -> None:
    """One hostile member, the rest valid: a ValidationError naming that member, or a request the emulator takes."""
    members = SHAPES[shape]
    accepted = Accepted()
    errors: dict[str, int] = {}

    @FUZZ
    @given(data=st.data())
    def build(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(members)), label="hostile member")
        kwargs = _draw_members(data, members, {target})
        record = outcome(lambda: shape(**kwargs))
        if isinstance(record, ValidationError):
            assert _root(record.path) == target, (record.path, target)
            _assert_quiet(record, list(kwargs.values()))
            errors[target] = errors.get(target, 0) + 1
            return
        accepted.carry(record)

    build()
    sent = await send_all(accepted)
    print(f"{shape.__name__}: {EXAMPLES} examples, refused by member {errors}, {sent} sent and accepted")
    assert errors, "hostile values were generated"


@pytest.mark.parametrize("shape", list(SHAPES), ids=lambda s: s.__name__)
async def test_every_member_hostile_at_once_is_named_or_accepted(shape: type[Any]) -> None:
    """Every member hostile at once: the ValidationError names one of the shape's members, or the emulator accepts."""
    members = SHAPES[shape]
    accepted = Accepted()

    @FUZZ
    @given(data=st.data())
    def build(data: st.DataObject) -> None:
        kwargs = _draw_members(data, members, set(members))
        record = outcome(lambda: shape(**kwargs))
        if isinstance(record, ValidationError):
            assert _root(record.path) in members, record.path
            _assert_quiet(record, list(kwargs.values()))
            return
        accepted.carry(record)

    build()
    await send_all(accepted)


REQUESTS: dict[ops.Operation, dict[str, Member]] = {}
_RECORDS = {
    ops.PUT_EVENTS: st.builds(Event, event_type=VALID_ID, sent_at=VALID_TIMESTAMP, event_id=optional(VALID_ID)),
    ops.PUT_ITEMS: st.builds(Item, item_id=VALID_ID, properties=optional(VALID_PROPERTIES)),
    ops.PUT_USERS: st.builds(User, user_id=VALID_ID),
    ops.PUT_ACTIONS: st.builds(Action, action_id=VALID_ID),
    ops.PUT_ACTION_INTERACTIONS: st.builds(
        ActionInteraction, action_id=VALID_ID, session_id=VALID_ID, timestamp=VALID_TIMESTAMP, event_type=VALID_ID
    ),
}
HOSTILE_ARN = st.one_of(
    HOSTILE_TEXT,
    st.builds(lambda p, rest: f"arn:{p}:personalize:{rest}", st.text(max_size=6), st.text(ANY_CHAR, max_size=300)),
    st.sampled_from(
        [
            "arn:aws:personalize:::x",
            "arn:AWS:personalize:us-east-1:1:dataset/a",
            "xarn:aws:personalize:a:b:c",
            "arn:aws:personalize:\n:b:c",
            "arn:aws:personalize:a:b:\n",
            "arn:aws-cn:personalize:cn-north-1:1:dataset/" + "x" * 230,
        ]
    ),
)
for _op, _records in _RECORDS.items():
    _hostile_list = st.one_of(
        st.lists(_records, max_size=12),
        st.lists(st.one_of(_records, WRONG_TYPE), min_size=1, max_size=3),
        st.iterables(_records, max_size=11),
        _records,
        TEXT,
        WRONG_TYPE,
    )
    _members = {_op.record_field: Member(st.lists(_records, min_size=1, max_size=10), _hostile_list, True)}
    if _op.resource_field == "dataset_arn":
        _members["dataset_arn"] = Member(st.just(ARN), HOSTILE_ARN, True)
    else:
        _members["tracking_id"] = _id(required=True)
    if _op is ops.PUT_EVENTS:
        _members["session_id"] = _id(required=True)
        _members["user_id"] = _id()
    REQUESTS[_op] = _members


@pytest.mark.parametrize("op", list(REQUESTS), ids=lambda op: op.name)
async def test_hostile_request_members_are_named_or_accepted(op: ops.Operation) -> None:
    """Hostile ids, ARNs and record lists in a request: a ValidationError naming the member, or a 200."""
    members = REQUESTS[op]
    accepted = Accepted()

    @FUZZ
    @given(data=st.data())
    def build(data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(members)), label="hostile member")
        kwargs = _draw_members(data, members, {target})
        request = outcome(lambda: op.request(**kwargs))
        if isinstance(request, ValidationError):
            assert _root(request.path) == target, (request.path, target)
            return
        kwargs[op.record_field] = list(getattr(request, op.record_field))  # an iterator was consumed
        accepted.calls.append((op, kwargs))

    build()
    await send_all(accepted)


# -- JSON Lines --------------------------------------------------------------------------------------------------

JSON_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(ANY_CHAR, max_size=20),
        st.builds(
            lambda piece, n: piece * n,
            st.sampled_from(["x", "\u00e9", "\U0001f44d", "\x00"]),
            st.sampled_from([n for m in TEXT_MAXIMA for n in (m, m + 1)]),
        ),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
WIRE_VALID: dict[str, st.SearchStrategy[Any]] = {
    "sentAt": st.one_of(
        st.integers(0, 4_000_000_000), st.floats(0, 4e9), VALID_TIMESTAMP.filter(lambda t: isinstance(t, str))
    ),
    "timestamp": st.one_of(st.integers(0, 4_000_000_000), st.floats(0, 4e9)),
    "eventValue": st.floats(allow_nan=False, allow_infinity=False),
    "properties": st.one_of(VALID_PROPERTIES, VALID_PROPERTIES.map(json.dumps)),
    "recommendationId": st.text(
        st.characters(exclude_categories=("Cs",)), min_size=1, max_size=C.limit("Event", "recommendation_id").maximum
    ),
    "impression": st.lists(VALID_ID, min_size=1, max_size=5),
    "metricAttribution": st.just({"eventAttributionSource": "email"}),
}
WIRE_HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "sentAt": ISO_TEXT,
    "timestamp": ISO_TEXT,
    "properties": st.one_of(
        st.dictionaries(KEYS, JSON_TREE, max_size=4), PROPERTIES_TEXT, st.integers(1, 300).map(nested)
    ),
    "impression": st.lists(TEXT, max_size=30),
    "metricAttribution": st.one_of(
        st.fixed_dictionaries({"eventAttributionSource": ATTRIBUTION_TEXT}), st.dictionaries(KEYS, JSON_VALUE)
    ),
}


def _line_members(op: ops.Operation) -> list[str]:
    from aiopersonalize_events.cli import line_members

    names = [a.name for a in attrs.fields(op.record)] + list(line_members(op))
    return sorted(_camel(name) for name in names)


def _required_members(op: ops.Operation) -> set[str]:
    from aiopersonalize_events.cli import line_members

    record = {_camel(a.name) for a in attrs.fields(op.record) if a.default is attrs.NOTHING}
    return record | ({"sessionId"} if "session_id" in line_members(op) else set())


@st.composite
def json_lines(draw: Callable[[st.SearchStrategy[Any]], Any], op: ops.Operation) -> str:
    """A line as a JSON Lines file might hold it: mostly objects with some hostile members, sometimes broken text."""
    names = _line_members(op)

    def line_object() -> dict[str, Any]:
        hostile = draw(st.sets(st.sampled_from([*names, "unknownMember"]), max_size=2))
        chosen = draw(st.sets(st.sampled_from(names), max_size=len(names)))
        required = _required_members(op) if draw(st.integers(0, 3)) else set()
        line = {}
        for name in sorted(chosen | required | hostile):
            if name in hostile:
                strategy = st.one_of(JSON_VALUE, TEXT, WIRE_HOSTILE.get(name, JSON_VALUE))
            else:
                strategy = WIRE_VALID.get(name, VALID_ID)
            line[name] = draw(strategy)
        return line

    kind = draw(st.sampled_from(["object", "object", "object", "object", "broken", "deep", "value", "text"]))
    if kind == "object":
        return json.dumps(line_object(), ensure_ascii=draw(st.booleans()))
    if kind == "broken":
        text = json.dumps(line_object())
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from(["", "}", "\x00", "\ud800", ",", "{", "\\", "\n"]))
    if kind == "deep":  # properties nested as objects, deeper than json can parse
        text = json.dumps(line_object())
        depth = draw(st.sampled_from([101, 990, 5000, 100_000]))
        return text[:1] + '"properties":' + '{"a":' * depth + "1" + "}" * depth + "," + text[1:]
    if kind == "value":
        return json.dumps(draw(JSON_VALUE))
    return draw(st.text(ANY_CHAR, max_size=60))


@pytest.mark.parametrize("op", ops.OPERATIONS, ids=lambda op: op.name)
async def test_fuzzed_json_lines_become_a_line_error_or_an_accepted_record(op: ops.Operation) -> None:
    """The CLI's line reader turns a fuzzed line into a LineError with a reason or a record the emulator takes."""
    from aiopersonalize_events.cli import LineError, line_members, parse_line

    resource = ARN if op.resource_field == "dataset_arn" else TRACKER
    accepted = Accepted()
    outcomes = {"refused": 0, "accepted": 0}

    @settings(FUZZ, max_examples=120)
    @given(line=json_lines(op), assign_event_id=st.booleans())
    def read(line: str, assign_event_id: bool) -> None:
        try:
            parsed = parse_line(op, line, resource=resource, assign_event_id=assign_event_id)
        except LineError as error:
            reason = error.reason
            assert isinstance(reason, str)
            assert reason
            outcomes["refused"] += 1
            return
        outcomes["accepted"] += 1
        kwargs = {op.resource_field: resource, op.record_field: [parsed.record]}
        kwargs.update(
            {name: value for name, value in zip(line_members(op), parsed.members, strict=True) if value is not None}
        )
        accepted.calls.append((op, kwargs))

    read()
    await send_all(accepted)
    print(f"JSON lines for {op.cli_name}: {outcomes}")
    assert outcomes["refused"]
    assert outcomes["accepted"]


# -- every limit of the shared table, at its edges: the client and the emulator agree ----------------------------


async def _post_wire(url: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a wire document as is (no client in the way), with a well-formed signature for credentials=None."""
    headers = {"Authorization": _FAKE_AUTHORIZATION, "x-amz-date": "20240101T000000Z"}
    async with aiohttp.ClientSession() as session, session.post(url, json=document, headers=headers) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("row", C.LIMITS, ids=lambda r: r.id)
async def test_client_and_emulator_agree_at_every_limit_edge(row: C.Limit) -> None:
    """At each edge the client accepts and the emulator answers 200; one past it the client names the member
    (ValidationError) and the emulator, checked against the service model's literal number, names it too."""
    op = ops.BY_NAME[row.operation]
    accepted = Accepted()
    for n in row.accepted_sizes(row.client_maximum):
        request = from_wire(op.request, row.wire_request(row.value(n)))
        accepted.calls.append((op, {f.name: getattr(request, f.name) for f in attrs.fields(op.request)}))
    for n in row.refused_sizes(row.client_maximum):
        with pytest.raises(ValidationError) as info:
            from_wire(op.request, row.wire_request(row.value(n)))
        assert info.value.path.endswith(row.client_path), (n, info.value.path)
        assert _root(info.value.path) == re.sub("([A-Z])", r"_\1", str(row.wire_path[0])).lower(), info.value.path
    assert await send_all(accepted) == 2
    async with Emulator() as emu:
        url = emu.endpoint_url + op.path
        for n in row.refused_sizes():
            status, answer = await _post_wire(url, row.wire_request(row.value(n)))
            assert status == 400, (n, answer)
            bound = "less than or equal to" if n > row.maximum else "greater than or equal to"
            assert (
                f"Value at '{row.message_path}' failed to satisfy constraint: Member must have length {bound}"
                in (answer["message"])
            )
        assert emu.calls == {(row.operation, 400): len(row.refused_sizes())}


# -- regressions found by the fuzzing above --------------------------------------------------------------------


WIRE_SHAPES = [Event, MetricAttribution, Item, User, Action, ActionInteraction, *(op.request for op in ops.OPERATIONS)]
WIRE_MEMBER_NAMES = st.sampled_from(
    sorted({name for cls in WIRE_SHAPES for name in (_camel(a.name) for a in attrs.fields(cls))})
)


WIRE_KEY = st.one_of(WIRE_MEMBER_NAMES, WIRE_MEMBER_NAMES, ODD_KEYS)
WIRE_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(ANY_CHAR, max_size=8))
WIRE_DICT = st.recursive(
    st.dictionaries(WIRE_KEY, WIRE_LEAF, max_size=5),
    lambda inner: st.dictionaries(WIRE_KEY, st.one_of(WIRE_LEAF, inner, st.lists(inner, max_size=2)), max_size=5),
    max_leaves=4,
)


def test_from_wire_with_any_keys_raises_only_a_validation_error_with_a_text_path() -> None:
    """from_wire on objects with non-string keys and arbitrary values gives a shape or a ValidationError (str path).

    Regression: a key that is not a string made ``from_wire`` raise TypeError
    (sorting mixed keys) or AttributeError (a non-str path, once nested).
    """

    @settings(FUZZ, max_examples=300)
    @given(cls=st.sampled_from(WIRE_SHAPES), data=WIRE_DICT)
    def structure(cls: type[Any], data: dict[Any, Any]) -> None:
        result = outcome(lambda: from_wire(cls, data))
        if isinstance(result, ValidationError):
            assert isinstance(result.path, str)

    structure()
    with pytest.raises(ValidationError) as caught:
        from_wire(ops.PUT_EVENTS.request, {"trackingId": "t", "sessionId": "s", "eventList": [{1: "x", "a": 2}]})
    assert caught.value.path == "event_list[0].1"


def _at_stack_depth(frames: int, build: Callable[[], Any]) -> str:
    if frames:
        return _at_stack_depth(frames - 1, build)
    return "refused" if isinstance(outcome(build), ValidationError) else "accepted"


async def test_properties_nesting_is_judged_the_same_at_any_stack_depth() -> None:
    """Deep properties are refused or accepted alike whatever the caller's stack; the emulator agrees.

    Regression: both sides parsed with Python's json, whose recursion limit
    counts the caller's frames, so properties nested ~600 deep passed the
    client's check and were refused by the emulator (or the other way round).
    """
    accepted = Accepted()
    for depth in (1, 50, 99, 100, 101, 400, 600, 900, 990, 2000):
        for props in (nested(depth), '{"a":' + "[" * depth + "]" * depth + "}"):
            outcomes = {
                _at_stack_depth(frames, lambda props=props: Item(item_id="i", properties=props)) for frames in (0, 600)
            }
            assert len(outcomes) == 1, (depth, outcomes)
            if outcomes == {"accepted"}:
                accepted.carry(Item(item_id=f"i{depth}", properties=props))
            else:
                assert depth >= 100, outcomes
    assert len(accepted.calls) == 6  # depths 1, 50, 99: as a mapping and as text
    await send_all(accepted)

    too_deep = '{"a":' + "[" * 900 + "]" * 900 + "}"
    body = json.dumps({"datasetArn": ARN, "items": [{"itemId": "i", "properties": too_deep}]}).encode()
    async with Emulator() as emu, aiohttp.ClientSession() as session:
        headers = {"Authorization": _FAKE_AUTHORIZATION, "x-amz-date": "20240101T000000Z"}
        async with session.post(emu.endpoint_url + "/items", data=body, headers=headers) as response:
            answer = await response.json(content_type=None)
    assert response.status == 400
    assert "nested at most 100 deep" in answer["message"]


_FAKE_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20240101/us-east-1/personalize/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)
