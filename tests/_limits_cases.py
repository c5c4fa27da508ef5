"""The service's per-member limits, as one table that the shape, emulator and hostile-input tests loop over.

One row per ``shape.member`` of the service model (section 1 of DESIGN.md):
the member's wire name and Python name, its length bounds, its pattern, a
valid sample, and where it sits in a valid request of the operation that
carries it. ``maximum`` and ``minimum`` are the service model's numbers,
spelled here as literals: the emulator's checks are tested against them, so a
wrong constant in ``aiopersonalize_events._limits`` (which the emulator reads
too) cannot hide. The client's shapes are tested against ``client_maximum``,
read from ``_limits`` where it has a constant, and a test asserts that each
such constant equals the literal.

No tests here; ``test_shapes``, ``test_emulator_wire``, ``test_emulator_boto3``
and ``test_reliability_input`` import it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any, Final, Literal

from aiopersonalize_events import _limits as L

__all__ = [
    "ARN_PREFIX",
    "EVENT_MAX_BYTES",
    "LIMITS",
    "RECORDS",
    "VALID",
    "Limit",
    "by_kind",
    "limit",
    "properties_text",
    "set_at",
    "wire_message_path",
]

Kind = Literal["text", "properties", "list", "entry", "records"]
"""``text``: a string member; ``properties``: JSON object text; ``list``: the impression list (its entry
count); ``entry``: one impression entry (its length); ``records``: the records of a call (their count)."""

ARN_PREFIX: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/"
"""A dataset ARN without its last part; ``Limit.value`` pads it to any length of 24 characters or more."""

SHORTEST_ARN: Final = "arn:aws:personalize:::x"
"""The shortest value the service's ARN pattern ``arn:([a-z\\d-]+):personalize:.*:.*:.+`` matches (23 characters)."""

EVENT_MAX_BYTES: Final = 10240
"""One event's compact wire JSON, in UTF-8 bytes (10 KB), as the service model's literal."""

TRACKING_ID: Final = "tracker-1"
ITEMS_ARN: Final = ARN_PREFIX + "ITEMS"
USERS_ARN: Final = ARN_PREFIX + "USERS"
ACTIONS_ARN: Final = ARN_PREFIX + "ACTIONS"

RECORDS: Final[dict[str, dict[str, Any]]] = {
    "PutEvents": {"eventType": "click", "sentAt": 1700000000},
    "PutItems": {"itemId": "item-1"},
    "PutUsers": {"userId": "user-1"},
    "PutActions": {"actionId": "action-1"},
    "PutActionInteractions": {
        "actionId": "action-1",
        "sessionId": "session-1",
        "timestamp": 1700000000,
        "eventType": "Taken",
    },
}
"""The smallest valid record of each operation, wire form."""

VALID: Final[dict[str, dict[str, Any]]] = {
    "PutEvents": {
        "trackingId": TRACKING_ID,
        "sessionId": "session-1",
        "userId": "user-1",
        "eventList": [
            {
                "eventId": "event-1",
                "eventType": "click",
                "itemId": "item-1",
                "properties": '{"n":"12"}',
                "sentAt": 1700000000,
                "recommendationId": "rec-1",
                "impression": ["item-1", "item-2"],
                "metricAttribution": {"eventAttributionSource": "email"},
            }
        ],
    },
    "PutItems": {"datasetArn": ITEMS_ARN, "items": [{"itemId": "item-1", "properties": '{"genre":"jazz"}'}]},
    "PutUsers": {"datasetArn": USERS_ARN, "users": [{"userId": "user-1", "properties": '{"tier":"gold"}'}]},
    "PutActions": {"datasetArn": ACTIONS_ARN, "actions": [{"actionId": "action-1", "properties": '{"v":"1"}'}]},
    "PutActionInteractions": {
        "trackingId": TRACKING_ID,
        "actionInteractions": [
            {
                "actionId": "action-1",
                "userId": "user-1",
                "sessionId": "session-1",
                "timestamp": 1700000000,
                "eventType": "Taken",
                "eventId": "interaction-1",
                "recommendationId": "rec-1",
                "impression": ["action-1"],
                "properties": '{"n":"12"}',
            }
        ],
    },
}
"""One valid request per operation, wire form, with every member a row below points at."""


