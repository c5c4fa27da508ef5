"""The records and requests of the Personalize Events API, as validated attrs classes.

Every shape is frozen, slotted and keyword-only. Construction validates every
member against the service's limits (``_limits``, through ``_validators``) and
normalises it once: timestamps become epoch seconds (a float, millisecond
precision), ``properties`` become the JSON text the service expects,
sequences become tuples. A bad value raises ``ValidationError`` naming the
member; nothing here does I/O. A record is checked once, where it is made: a
request trusts the records it is given (it checks only their type and count).

``repr`` follows the service model's ``sensitive`` flags: an ``Event`` is
sensitive as a whole and shows only its event type; elsewhere ids and
properties the model marks sensitive show as ``'***'``.

Serialisation rules live in ``_wire`` and ``serde``, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import attrs

from . import _limits as L
from ._json import dumps as _dumps
from ._redact import hidden as _hidden
from ._validators import (
    check_arn,
    check_optional_text,
    check_text,
    to_epoch,
    to_event_value,
    to_impression,
    to_properties,
    to_records,
)
from ._wire import to_wire
from .errors import ValidationError

__all__ = [
    "Action",
    "ActionInteraction",
    "Event",
    "Item",
    "MetricAttribution",
    "Properties",
    "PutActionInteractionsRequest",
    "PutActionsRequest",
    "PutEventsRequest",
    "PutItemsRequest",
    "PutUsersRequest",
    "Timestamp",
    "User",
]

Timestamp: TypeAlias = datetime | int | float | str
"""A point in time: a datetime (naive = UTC), epoch seconds, or an ISO-8601 string."""

Properties: TypeAlias = Mapping[str, Any] | str
"""A mapping of str to JSON values, or a str that already holds a JSON object."""


_ID_MAX = L.ID_MAX


# Converters: named functions so that type checkers see what __init__ accepts.
def _timestamp(value: Timestamp) -> float:
    return to_epoch("timestamp", value)


def _impression(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else to_impression("impression", value)


def _interaction_properties(value: Properties | None) -> str | None:
    return None if value is None else to_properties("properties", value, L.ACTION_INTERACTION_PROPERTIES_MAX, True)


def _item_properties(value: Properties | None) -> str | None:
    return None if value is None else to_properties("properties", value, L.ITEM_PROPERTIES_MAX, False)


def _user_properties(value: Properties | None) -> str | None:
    return None if value is None else to_properties("properties", value, L.USER_PROPERTIES_MAX, False)


def _action_properties(value: Properties | None) -> str | None:
    return None if value is None else to_properties("properties", value, L.ACTION_PROPERTIES_MAX, False)


def _event_list(value: Iterable[Event]) -> tuple[Event, ...]:
    return to_records("event_list", value, Event)


def _items(value: Iterable[Item]) -> tuple[Item, ...]:
    return to_records("items", value, Item)


def _users(value: Iterable[User]) -> tuple[User, ...]:
    return to_records("users", value, User)


def _actions(value: Iterable[Action]) -> tuple[Action, ...]:
    return to_records("actions", value, Action)


def _action_interactions(value: Iterable[ActionInteraction]) -> tuple[ActionInteraction, ...]:
    return to_records("action_interactions", value, ActionInteraction)


@attrs.frozen(kw_only=True)
class MetricAttribution:
    """The source a metric attribution credits an event to (``eventAttributionSource``).

    Printable ASCII, at most 1024 characters, not blank.
    """

    event_attribution_source: str

    def __attrs_post_init__(self) -> None:
        value = self.event_attribution_source
        check_text("event_attribution_source", value, L.ATTRIBUTION_SOURCE_MAX)
        if L.ATTRIBUTION_SOURCE_PATTERN.fullmatch(value) is None:  # match's $ would allow a final newline
            raise ValidationError("event_attribution_source", "must be printable ASCII and not blank")


@attrs.frozen(kw_only=True, init=False)
class Event:
    """One item interaction, recorded with ``put_events`` or the ``EventRecorder``.

    ``event_type`` and ``sent_at`` are required. ``sent_at`` accepts a
    datetime (naive means UTC), epoch seconds or an ISO-8601 string and is
    stored as epoch seconds. ``properties`` is a mapping (encoded once as
    compact JSON) or a JSON object string, at most 1024 characters, without
    the service's reserved keys. The whole event is at most 10 KB of wire
    JSON. Give an ``event_id`` to make retries safe; the recorder assigns one
    when it is missing. Its ``repr`` shows only the event type (the service
    model marks the whole event sensitive).
    """

    event_type: str
    sent_at: float = attrs.field(repr=_hidden)
    event_id: str | None = attrs.field(default=None, repr=_hidden)
    event_value: float | None = attrs.field(default=None, repr=_hidden)
    item_id: str | None = attrs.field(default=None, repr=_hidden)
    properties: str | None = attrs.field(default=None, repr=_hidden)
    recommendation_id: str | None = attrs.field(default=None, repr=_hidden)
    impression: tuple[str, ...] | None = attrs.field(default=None, repr=_hidden)
    metric_attribution: MetricAttribution | None = attrs.field(default=None, repr=_hidden)

    def __init__(
        self,
        *,
        event_type: str,
        sent_at: Timestamp,
        event_id: str | None = None,
        event_value: float | None = None,
        item_id: str | None = None,
        properties: Properties | None = None,
        recommendation_id: str | None = None,
        impression: Sequence[str] | None = None,
        metric_attribution: MetricAttribution | None = None,
    ) -> None:
        # One pass, members in declaration order; each check's fast path is inlined (a short ASCII str).
        _set_sent_at(self, to_epoch("sent_at", sent_at))
        chars = 0  # characters of the variable-length members, for the 10 KB bound
        if properties is not None:
            properties = to_properties("properties", properties, L.EVENT_PROPERTIES_MAX, True)
            chars += len(properties)
        _set_properties(self, properties)
        if impression is not None:
            impression = to_impression("impression", impression)
            chars += sum(len(x) + 3 for x in impression)
        _set_impression(self, impression)
        if not (type(event_type) is str and 0 < len(event_type) <= _ID_MAX and event_type.isascii()):
            check_text("event_type", event_type, _ID_MAX)
        _set_event_type(self, event_type)
        chars += len(event_type)
        if event_id is not None:
            if not (type(event_id) is str and 0 < len(event_id) <= _ID_MAX and event_id.isascii()):
                check_text("event_id", event_id, _ID_MAX)
            chars += len(event_id)
        _set_event_id(self, event_id)
        if event_value is not None:
            event_value = to_event_value("event_value", event_value)
        _set_event_value(self, event_value)
        if item_id is not None:
            if not (type(item_id) is str and 0 < len(item_id) <= _ID_MAX and item_id.isascii()):
                check_text("item_id", item_id, _ID_MAX)
            chars += len(item_id)
        _set_item_id(self, item_id)
        if recommendation_id is not None:
            check_text("recommendation_id", recommendation_id, L.RECOMMENDATION_ID_MAX)
            chars += len(recommendation_id)
        _set_recommendation_id(self, recommendation_id)
        if metric_attribution is not None:
            if not isinstance(metric_attribution, MetricAttribution):
                raise ValidationError(
                    "metric_attribution", f"must be a MetricAttribution, not {type(metric_attribution).__name__}"
                )
            chars += len(metric_attribution.event_attribution_source)
        _set_metric_attribution(self, metric_attribution)
        # 6 bytes per character covers UTF-8 and JSON escapes; only an unusually large event is measured
        if 6 * chars + 256 > L.EVENT_MAX_BYTES:
            size = len(_dumps(to_wire(self)).encode("utf-8"))
            if size > L.EVENT_MAX_BYTES:
                raise ValidationError(
                    "", f"the event is {size} bytes of JSON; the service takes at most {L.EVENT_MAX_BYTES} per event"
                )


# The slot descriptors' own setters: frozen attrs classes refuse ``self.x = ...``, and a descriptor's
# ``__set__`` skips the attribute lookup ``object.__setattr__`` makes (Event is made once per event).
_set_sent_at = Event.__dict__["sent_at"].__set__
_set_properties = Event.__dict__["properties"].__set__
_set_impression = Event.__dict__["impression"].__set__
_set_event_type = Event.__dict__["event_type"].__set__
_set_event_id = Event.__dict__["event_id"].__set__
_set_event_value = Event.__dict__["event_value"].__set__
_set_item_id = Event.__dict__["item_id"].__set__
_set_recommendation_id = Event.__dict__["recommendation_id"].__set__
_set_metric_attribution = Event.__dict__["metric_attribution"].__set__


@attrs.frozen(kw_only=True)
class Item:
    """One item of an Items dataset, for ``put_items``.

    ``properties`` (a mapping or JSON object string, at most 32000 characters)
    holds the item's metadata with keys matching the dataset schema.
    """

    item_id: str
    properties: str | None = attrs.field(default=None, converter=_item_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        check_text("item_id", self.item_id, _ID_MAX)


@attrs.frozen(kw_only=True)
class User:
    """One user of a Users dataset, for ``put_users``.

    ``properties`` (a mapping or JSON object string, at most 24000 characters)
    holds the user's metadata with keys matching the dataset schema.
    """

    user_id: str
    properties: str | None = attrs.field(default=None, converter=_user_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        check_text("user_id", self.user_id, _ID_MAX)


@attrs.frozen(kw_only=True)
class Action:
    """One action of an Actions dataset, for ``put_actions``.

    ``properties`` (a mapping or JSON object string, at most 32000 characters)
    holds the action's metadata with keys matching the dataset schema.
    """

    action_id: str
    properties: str | None = attrs.field(default=None, converter=_action_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        check_text("action_id", self.action_id, _ID_MAX)


@attrs.frozen(kw_only=True)
class ActionInteraction:
    """One interaction between a user and an action, for ``put_action_interactions``.

    ``action_id``, ``session_id``, ``timestamp`` and ``event_type`` are
    required; ``timestamp`` takes the same forms as ``Event.sent_at``, and
    ``properties`` the same limits as an event's.
    """

    action_id: str = attrs.field(repr=_hidden)
    session_id: str
    timestamp: float = attrs.field(converter=_timestamp)
    event_type: str
    user_id: str | None = attrs.field(default=None, repr=_hidden)
    event_id: str | None = None
    recommendation_id: str | None = None
    impression: tuple[str, ...] | None = attrs.field(default=None, converter=_impression, repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_interaction_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        check_text("action_id", self.action_id, _ID_MAX)
        check_text("session_id", self.session_id, _ID_MAX)
        check_text("event_type", self.event_type, _ID_MAX)
        check_optional_text("user_id", self.user_id, _ID_MAX)
        check_optional_text("event_id", self.event_id, _ID_MAX)
        check_optional_text("recommendation_id", self.recommendation_id, L.RECOMMENDATION_ID_MAX)


@attrs.frozen(kw_only=True)
class PutEventsRequest:
    """A ``PutEvents`` call: 1 to 10 events of one session (and optionally one user)."""

    tracking_id: str
    session_id: str
    event_list: tuple[Event, ...] = attrs.field(converter=_event_list)
    user_id: str | None = attrs.field(default=None, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        check_text("tracking_id", self.tracking_id, _ID_MAX)
        check_text("session_id", self.session_id, _ID_MAX)
        check_optional_text("user_id", self.user_id, _ID_MAX)


@attrs.frozen(kw_only=True)
class PutItemsRequest:
    """A ``PutItems`` call: 1 to 10 items for one Items dataset."""

    dataset_arn: str
    items: tuple[Item, ...] = attrs.field(converter=_items)

    def __attrs_post_init__(self) -> None:
        check_arn("dataset_arn", self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutUsersRequest:
    """A ``PutUsers`` call: 1 to 10 users for one Users dataset."""

    dataset_arn: str
    users: tuple[User, ...] = attrs.field(converter=_users)

    def __attrs_post_init__(self) -> None:
        check_arn("dataset_arn", self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutActionsRequest:
    """A ``PutActions`` call: 1 to 10 actions for one Actions dataset."""

    dataset_arn: str
    actions: tuple[Action, ...] = attrs.field(converter=_actions)

    def __attrs_post_init__(self) -> None:
        check_arn("dataset_arn", self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutActionInteractionsRequest:
    """A ``PutActionInteractions`` call: 1 to 10 action interactions for one tracker."""

    tracking_id: str
    action_interactions: tuple[ActionInteraction, ...] = attrs.field(converter=_action_interactions)

    def __attrs_post_init__(self) -> None:
        check_text("tracking_id", self.tracking_id, _ID_MAX)
