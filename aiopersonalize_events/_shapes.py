"""The records and requests of the Personalize Events API, as validated attrs classes.

Every shape is frozen, slotted and keyword-only. Construction validates every
member against the service's limits (``_limits``) and normalises it once:
timestamps become epoch seconds (a float, millisecond precision), ``properties``
become the JSON text the service expects, sequences become tuples. A bad value
raises ``ValidationError`` naming the member; nothing here does I/O.

Serialisation rules live in ``serde``, not here.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any, TypeAlias, TypeVar

import attrs

from . import _limits as L
from ._json import dumps as _dumps
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

_MAX_EPOCH = 32503680000.0  # 3000-01-01: larger values are almost surely milliseconds


def _hidden(value: object) -> str:
    """Show whether a sensitive member is set, never its value."""
    return "None" if value is None else "'***'"


def _check_text(path: str, value: object, maximum: int, minimum: int = 1) -> None:
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, not {type(value).__name__}")
    n = len(value)
    if n < minimum:
        raise ValidationError(path, "must not be empty" if minimum == 1 else f"must have at least {minimum} characters")
    if n > maximum:
        raise ValidationError(path, f"must have at most {maximum} characters, has {n}")
    if not value.isascii():
        _check_utf8(path, value)


def _check_utf8(path: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(path, "contains a lone surrogate and cannot be sent as UTF-8") from None


def _check_optional_text(path: str, value: object, maximum: int) -> None:
    if value is not None:
        _check_text(path, value, maximum)


def _to_epoch(path: str, value: object) -> float:
    """Normalise a Timestamp to epoch seconds rounded to milliseconds."""
    if type(value) is float and 0.0 <= value <= _MAX_EPOCH:  # the common case (time.time()); NaN fails both
        return round(value, 3)
    if isinstance(value, bool):
        raise ValidationError(path, "must be a datetime, epoch seconds or an ISO-8601 string, not bool")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            raise ValidationError(path, "is too large to be epoch seconds") from None
    elif isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        seconds = _datetime_seconds(path, aware)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        if _OLD_ISO:
            text = _six_digit_fraction(text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(path, "is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        seconds = _datetime_seconds(path, parsed)
    elif isinstance(value, date):
        raise ValidationError(path, "must be a datetime, not a date")
    else:
        raise ValidationError(
            path, f"must be a datetime, epoch seconds or an ISO-8601 string, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValidationError(path, "must be a finite, non-negative number of epoch seconds")
    if seconds > _MAX_EPOCH:
        raise ValidationError(path, "is after the year 3000; epoch milliseconds passed as seconds?")
    return round(seconds, 3)


_OLD_ISO = sys.version_info < (3, 11)  # 3.10's fromisoformat takes only 3 or 6 fraction digits
_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")


def _six_digit_fraction(text: str) -> str:
    """Pad or cut a fraction of a second to the six digits Python 3.10's ``fromisoformat`` requires."""
    found = _FRACTION.search(text)
    if found is None:
        return text
    digits = (found.group(1) + "000000")[:6]
    return f"{text[: found.start()]}.{digits}{text[found.end() :]}"


def _datetime_seconds(path: str, value: datetime) -> float:
    try:
        return value.timestamp()
    except (OverflowError, ValueError):  # e.g. datetime.min with a positive offset
        raise ValidationError(path, "is out of the range of epoch seconds") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_JSON_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _check_depth(path: str, text: str) -> None:
    """Refuse JSON text nested deeper than ``PROPERTIES_MAX_DEPTH``, whatever the caller's stack."""
    if text.count("{") + text.count("[") <= L.PROPERTIES_MAX_DEPTH:
        return  # it cannot be nested deeper than it has brackets
    depth = 0
    for found in _JSON_STRING_OR_BRACKET.finditer(text):
        token = found.group()
        if token == "{" or token == "[":
            depth += 1
            if depth > L.PROPERTIES_MAX_DEPTH:
                raise ValidationError(path, f"is nested more than {L.PROPERTIES_MAX_DEPTH} levels deep")
        elif token == "}" or token == "]":
            depth -= 1


