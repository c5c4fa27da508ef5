"""The service's request shapes as the wire carries them, and the checks the service applies.

Written from the service model and its documentation, independently of the
client's shapes (``aiopersonalize_events._shapes``), so that a bug in one
cannot hide behind the same bug in the other. Only the numbers come from
``_limits``; patterns and reserved keys are spelled here again.

A check appends violations to a list, in the service's wording::

    1 validation error detected: Value at 'eventList.1.member.properties'
    failed to satisfy constraint: Member must have length less than or equal to 1024

Paths use the service's form: members by their camelCase name, list entries
as ``<list>.<1-based index>.member``. Values are never repeated in messages
(the service's model marks most of them sensitive). Unknown members are
ignored, as the service's JSON protocol does, and are not stored.

JSON here is RFC 8259 JSON, as the service parses it: the bare ``NaN``,
``Infinity`` and ``-Infinity`` that Python's ``json`` takes are refused, in
the body and in the text of ``properties``. Every string member (ids, the
ARN, impressions, the attribution source, the text of ``properties``) must be
Unicode that UTF-8 can carry: one holding a lone surrogate (say from the
escape ``"\\ud800"`` in the body) is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

import attrs

from .. import _limits as L
from ._answers import invalid_input

__all__ = [
    "WIRE",
    "JsonObjectText",
    "Member",
    "Number",
    "Struct",
    "StructList",
    "Text",
    "TextList",
    "WireOperation",
    "check_request",
    "parse_body",
    "summary",
]


class Member(Protocol):
    """A check of one member's value; appends the service's violation texts to ``out``."""

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Check ``value`` found at ``path``; append one text per violation."""
        ...


def _violation(path: str, constraint: str) -> str:
    return f"Value at '{path}' failed to satisfy constraint: {constraint}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _refuse_constant(name: str) -> object:
    """``parse_constant`` for ``json.loads``: RFC 8259 has no NaN or infinities."""
    raise _NotJson(name)


class _NotJson(ValueError):
    """A bare ``NaN``, ``Infinity`` or ``-Infinity`` in JSON text."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not JSON")
        self.name = name


def _lone_surrogate(text: str) -> bool:
    """True when ``text`` holds a surrogate code point, which no UTF-8 text can carry."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE: Final = "Member must be valid Unicode text, without a lone surrogate (U+D800 to U+DFFF)"


def _lengths(path: str, n: int, minimum: int | None, maximum: int, out: list[str]) -> None:
    if minimum is not None and n < minimum:
        out.append(_violation(path, f"Member must have length greater than or equal to {minimum}"))
    if n > maximum:
        out.append(_violation(path, f"Member must have length less than or equal to {maximum}"))


@attrs.frozen
class Text:
    """A string member: length bounds in characters and an optional pattern.

    ``pattern`` is searched (the service's patterns are not anchored unless
    they say so); ``shown`` is the pattern as the service's message prints it.
    """

    minimum: int | None
    maximum: int
    pattern: re.Pattern[str] | None = None
    shown: str = ""
    full: bool = False

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse a non-string, a length out of bounds or a value the pattern does not match."""
        if not isinstance(value, str):
            out.append(_violation(path, f"Member must be a string, not a JSON {_json_type(value)}"))
            return
        _lengths(path, len(value), self.minimum, self.maximum, out)
        if _lone_surrogate(value):
            out.append(_violation(path, _SURROGATE))
            return
        if self.pattern is not None:
            found = self.pattern.fullmatch(value) if self.full else self.pattern.search(value)
            if found is None:
                out.append(_violation(path, f"Member must satisfy regular expression pattern: {self.shown}"))


@attrs.frozen
class Number:
    """A finite JSON number (``FloatType`` members and epoch-second timestamps)."""

    what: str = "a finite number"

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse anything but a finite JSON number (booleans and strings included)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append(_violation(path, f"Member must be {self.what}, not a JSON {_json_type(value)}"))
            return
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a double
            finite = False
        if not finite:
            out.append(_violation(path, f"Member must be {self.what}"))


@attrs.frozen
class TextList:
    """A list of strings with bounds on its entries (``impression``)."""

    minimum: int
    maximum: int
    entry: Text

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse a non-list, a count out of bounds, and each entry its own check refuses."""
        if not isinstance(value, list):
            out.append(_violation(path, f"Member must be a list, not a JSON {_json_type(value)}"))
            return
        _lengths(path, len(value), self.minimum, self.maximum, out)
        for i, entry in enumerate(value, 1):
            entry_path = f"{path}.{i}.member"
            if entry is None:
                out.append(f"Value null at '{entry_path}' failed to satisfy constraint: Member must not be null")
            else:
                self.entry.check(entry, entry_path, out)


