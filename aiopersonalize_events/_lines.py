"""A record given as one JSON object in the service's camelCase shape, with the request members it carries.

The one reader behind the command line's JSON Lines (``cli.lines``) and the
Redis stream entries (``redis._entries``, which hold such lines): the
strict JSON decoder (no ``NaN`` or ``Infinity``), the request members a line
carries besides its record (``sessionId`` and ``userId`` for ``PutEvents``),
checked as the request checks them, and the record built by
``serde.from_wire``, which validates it. A failure is a ``RecordError`` whose
``reason`` names the member in camelCase, as the line spells it; each caller
turns it into its own error.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, NamedTuple

import attrs

from . import _limits as L
from . import _operations as ops
from . import serde
from ._naming import camel
from ._validators import check_optional_text, check_text
from .errors import ValidationError

__all__ = [
    "STRICT_JSON",
    "Member",
    "RecordError",
    "line_members",
    "members",
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