def _to_properties(path: str, value: object, maximum: int, reserved: bool) -> str:
    """Normalise Properties to the JSON object text the service expects, checking its limits."""
    if isinstance(value, str):
        text = value
        _check_depth(path, text)
        try:
            parsed = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise ValidationError(path, "is a string that does not hold valid JSON") from None
        if not isinstance(parsed, dict):
            raise ValidationError(path, "must hold a JSON object")
        if reserved:
            _check_reserved(path, parsed)
    elif type(value) is dict or isinstance(value, Mapping):
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise ValidationError(path, f"keys must be strings, found a {type(key).__name__}")
        if reserved:
            _check_reserved(path, value)
        try:
            text = _dumps(value)
        except ValueError as exc:  # NaN/inf, circular reference
            raise ValidationError(path, f"cannot be encoded as JSON: {_reason(exc)}") from None
        except TypeError as exc:
            raise ValidationError(path, f"cannot be encoded as JSON: {_reason(exc)}") from None
        except RecursionError:
            raise ValidationError(path, "is nested too deeply to encode as JSON") from None
        _check_depth(path, text)
    else:
        raise ValidationError(path, f"must be a mapping or a JSON object string, not {type(value).__name__}")
    n = len(text)
    if n < 1:
        raise ValidationError(path, "must not be empty")
    if n > maximum:
        raise ValidationError(path, f"must be at most {maximum} characters of JSON, is {n}")
    if not text.isascii():
        _check_utf8(path, text)
    return text


def _check_reserved(path: str, keys: Iterable[str]) -> None:
    reserved = L.RESERVED_PROPERTY_KEYS
    for key in keys:
        if key.lower() in reserved:
            raise ValidationError(path, f"must not use the reserved key {key!r} (in any case)")


def _reason(exc: Exception) -> str:
    # json's messages name the type or say "Out of range float values"; never a value
    text = str(exc)
    return text.split(":", 1)[0] if "Out of range" in text else text


