"""The one codec of a line: a record as one JSON object in the service's camelCase shape, with its request members.

A line is what ``aiopersonalize-events put-events`` (and the other
``put-*`` commands) read: the record's wire form (``serde.to_wire``) and the
request members it is sent with besides its resource, ``sessionId`` and
optional ``userId`` for ``PutEvents``, first. Every user writes and reads it
here: the command line's JSON Lines (``cli.lines``), the Redis stream entries
(``redis._entries``), the SQLite spool's dead letters and ``spool
export-failed``/``retry-failed`` (``event_line``/``line_event``).

Writing: ``encode`` for a record of any operation, ``event_line`` the same
bytes for an event (the spool's path: one call per event). Reading:
``decode_json`` (strict JSON: no ``NaN`` or ``Infinity``), ``read_line``
(``read_object``: an object; then ``from_object``: the request members
checked as the request checks them, the record built by
``serde.from_wire``, which validates it) and ``line_event`` for a stored
event. Member order is not part of the format: lines written
before 2026-12 with ``sessionId``/``userId`` after the event (dead letters)
read the same. A failure is a ``RecordError`` whose ``reason`` names the
member in camelCase, as the line spells it; each caller turns it into its
own error.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, NamedTuple

import attrs

from . import _limits as L
from . import _operations as ops
from . import serde
from ._json import dumps_wire, float_agrees
from ._naming import camel
from ._shapes import Event
from ._validators import check_optional_text, check_text
from .errors import ValidationError

__all__ = [
    "STRICT_JSON",
    "Member",
    "RecordError",
    "decode_json",
    "encode",
    "event_line",
    "from_object",
    "line_event",
    "line_members",
    "members",
    "read_line",
    "read_object",
    "reason",
    "take_members",
    "to_line",
    "to_record",
]


class RecordError(Exception):
    """A line that cannot become a record; ``reason`` says why, in the line's camelCase names."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Member(NamedTuple):
    """A request member a line carries besides its record."""

    name: str  # snake_case, as the request shape spells it
    wire: str  # camelCase, as the line spells it
    required: bool


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


STRICT_JSON: Final = json.JSONDecoder(parse_constant=_refuse_constant)
"""Strict JSON: Python's json accepts NaN, Infinity and -Infinity, which no other JSON reader takes back."""


@functools.cache
def members(op: ops.Operation) -> tuple[Member, ...]:
    """The request members of ``op`` other than its resource (tracking id, dataset ARN) and its records."""
    return tuple(
        Member(field.name, camel(field.name), field.default is attrs.NOTHING)
        for field in attrs.fields(op.request)
        if field.name not in (op.resource_field, op.record_field)
    )


def line_members(op: ops.Operation) -> tuple[str, ...]:
    """The request members each line carries besides its record (``session_id``, ``user_id`` for PutEvents)."""
    return tuple(member.name for member in members(op))


def reason(error: ValidationError) -> str:
    """The error's message led by its path in camelCase (``metricAttribution.eventAttributionSource: ...``)."""
    if not error.path:
        return error.message
    return ".".join(camel(part) for part in error.path.split(".")) + ": " + error.message


def take_members(op: ops.Operation, fields: dict[str, Any], *, null_is_missing: bool = False) -> tuple[Any, ...]:
    """Remove ``op``'s request members from ``fields`` and return their values, checked as the request checks them.

    A missing optional member is None; a missing required one is a
    ``RecordError`` (``sessionId: is required``), and so is a null one when
    ``null_is_missing``; otherwise a null value is checked like any other.
    """
    found: list[Any] = []
    for member in members(op):
        if member.wire not in fields or (null_is_missing and fields[member.wire] is None):
            fields.pop(member.wire, None)
            if member.required:
                raise RecordError(f"{member.wire}: is required")
            found.append(None)
            continue
        value = fields.pop(member.wire)
        try:
            if member.required:
                check_text(member.name, value, L.ID_MAX)
            else:
                check_optional_text(member.name, value, L.ID_MAX)
        except ValidationError as exc:
            raise RecordError(reason(exc)) from None
        found.append(value)
    return tuple(found)