def properties_text(n: int) -> str:
    """JSON object text of exactly ``n`` characters: ``""`` (0), ``{}`` (2), or ``{"k":"xx..."}`` (8 or more)."""
    if n == 0:
        return ""
    if n == 2:
        return "{}"
    if n < 8:
        raise ValueError(f"no JSON object text of {n} characters here")
    return '{"k":"' + "x" * (n - 8) + '"}'


@dataclasses.dataclass(frozen=True)
class Limit:
    """One ``shape.member`` and its limits.

    ``shape`` and ``member`` are the client's class and attribute,
    ``client_path`` what its ``ValidationError`` names when the member is set
    directly on that shape. ``operation`` and ``wire_path`` place the member
    in ``VALID[operation]`` (list indexes 0-based); ``wire`` is its wire name.
    ``minimum`` is None where the model sets no minimum length.
    ``constant`` names the ``_limits`` constant holding ``maximum``, if any.
    """

    row: str
    shape: str
    member: str
    wire: str
    operation: str
    wire_path: tuple[str | int, ...]
    kind: Kind
    minimum: int | None
    maximum: int
    constant: str | None
    pattern: str | None
    client_path: str

    @property
    def id(self) -> str:
        """A test id: ``Shape.member``."""
        return f"{self.shape}.{self.member}"

    @property
    def sample(self) -> Any:
        """The member's valid value in ``VALID[operation]`` (a copy)."""
        target: Any = VALID[self.operation]
        for key in self.wire_path:
            target = target[key]
        return copy.deepcopy(target[:1] if self.kind == "entry" else target)

    @property
    def client_maximum(self) -> int:
        """The maximum the client's shapes use: the ``_limits`` constant where there is one."""
        if self.constant is None:
            return self.maximum
        value = getattr(L, self.constant)
        assert isinstance(value, int)
        return value

    @property
    def shortest(self) -> int:
        """The smallest size a valid value can have (the minimum, or more where the pattern or JSON needs it)."""
        if self.kind == "properties":
            return 2  # {}
        if self.pattern is not None and self.wire == "datasetArn":
            return len(SHORTEST_ARN)
        return self.minimum if self.minimum is not None else 1

    def value(self, n: int) -> Any:
        """A value of this member of size ``n`` (characters, entries or records), wire form; valid when in bounds."""
        if self.kind == "properties":
            return properties_text(n)
        if self.kind == "list":
            return [f"i{k}" for k in range(n)]
        if self.kind == "entry":
            return ["x" * n]
        if self.kind == "records":
            return [copy.deepcopy(RECORDS[self.operation]) for _ in range(n)]
        if self.wire == "datasetArn":
            if n == len(SHORTEST_ARN):
                return SHORTEST_ARN
            if n < len(ARN_PREFIX) + 1:
                raise ValueError(f"no padded ARN of {n} characters")
            return ARN_PREFIX + "x" * (n - len(ARN_PREFIX))
        return "x" * n

    def accepted_sizes(self, maximum: int | None = None) -> tuple[int, ...]:
        """The sizes at the edges inside the bounds: the shortest valid one and the maximum."""
        return (self.shortest, self.maximum if maximum is None else maximum)

    def refused_sizes(self, maximum: int | None = None) -> tuple[int, ...]:
        """The sizes just outside the bounds: one past the maximum, and one under the minimum if there is one."""
        top = (self.maximum if maximum is None else maximum) + 1
        return (top,) if self.minimum is None else (top, self.minimum - 1)

    def wire_request(self, value: Any) -> dict[str, Any]:
        """A fresh copy of ``VALID[operation]`` with this member set to ``value``."""
        return set_at(VALID[self.operation], self.wire_path, value)

    @property
    def message_path(self) -> str:
        """The path the service's message names for this member (``eventList.1.member.itemId``)."""
        path = self.wire_path + ((0,) if self.kind == "entry" else ())
        return wire_message_path(path)

    @property
    def cases(self) -> Iterator[tuple[int, bool]]:
        """(size, accepted) for every boundary of the service's literal numbers."""
        for n in self.accepted_sizes():
            yield n, True
        for n in self.refused_sizes():
            yield n, False