def _to_impression(path: str, value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(path, "must be a sequence of strings")
    result = tuple(value)
    n = len(result)
    if n < 1 or n > L.IMPRESSION_MAX_ENTRIES:
        raise ValidationError(path, f"must have 1 to {L.IMPRESSION_MAX_ENTRIES} entries, has {n}")
    for i, entry in enumerate(result):
        _check_text(f"{path}[{i}]", entry, L.ID_MAX)
    return result


def _check_event_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("event_value", f"must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        raise ValidationError("event_value", "must be a finite number") from None
    if not math.isfinite(result):
        raise ValidationError("event_value", "must be a finite number")
    return result


_T = TypeVar("_T")


def _to_records(path: str, value: object, cls: type[_T]) -> tuple[_T, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(path, f"must be a sequence of {cls.__name__}")
    records = tuple(value)
    n = len(records)
    if n < 1 or n > L.RECORDS_PER_CALL:
        raise ValidationError(path, f"must have 1 to {L.RECORDS_PER_CALL} entries, has {n}")
    for i, record in enumerate(records):
        if not isinstance(record, cls):
            raise ValidationError(f"{path}[{i}]", f"must be a {cls.__name__}, not {type(record).__name__}")
    return records


def _check_arn(value: object) -> None:
    _check_text("dataset_arn", value, L.ARN_MAX)
    assert isinstance(value, str)
    if L.ARN_PATTERN.search(value) is None:
        raise ValidationError("dataset_arn", "is not a Personalize dataset ARN (arn:PARTITION:personalize:...)")


# attrs' frozen classes refuse normal assignment; post-init normalisation uses this.
_set = object.__setattr__


# Converters: named functions so that type checkers see what __init__ accepts.
def _sent_at(value: Timestamp) -> float:
    return _to_epoch("sent_at", value)


def _timestamp(value: Timestamp) -> float:
    return _to_epoch("timestamp", value)


def _impression(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _to_impression("impression", value)


def _props(value: Properties | None, maximum: int, reserved: bool) -> str | None:
    return None if value is None else _to_properties("properties", value, maximum, reserved)


def _event_properties(value: Properties | None) -> str | None:
    return _props(value, L.EVENT_PROPERTIES_MAX, reserved=True)


def _interaction_properties(value: Properties | None) -> str | None:
    return _props(value, L.ACTION_INTERACTION_PROPERTIES_MAX, reserved=True)


def _item_properties(value: Properties | None) -> str | None:
    return _props(value, L.ITEM_PROPERTIES_MAX, reserved=False)


def _user_properties(value: Properties | None) -> str | None:
    return _props(value, L.USER_PROPERTIES_MAX, reserved=False)


def _action_properties(value: Properties | None) -> str | None:
    return _props(value, L.ACTION_PROPERTIES_MAX, reserved=False)


def _event_list(value: Iterable[Event]) -> tuple[Event, ...]:
    return _to_records("event_list", value, Event)


def _items(value: Iterable[Item]) -> tuple[Item, ...]:
    return _to_records("items", value, Item)


def _users(value: Iterable[User]) -> tuple[User, ...]:
    return _to_records("users", value, User)


def _actions(value: Iterable[Action]) -> tuple[Action, ...]:
    return _to_records("actions", value, Action)


def _action_interactions(value: Iterable[ActionInteraction]) -> tuple[ActionInteraction, ...]:
    return _to_records("action_interactions", value, ActionInteraction)


@attrs.frozen(kw_only=True)
class MetricAttribution:
    """The source a metric attribution credits an event to (``eventAttributionSource``).

    Printable ASCII, at most 1024 characters, not blank.
    """

    event_attribution_source: str

    def __attrs_post_init__(self) -> None:
        value = self.event_attribution_source
        _check_text("event_attribution_source", value, L.ATTRIBUTION_SOURCE_MAX)
        if L.ATTRIBUTION_SOURCE_PATTERN.fullmatch(value) is None:  # match's $ would allow a final newline
            raise ValidationError("event_attribution_source", "must be printable ASCII and not blank")


@attrs.frozen(kw_only=True)
class Event:
    """One item interaction, recorded with ``put_events`` or the ``EventRecorder``.

    ``event_type`` and ``sent_at`` are required. ``sent_at`` accepts a
    datetime (naive means UTC), epoch seconds or an ISO-8601 string and is
    stored as epoch seconds. ``properties`` is a mapping (encoded once as
    compact JSON) or a JSON object string, at most 1024 characters, without
    the service's reserved keys. Give an ``event_id`` to make retries safe;
    the recorder assigns one when it is missing.
    """

    event_type: str
    sent_at: float = attrs.field(converter=_sent_at)
    event_id: str | None = None
    event_value: float | None = None
    item_id: str | None = attrs.field(default=None, repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_event_properties, repr=_hidden)
    recommendation_id: str | None = None
    impression: tuple[str, ...] | None = attrs.field(default=None, converter=_impression, repr=_hidden)
    metric_attribution: MetricAttribution | None = None

    def __attrs_post_init__(self) -> None:
        _check_text("event_type", self.event_type, L.ID_MAX)
        _check_optional_text("event_id", self.event_id, L.ID_MAX)
        if self.event_value is not None:
            _set(self, "event_value", _check_event_value(self.event_value))
        _check_optional_text("item_id", self.item_id, L.ID_MAX)
        _check_optional_text("recommendation_id", self.recommendation_id, L.RECOMMENDATION_ID_MAX)
        if self.metric_attribution is not None and not isinstance(self.metric_attribution, MetricAttribution):
            raise ValidationError(
                "metric_attribution", f"must be a MetricAttribution, not {type(self.metric_attribution).__name__}"
            )


@attrs.frozen(kw_only=True)
class Item:
    """One item of an Items dataset, for ``put_items``.

    ``properties`` (a mapping or JSON object string, at most 32000 characters)
    holds the item's metadata with keys matching the dataset schema.
    """

    item_id: str = attrs.field(repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_item_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        _check_text("item_id", self.item_id, L.ID_MAX)


@attrs.frozen(kw_only=True)
class User:
    """One user of a Users dataset, for ``put_users``.

    ``properties`` (a mapping or JSON object string, at most 24000 characters)
    holds the user's metadata with keys matching the dataset schema.
    """

    user_id: str = attrs.field(repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_user_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        _check_text("user_id", self.user_id, L.ID_MAX)


@attrs.frozen(kw_only=True)
class Action:
    """One action of an Actions dataset, for ``put_actions``.

    ``properties`` (a mapping or JSON object string, at most 32000 characters)
    holds the action's metadata with keys matching the dataset schema.
    """

    action_id: str = attrs.field(repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_action_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        _check_text("action_id", self.action_id, L.ID_MAX)


@attrs.frozen(kw_only=True)
class ActionInteraction:
    """One interaction between a user and an action, for ``put_action_interactions``.

    ``action_id``, ``session_id``, ``timestamp`` and ``event_type`` are
    required; ``timestamp`` takes the same forms as ``Event.sent_at``, and
    ``properties`` the same limits as an event's.
    """

    action_id: str = attrs.field(repr=_hidden)
    session_id: str = attrs.field(repr=_hidden)
    timestamp: float = attrs.field(converter=_timestamp)
    event_type: str
    user_id: str | None = attrs.field(default=None, repr=_hidden)
    event_id: str | None = None
    recommendation_id: str | None = None
    impression: tuple[str, ...] | None = attrs.field(default=None, converter=_impression, repr=_hidden)
    properties: str | None = attrs.field(default=None, converter=_interaction_properties, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        _check_text("action_id", self.action_id, L.ID_MAX)
        _check_text("session_id", self.session_id, L.ID_MAX)
        _check_text("event_type", self.event_type, L.ID_MAX)
        _check_optional_text("user_id", self.user_id, L.ID_MAX)
        _check_optional_text("event_id", self.event_id, L.ID_MAX)
        _check_optional_text("recommendation_id", self.recommendation_id, L.RECOMMENDATION_ID_MAX)


def check_event_size(event: Event, path: str = "") -> None:
    """Refuse an event whose wire JSON is over the service's 10 KB per event.

    A cheap upper bound (6 bytes per character covers UTF-8 and JSON escapes)
    skips the exact measurement for all but unusually large events.
    """
    chars = len(event.event_type) + len(event.event_id or "") + len(event.item_id or "")
    chars += len(event.properties or "") + len(event.recommendation_id or "")
    if event.impression:
        chars += sum(len(x) + 3 for x in event.impression)
    if event.metric_attribution is not None:
        chars += len(event.metric_attribution.event_attribution_source)
    if 6 * chars + 256 <= L.EVENT_MAX_BYTES:
        return
    from .serde import to_wire  # local: serde imports this module

    size = len(_dumps(to_wire(event)).encode("utf-8"))
    if size > L.EVENT_MAX_BYTES:
        raise ValidationError(path, f"is {size} bytes of JSON; the service takes at most {L.EVENT_MAX_BYTES} per event")


@attrs.frozen(kw_only=True)
class PutEventsRequest:
    """A ``PutEvents`` call: 1 to 10 events of one session (and optionally one user)."""

    tracking_id: str
    session_id: str = attrs.field(repr=_hidden)
    event_list: tuple[Event, ...] = attrs.field(converter=_event_list)
    user_id: str | None = attrs.field(default=None, repr=_hidden)

    def __attrs_post_init__(self) -> None:
        _check_text("tracking_id", self.tracking_id, L.ID_MAX)
        _check_text("session_id", self.session_id, L.ID_MAX)
        _check_optional_text("user_id", self.user_id, L.ID_MAX)
        for i, event in enumerate(self.event_list):
            check_event_size(event, f"event_list[{i}]")


@attrs.frozen(kw_only=True)
class PutItemsRequest:
    """A ``PutItems`` call: 1 to 10 items for one Items dataset."""

    dataset_arn: str
    items: tuple[Item, ...] = attrs.field(converter=_items)

    def __attrs_post_init__(self) -> None:
        _check_arn(self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutUsersRequest:
    """A ``PutUsers`` call: 1 to 10 users for one Users dataset."""

    dataset_arn: str
    users: tuple[User, ...] = attrs.field(converter=_users)

    def __attrs_post_init__(self) -> None:
        _check_arn(self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutActionsRequest:
    """A ``PutActions`` call: 1 to 10 actions for one Actions dataset."""

    dataset_arn: str
    actions: tuple[Action, ...] = attrs.field(converter=_actions)

    def __attrs_post_init__(self) -> None:
        _check_arn(self.dataset_arn)


@attrs.frozen(kw_only=True)
class PutActionInteractionsRequest:
    """A ``PutActionInteractions`` call: 1 to 10 action interactions for one tracker."""

    tracking_id: str
    action_interactions: tuple[ActionInteraction, ...] = attrs.field(converter=_action_interactions)

    def __attrs_post_init__(self) -> None:
        _check_text("tracking_id", self.tracking_id, L.ID_MAX)
