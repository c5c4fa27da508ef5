"""Stream entries: one record per entry, as one JSON line in the command line's input form.

An entry has one field, ``record``: the record in the service's camelCase
shape (``properties`` as the JSON text the service takes), and, for
``PutEvents``, the ``sessionId`` and optional ``userId`` it is sent with;
exactly a line ``aiopersonalize-events put-events`` reads, so a dead letter
can be sent again from a shell. ``encode`` is used by the producer (the
spool, or ``add_records``), ``decode`` by the forwarder; ``decode`` checks
what ``encode`` did not make (an entry written by another program) as the
command line does and raises ``PoisonEntry`` with the reason.

The checks mirror ``cli.lines.parse_line``; this module cannot import the
command line package, which imports the forwarder (an import cycle).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, NamedTuple

import attrs

from .. import _limits as L
from .. import _operations as ops
from .. import serde
from .._json import dumps_wire, float_agrees
from .._naming import camel
from .._validators import check_optional_text, check_text
from ..errors import ValidationError

__all__ = ["RECORD_FIELD", "Decoded", "PoisonEntry", "decode", "encode", "encode_event", "line_members"]

RECORD_FIELD: Final = b"record"
"""The one field of an entry."""


class PoisonEntry(Exception):
    """An entry that cannot become a record: ``reason`` says why (in the service's camelCase names)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Decoded(NamedTuple):
    """A valid entry: its record and the request members it carries (``session_id``, ``user_id`` for events)."""

    record: Any
    members: tuple[Any, ...]


class _Member(NamedTuple):
    name: str
    wire: str
    required: bool


@functools.cache
def _members(op: ops.Operation) -> tuple[_Member, ...]:
    return tuple(
        _Member(field.name, camel(field.name), field.default is attrs.NOTHING)
        for field in attrs.fields(op.request)
        if field.name not in (op.resource_field, op.record_field)
    )


def line_members(op: ops.Operation) -> tuple[str, ...]:
    """The request members an entry carries besides its record (``session_id``, ``user_id`` for PutEvents)."""
    return tuple(member.name for member in _members(op))


def _floats_agree(op: ops.Operation, record: Any) -> bool:
    return all(float_agrees(getattr(record, name)) for name in op.record_floats)


def encode(op: ops.Operation, record: Any, members: tuple[Any, ...] = ()) -> bytes:
    """The entry's ``record`` field for ``record`` of ``op`` (validated already) and its request members."""
    line: dict[str, Any] = {}
    for member, value in zip(_members(op), members, strict=True):
        if value is not None:
            line[member.wire] = value
    line.update(serde.to_wire(record))
    return dumps_wire(line, _floats_agree(op, record))


def encode_event(event: Any, session_id: str, user_id: str | None) -> bytes:
    """``encode`` for an Event (the spool's path: one call per event)."""
    line: dict[str, Any] = {"sessionId": session_id}
    if user_id is not None:
        line["userId"] = user_id
    line.update(serde.to_wire(event))
    return dumps_wire(line, float_agrees(event.event_value))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _camel_path(path: str) -> str:
    return ".".join(camel(part) for part in path.split("."))


def _reason(error: ValidationError) -> str:
    return f"{_camel_path(error.path)}: {error.message}" if error.path else error.message


def decode(op: ops.Operation, fields: Any) -> Decoded:
    """The record (and request members) of a stream entry's fields, or ``PoisonEntry`` saying why not."""
    raw = fields.get(RECORD_FIELD) if isinstance(fields, dict) else None
    if raw is None:
        raise PoisonEntry("the entry has no 'record' field")
    try:
        data = _DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except UnicodeDecodeError:
        raise PoisonEntry("record: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PoisonEntry(f"record: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise PoisonEntry(f"record: not valid JSON ({exc})") from None
    if type(data) is not dict:
        raise PoisonEntry("record: must be a JSON object")
    values: list[Any] = []
    for member in _members(op):
        value = data.pop(member.wire, None)
        try:
            if member.required:
                check_text(member.name, value, L.ID_MAX)
            else:
                check_optional_text(member.name, value, L.ID_MAX)
        except ValidationError as exc:
            raise PoisonEntry(_reason(exc) if value is not None else f"{member.wire}: is required") from None
        values.append(value)
    try:
        record = serde.from_wire(op.record, data)
    except ValidationError as exc:
        raise PoisonEntry(_reason(exc)) from None
    except (TypeError, ValueError) as exc:  # defensive: a value no check foresaw
        raise PoisonEntry(f"cannot be read as {op.record.__name__} ({type(exc).__name__})") from None
    return Decoded(record, tuple(values))