def set_at(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the member at ``path`` set to ``value``."""
    result = copy.deepcopy(document)
    target: Any = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


def wire_message_path(path: tuple[str | int, ...]) -> str:
    """The service's form of a wire path: list indexes as ``<1-based index>.member``."""
    return ".".join(f"{part + 1}.member" if isinstance(part, int) else part for part in path)


_ARN_PATTERN = r"arn:([a-z\d-]+):personalize:.*:.*:.+"
_SOURCE_PATTERN = r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$"

_Path = tuple[str | int, ...]


def _id(shape: str, member: str, operation: str, path: _Path) -> Limit:
    """A plain id or string: 1..256 characters."""
    return Limit(
        row="plain-ids",
        shape=shape,
        member=member,
        wire=str(path[-1]),
        operation=operation,
        wire_path=path,
        kind="text",
        minimum=1,
        maximum=256,
        constant="ID_MAX",
        pattern=None,
        client_path=member,
    )


def _records(shape: str, member: str, operation: str, wire: str) -> Limit:
    """The records of a call: 1..10 of them."""
    return Limit(
        row="records-per-call",
        shape=shape,
        member=member,
        wire=wire,
        operation=operation,
        wire_path=(wire,),
        kind="records",
        minimum=1,
        maximum=10,
        constant="RECORDS_PER_CALL",
        pattern=None,
        client_path=member,
    )


def _arn(shape: str, operation: str) -> Limit:
    """``datasetArn``: at most 256 characters (no minimum), matching the ARN pattern."""
    return Limit(
        row="dataset-arn",
        shape=shape,
        member="dataset_arn",
        wire="datasetArn",
        operation=operation,
        wire_path=("datasetArn",),
        kind="text",
        minimum=None,
        maximum=256,
        constant="ARN_MAX",
        pattern=_ARN_PATTERN,
        client_path="dataset_arn",
    )


def _recommendation(shape: str, operation: str, path: _Path) -> Limit:
    """``recommendationId``: 1..40 characters."""
    return Limit(
        row="recommendation-id",
        shape=shape,
        member="recommendation_id",
        wire="recommendationId",
        operation=operation,
        wire_path=path,
        kind="text",
        minimum=1,
        maximum=40,
        constant="RECOMMENDATION_ID_MAX",
        pattern=None,
        client_path="recommendation_id",
    )


def _impression(shape: str, operation: str, path: _Path) -> tuple[Limit, Limit]:
    """``impression``: 1..25 entries, each 1..256 characters."""
    entries = Limit(
        row="impression",
        shape=shape,
        member="impression",
        wire="impression",
        operation=operation,
        wire_path=path,
        kind="list",
        minimum=1,
        maximum=25,
        constant="IMPRESSION_MAX_ENTRIES",
        pattern=None,
        client_path="impression",
    )
    return entries, dataclasses.replace(
        entries, member="impression[]", kind="entry", maximum=256, constant="ID_MAX", client_path="impression[0]"
    )


def _source(shape: str, operation: str, path: _Path) -> Limit:
    """``eventAttributionSource``: at most 1024 characters (no minimum) of printable ASCII, not blank."""
    return Limit(
        row="attribution-source",
        shape=shape,
        member="event_attribution_source",
        wire="eventAttributionSource",
        operation=operation,
        wire_path=path,
        kind="text",
        minimum=None,
        maximum=1024,
        constant="ATTRIBUTION_SOURCE_MAX",
        pattern=_SOURCE_PATTERN,
        client_path="event_attribution_source",
    )


_PROPERTIES_ROWS: Final = {1024: "event-properties", 32000: "item-action-properties", 24000: "user-properties"}


def _properties(shape: str, operation: str, path: _Path, maximum: int, constant: str) -> Limit:
    """``properties``: JSON object text of 1..``maximum`` characters."""
    return Limit(
        row=_PROPERTIES_ROWS[maximum],
        shape=shape,
        member="properties",
        wire="properties",
        operation=operation,
        wire_path=path,
        kind="properties",
        minimum=1,
        maximum=maximum,
        constant=constant,
        pattern=None,
        client_path="properties",
    )


_EV: Final = ("eventList", 0)
_AI: Final = ("actionInteractions", 0)
_AI_PROPS: Final = (*_AI, "properties")

LIMITS: Final[tuple[Limit, ...]] = (
    # PutEvents: the request, Event and MetricAttribution
    _id("PutEventsRequest", "tracking_id", "PutEvents", ("trackingId",)),
    _id("PutEventsRequest", "session_id", "PutEvents", ("sessionId",)),
    _id("PutEventsRequest", "user_id", "PutEvents", ("userId",)),
    _records("PutEventsRequest", "event_list", "PutEvents", "eventList"),
    _id("Event", "event_type", "PutEvents", (*_EV, "eventType")),
    _id("Event", "event_id", "PutEvents", (*_EV, "eventId")),
    _id("Event", "item_id", "PutEvents", (*_EV, "itemId")),
    _recommendation("Event", "PutEvents", (*_EV, "recommendationId")),
    *_impression("Event", "PutEvents", (*_EV, "impression")),
    _properties("Event", "PutEvents", (*_EV, "properties"), 1024, "EVENT_PROPERTIES_MAX"),
    _source("MetricAttribution", "PutEvents", (*_EV, "metricAttribution", "eventAttributionSource")),
    # PutItems, PutUsers, PutActions: the request and its records
    _arn("PutItemsRequest", "PutItems"),
    _records("PutItemsRequest", "items", "PutItems", "items"),
    _id("Item", "item_id", "PutItems", ("items", 0, "itemId")),
    _properties("Item", "PutItems", ("items", 0, "properties"), 32000, "ITEM_PROPERTIES_MAX"),
    _arn("PutUsersRequest", "PutUsers"),
    _records("PutUsersRequest", "users", "PutUsers", "users"),
    _id("User", "user_id", "PutUsers", ("users", 0, "userId")),
    _properties("User", "PutUsers", ("users", 0, "properties"), 24000, "USER_PROPERTIES_MAX"),
    _arn("PutActionsRequest", "PutActions"),
    _records("PutActionsRequest", "actions", "PutActions", "actions"),
    _id("Action", "action_id", "PutActions", ("actions", 0, "actionId")),
    _properties("Action", "PutActions", ("actions", 0, "properties"), 32000, "ACTION_PROPERTIES_MAX"),
    # PutActionInteractions: the request and ActionInteraction
    _id("PutActionInteractionsRequest", "tracking_id", "PutActionInteractions", ("trackingId",)),
    _records("PutActionInteractionsRequest", "action_interactions", "PutActionInteractions", "actionInteractions"),
    _id("ActionInteraction", "action_id", "PutActionInteractions", (*_AI, "actionId")),
    _id("ActionInteraction", "session_id", "PutActionInteractions", (*_AI, "sessionId")),
    _id("ActionInteraction", "event_type", "PutActionInteractions", (*_AI, "eventType")),
    _id("ActionInteraction", "user_id", "PutActionInteractions", (*_AI, "userId")),
    _id("ActionInteraction", "event_id", "PutActionInteractions", (*_AI, "eventId")),
    _recommendation("ActionInteraction", "PutActionInteractions", (*_AI, "recommendationId")),
    *_impression("ActionInteraction", "PutActionInteractions", (*_AI, "impression")),
    _properties("ActionInteraction", "PutActionInteractions", _AI_PROPS, 1024, "ACTION_INTERACTION_PROPERTIES_MAX"),
)
"""Every length-limited member of every shape, with the service model's numbers."""


def by_kind(*kinds: Kind) -> list[Limit]:
    """The rows of the given kinds."""
    return [row for row in LIMITS if row.kind in kinds]


def limit(shape: str, member: str) -> Limit:
    """The row of ``shape.member``."""
    for row in LIMITS:
        if (row.shape, row.member) == (shape, member):
            return row
    raise KeyError(f"{shape}.{member}")


def _self_check() -> None:
    """Each row's path exists in the valid request and its sample sizes build values of that size."""
    for row in LIMITS:
        assert row.sample is not None, row.id
        for n in (row.shortest, row.maximum):
            value = row.value(n)
            size = len(value[0]) if row.kind == "entry" else len(value)
            assert size == n, (row.id, n, size)
    json.dumps(VALID)


_self_check()