def to_record(op: ops.Operation, fields: dict[str, Any]) -> Any:
    """``op``'s record from the line's other fields (``serde.from_wire``, which validates it), or ``RecordError``."""
    try:
        return serde.from_wire(op.record, fields)
    except ValidationError as exc:
        raise RecordError(reason(exc)) from None
    except (TypeError, ValueError) as exc:  # defensive: a value no check foresaw
        raise RecordError(f"cannot be read as {op.record.__name__} ({type(exc).__name__})") from None


def to_line(op: ops.Operation, values: tuple[Any, ...], record: Any) -> dict[str, Any]:
    """The line for ``record`` of ``op`` and its request members' ``values`` (unset ones left out), ready for JSON."""
    line: dict[str, Any] = {
        member.wire: value for member, value in zip(members(op), values, strict=True) if value is not None
    }
    line.update(serde.to_wire(record))
    return line


def encode(op: ops.Operation, record: Any, members: tuple[Any, ...] = ()) -> bytes:
    """The line of ``record`` of ``op`` (validated already) and its request members, as compact UTF-8 JSON."""
    floats_agree = all(float_agrees(getattr(record, name)) for name in op.record_floats)
    return dumps_wire(to_line(op, members, record), floats_agree)


def event_line(event: Event, session_id: str, user_id: str | None) -> bytes:
    """``encode`` for an Event with its session and user, byte for byte (one call per event: no table walked)."""
    line: dict[str, Any] = {"sessionId": session_id}
    if user_id is not None:
        line["userId"] = user_id
    line.update(serde.to_wire(event))
    return dumps_wire(line, float_agrees(event.event_value))


def decode_json(text: str | bytes) -> Any:
    """The JSON value of one line, strictly (no ``NaN``/``Infinity``), or ``RecordError`` saying why not."""
    try:
        return STRICT_JSON.decode(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # some of json's messages end in "at" already ("Unterminated string starting at")
        where = "column" if exc.msg.endswith(" at") else "at column"
        raise RecordError(f"not valid JSON ({exc.msg} {where} {exc.colno})") from None
    except ValueError as exc:  # NaN or Infinity
        raise RecordError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise RecordError("not valid JSON (nested too deeply)") from None


def read_object(text: str | bytes) -> dict[str, Any]:
    """The JSON object of one line, or ``RecordError`` saying what is wrong with the line as a whole."""
    data = decode_json(text)
    if type(data) is not dict:
        raise RecordError("must be a JSON object")
    return data


def from_object(
    op: ops.Operation, data: dict[str, Any], *, null_is_missing: bool = False
) -> tuple[Any, tuple[Any, ...]]:
    """The record of ``op`` and its request members' values from a line's object (emptied of the members), or
    ``RecordError`` naming the member that is wrong."""
    values = take_members(op, data, null_is_missing=null_is_missing)
    return to_record(op, data), values


def read_line(op: ops.Operation, text: str | bytes, *, null_is_missing: bool = False) -> tuple[Any, tuple[Any, ...]]:
    """The record of ``op`` and its request members' values from one line, or ``RecordError`` saying why not."""
    return from_object(op, read_object(text), null_is_missing=null_is_missing)


def line_event(line: str | bytes) -> tuple[Event, str, str | None]:
    """An event, its session and user from a stored line (a dead letter: checked again, the file is outside
    our process); ``ValidationError`` naming the line when it is not one, or carries no ``eventId``."""
    try:
        event, (session_id, user_id) = read_line(ops.PUT_EVENTS, line, null_is_missing=True)
    except RecordError as exc:
        raise ValidationError("line", exc.reason) from None
    if event.event_id is None:
        raise ValidationError("eventId", "a stored event must carry its eventId")
    return event, session_id, user_id
