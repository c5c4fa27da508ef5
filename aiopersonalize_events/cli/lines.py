"""One input line into one validated record: JSON Lines in the service's camelCase shape.

``parse_line`` is the only place an input line is checked, with ``_lines``
(the one line codec): strict JSON (no ``NaN`` or ``Infinity``), an object, the request members the line carries
(``sessionId``/``userId`` for ``put-events``) checked as the request checks
them, and the record built by ``serde.from_wire``, which validates it. After
that the record is trusted: the run groups it and the client sends it.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, NamedTuple

import attrs

from .. import _limits as L
from .. import _lines
from .. import _operations as ops
from .._lines import line_members
from .._validators import check_arn, check_text
from ..errors import ValidationError

__all__ = [
    "LineError",
    "ParsedLine",
    "as_input",
    "check_resource",
    "json_type",
    "line_members",
    "parse_line",
    "raw_record",
]


class LineError(Exception):
    """A line that cannot become a record.

    ``reason`` says why, in the input's camelCase names; ``record`` is what
    the line held, for ``--failed-out``: the JSON value when the line is
    strict JSON, otherwise its text.
    """

    def __init__(self, reason: str, record: Any = None) -> None:
        self.reason = reason
        self.record = record
        super().__init__(reason)


class ParsedLine(NamedTuple):
    """A valid line: its record shape and the request members it carries (``sessionId``/``userId`` for events)."""

    record: Any
    members: tuple[Any, ...]


@functools.cache
def _has_event_id(op: ops.Operation) -> bool:
    return "event_id" in attrs.fields_dict(op.record)


def json_type(value: object) -> str:
    """The JSON type of a decoded value, with its article: ``an array``, ``a string``, ``null``..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _decode(text: str) -> Any:
    try:
        return _lines.decode_json(text)
    except _lines.RecordError as exc:
        raise LineError(exc.reason, text) from None


def parse_line(
    op: ops.Operation, text: str, *, resource: str | None = None, assign_event_id: bool = False
) -> ParsedLine:
    """Turn one JSON line into a validated record for ``op``, or raise ``LineError`` saying why not.

    The line is an object in the service's camelCase shape; for ``put-events``
    it also carries ``sessionId`` and optionally ``userId``, checked as the
    request checks them. With ``assign_event_id``, a record that may carry an
    ``eventId`` and has none gets a random one, so that resending it is
    de-duplicated. A record that passes is one the client sends as it is.
    ``resource`` (the tracking id or dataset ARN) is not needed: a run checks
    it once, with ``check_resource``; it is accepted for existing callers.
    """
    del resource
    data = _decode(text)
    if type(data) is not dict:
        raise LineError(f"must be a JSON object, not {json_type(data)}", data)
    give_id = assign_event_id and "eventId" not in data and _has_event_id(op)
    # the line as given stays whole, for --failed-out: the members are taken from a copy
    fields = dict(data) if give_id or _lines.members(op) else data
    if give_id:
        fields["eventId"] = uuid.uuid4().hex
    try:
        record, values = _lines.from_object(op, fields)
    except _lines.RecordError as exc:
        raise LineError(exc.reason, data) from None
    return ParsedLine(record, values)


def as_input(op: ops.Operation, members: tuple[Any, ...], record: Any) -> dict[str, Any]:
    """A record back in the input's JSON Lines form (``properties`` as a JSON string), for ``--failed-out``."""
    return _lines.to_line(op, members, record)


def raw_record(text: str) -> Any:
    """What a line not parsed holds, for ``--failed-out``: its JSON value when it is strict JSON, else its text."""
    try:
        return _decode(text)
    except LineError:
        return text


def check_resource(op: ops.Operation, value: str) -> str | None:
    """Why ``value`` is no valid tracking id or dataset ARN for ``op``, or None when it is (the shapes' own checks)."""
    try:
        if op.resource_field == "dataset_arn":
            check_arn(op.resource_field, value)
        else:
            check_text(op.resource_field, value, L.ID_MAX)
    except ValidationError as exc:
        return exc.message
    return None