_RESERVED_KEYS: Final = {
    key.lower(): key for key in ("userId", "sessionId", "eventType", "timestamp", "recommendationId", "impression")
}
"""Keys the service refuses, in any case, in Event and ActionInteraction properties."""


def _too_deep(text: str) -> bool:
    """True when the objects and arrays of JSON ``text`` nest deeper than ``PROPERTIES_MAX_DEPTH``.

    Brackets inside strings do not count. Measured before parsing, so the
    answer never depends on Python's recursion limit and the caller's stack.
    """
    if text.count("{") + text.count("[") <= L.PROPERTIES_MAX_DEPTH:
        return False  # fewer brackets than the limit: shallow enough whatever its shape
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest > L.PROPERTIES_MAX_DEPTH


@attrs.frozen
class JsonObjectText:
    """``properties``: a string holding a JSON object, at most ``maximum`` characters.

    With ``reserved`` the object's keys must not be one of the service's
    reserved names in any case (Event and ActionInteraction). The text itself
    must hold no lone surrogate; an escaped one inside it (the six characters
    ``\\ud800``) is the JSON text's own business and is taken, as the
    client's shapes take it.
    """

    maximum: int
    reserved: bool = False

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse a non-string, a length out of bounds, text that is no JSON object, or a reserved key."""
        if not isinstance(value, str):
            what = _json_type(value)
            out.append(_violation(path, f"Member must be a string holding a JSON object, not a JSON {what}"))
            return
        before = len(out)
        _lengths(path, len(value), 1, self.maximum, out)
        if len(out) > before:
            return
        if _lone_surrogate(value):
            out.append(_violation(path, _SURROGATE))
            return
        if _too_deep(value):
            limit = L.PROPERTIES_MAX_DEPTH
            out.append(_violation(path, f"Member must be the text of a JSON object nested at most {limit} deep"))
            return
        try:
            parsed = json.loads(value, parse_constant=_refuse_constant)
        except _NotJson as exc:
            out.append(_violation(path, f"Member must be the text of a JSON object, and {exc.name} is not JSON"))
            return
        except (ValueError, RecursionError):
            out.append(_violation(path, "Member must be the text of a JSON object, and is not valid JSON"))
            return
        if not isinstance(parsed, dict):
            out.append(
                _violation(path, f"Member must be the text of a JSON object, not of a JSON {_json_type(parsed)}")
            )
            return
        if self.reserved:
            found = sorted({_RESERVED_KEYS[k.lower()] for k in parsed if k.lower() in _RESERVED_KEYS})
            if found:
                names = ", ".join(found)
                out.append(_violation(path, f"Member must not use the reserved keys (in any case): {names}"))


@attrs.frozen
class Struct:
    """A JSON object with known members, some required; other members are ignored."""

    members: Mapping[str, Member]
    required: frozenset[str] = frozenset()

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse a non-object, a missing (or null) required member, and each member its check refuses."""
        if not isinstance(value, dict):
            out.append(_violation(path or "body", f"Member must be a structure, not a JSON {_json_type(value)}"))
            return
        for name, member in self.members.items():
            member_path = f"{path}.{name}" if path else name
            found = value.get(name)
            if found is None:
                if name in self.required:
                    out.append(f"Value null at '{member_path}' failed to satisfy constraint: Member must not be null")
                continue
            member.check(found, member_path, out)

    def project(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """The known, non-null members of an already checked object (nested structures likewise)."""
        result: dict[str, Any] = {}
        for name, member in self.members.items():
            found = value.get(name)
            if found is None:
                continue
            result[name] = member.project(found) if isinstance(member, Struct) else found
        return result


@attrs.frozen
class StructList:
    """The records of a call: a list of ``entry`` objects, ``minimum`` to ``maximum`` of them."""

    minimum: int
    maximum: int
    entry: Struct

    def check(self, value: object, path: str, out: list[str]) -> None:
        """Refuse a non-list, a count out of bounds, and each record its own check refuses."""
        if not isinstance(value, list):
            out.append(_violation(path, f"Member must be a list, not a JSON {_json_type(value)}"))
            return
        _lengths(path, len(value), self.minimum, self.maximum, out)
        for i, entry in enumerate(value, 1):
            entry_path = f"{path}.{i}.member"
            if entry is None:
                out.append(f"Value null at '{entry_path}' failed to satisfy constraint: Member must not be null")
            else:
                self.entry.check(entry, entry_path, out)


_ID: Final = Text(1, L.ID_MAX)
_ARN_SHOWN: Final = r"arn:([a-z\d-]+):personalize:.*:.*:.+"
_ARN: Final = Text(None, L.ARN_MAX, re.compile(_ARN_SHOWN), _ARN_SHOWN)
_RECOMMENDATION_ID: Final = Text(1, L.RECOMMENDATION_ID_MAX)
_IMPRESSION: Final = TextList(1, L.IMPRESSION_MAX_ENTRIES, _ID)
_SOURCE_SHOWN: Final = r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$"
# fullmatch of the pattern without its anchors: Python's $ would also accept a final newline
_SOURCE: Final = Text(
    None, L.ATTRIBUTION_SOURCE_MAX, re.compile(r"[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*"), _SOURCE_SHOWN, full=True
)
_TIMESTAMP: Final = Number("a number of seconds since the epoch")

_METRIC_ATTRIBUTION: Final = Struct({"eventAttributionSource": _SOURCE}, frozenset({"eventAttributionSource"}))

_EVENT: Final = Struct(
    {
        "eventId": _ID,
        "eventType": _ID,
        "eventValue": Number(),
        "itemId": _ID,
        "properties": JsonObjectText(L.EVENT_PROPERTIES_MAX, reserved=True),
        "sentAt": _TIMESTAMP,
        "recommendationId": _RECOMMENDATION_ID,
        "impression": _IMPRESSION,
        "metricAttribution": _METRIC_ATTRIBUTION,
    },
    frozenset({"eventType", "sentAt"}),
)
_ITEM: Final = Struct({"itemId": _ID, "properties": JsonObjectText(L.ITEM_PROPERTIES_MAX)}, frozenset({"itemId"}))
_USER: Final = Struct({"userId": _ID, "properties": JsonObjectText(L.USER_PROPERTIES_MAX)}, frozenset({"userId"}))
_ACTION: Final = Struct(
    {"actionId": _ID, "properties": JsonObjectText(L.ACTION_PROPERTIES_MAX)}, frozenset({"actionId"})
)
_ACTION_INTERACTION: Final = Struct(
    {
        "actionId": _ID,
        "userId": _ID,
        "sessionId": _ID,
        "timestamp": _TIMESTAMP,
        "eventType": _ID,
        "eventId": _ID,
        "recommendationId": _RECOMMENDATION_ID,
        "impression": _IMPRESSION,
        "properties": JsonObjectText(L.ACTION_INTERACTION_PROPERTIES_MAX, reserved=True),
    },
    frozenset({"actionId", "sessionId", "timestamp", "eventType"}),
)


@attrs.frozen
class WireOperation:
    """What the emulator knows of one operation's wire form and storage.

    ``members`` are the request's members other than the records,
    ``required`` its required members (the records included);
    ``record_member`` holds the records, each checked by ``record``;
    ``resource_member`` names the tracker or dataset. ``kind`` is where the
    records are kept (``events``, ``items``, ...), ``record_id`` the member
    identifying a record, and ``first_wins`` says whether a second record
    with the same id is a duplicate (events) or replaces the first (dataset
    records). ``record_max_bytes`` bounds one record's compact JSON.
    """

    kind: str
    resource_member: str
    record_member: str
    record: Struct
    record_id: str
    first_wins: bool
    members: Mapping[str, Member]
    required: frozenset[str]
    record_max_bytes: int | None = None

    def request(self, records_per_call: int) -> Struct:
        """The whole request's check, with at most ``records_per_call`` records."""
        members = dict(self.members)
        members[self.record_member] = StructList(1, records_per_call, self.record)
        return Struct(members, self.required)

    def oversized(self, data: Mapping[str, Any], out: list[str]) -> None:
        """Append a violation for each record whose compact JSON is over ``record_max_bytes``."""
        limit = self.record_max_bytes
        records = data.get(self.record_member)
        if limit is None or not isinstance(records, list):
            return
        for i, record in enumerate(records, 1):
            if not isinstance(record, dict):
                continue
            text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > limit:
                path = f"{self.record_member}.{i}.member"
                out.append(_violation(path, f"Member must be at most {limit} bytes of JSON, is {size} bytes"))


_DATASET_MEMBERS: Final[Mapping[str, Member]] = {"datasetArn": _ARN}
_DATASET_REQUIRED: Final = frozenset({"datasetArn"})

WIRE: Final[Mapping[str, WireOperation]] = {
    "PutEvents": WireOperation(
        kind="events",
        resource_member="trackingId",
        record_member="eventList",
        record=_EVENT,
        record_id="eventId",
        first_wins=True,
        members={"trackingId": _ID, "userId": _ID, "sessionId": _ID},
        required=frozenset({"trackingId", "sessionId", "eventList"}),
        record_max_bytes=L.EVENT_MAX_BYTES,
    ),
    "PutItems": WireOperation(
        kind="items",
        resource_member="datasetArn",
        record_member="items",
        record=_ITEM,
        record_id="itemId",
        first_wins=False,
        members=_DATASET_MEMBERS,
        required=_DATASET_REQUIRED | {"items"},
    ),
    "PutUsers": WireOperation(
        kind="users",
        resource_member="datasetArn",
        record_member="users",
        record=_USER,
        record_id="userId",
        first_wins=False,
        members=_DATASET_MEMBERS,
        required=_DATASET_REQUIRED | {"users"},
    ),
    "PutActions": WireOperation(
        kind="actions",
        resource_member="datasetArn",
        record_member="actions",
        record=_ACTION,
        record_id="actionId",
        first_wins=False,
        members=_DATASET_MEMBERS,
        required=_DATASET_REQUIRED | {"actions"},
    ),
    "PutActionInteractions": WireOperation(
        kind="action-interactions",
        resource_member="trackingId",
        record_member="actionInteractions",
        record=_ACTION_INTERACTION,
        record_id="eventId",
        first_wins=True,
        members={"trackingId": _ID},
        required=frozenset({"trackingId", "actionInteractions"}),
    ),
}
"""Each operation's wire facts, by the service's operation name."""


def parse_body(body: bytes) -> object:
    """The request body as JSON (an empty body is an empty object); refuse text that is not JSON."""
    if not body.strip():
        return {}
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise invalid_input("Could not parse the request body: it is not UTF-8 text.") from None
    except _NotJson as exc:
        raise invalid_input(f"Could not parse the request body as JSON: {exc.name} is not JSON.") from None
    except json.JSONDecodeError as exc:
        message = f"Could not parse the request body as JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        raise invalid_input(message) from None
    except RecursionError:
        raise invalid_input("Could not parse the request body as JSON: it is nested too deeply.") from None


def summary(violations: list[str]) -> str:
    """The service's message for a list of violations."""
    n = len(violations)
    noun = "error" if n == 1 else "errors"
    return f"{n} validation {noun} detected: " + "; ".join(violations)


def check_request(wire: WireOperation, request: Struct, data: object, body_size: int) -> dict[str, Any]:
    """Check one parsed request body; return it or raise ``InvalidInputException`` listing every violation.

    ``body_size`` is the body's length in bytes: records are measured
    against ``record_max_bytes`` only when the whole body is larger.
    """
    out: list[str] = []
    request.check(data, "", out)
    if not isinstance(data, dict):
        raise invalid_input(summary(out))
    if wire.record_max_bytes is not None and body_size > wire.record_max_bytes:
        wire.oversized(data, out)
    if out:
        raise invalid_input(summary(out))
    return data
