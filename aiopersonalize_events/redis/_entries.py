"""Stream entries: one record per entry, as one JSON line in the command line's input form.

An entry has one field, ``record``: the record in the service's camelCase
shape (``properties`` as the JSON text the service takes), and, for
``PutEvents``, the ``sessionId`` and optional ``userId`` it is sent with;
exactly a line ``aiopersonalize-events put-events`` reads, so a dead letter
can be sent again from a shell. ``encode`` is used by the producer (the
spool, or ``add_records``), ``decode`` by the forwarder; ``decode`` checks
what ``encode`` did not make (an entry written by another program) as the
command line does and raises ``PoisonEntry`` with the reason.

The checks are the command line's: both read lines with ``_lines``.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

from .. import _lines, serde
from .. import _operations as ops
from .._json import dumps_wire, float_agrees
from .._lines import line_members

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


def _floats_agree(op: ops.Operation, record: Any) -> bool:
    return all(float_agrees(getattr(record, name)) for name in op.record_floats)


def encode(op: ops.Operation, record: Any, members: tuple[Any, ...] = ()) -> bytes:
    """The entry's ``record`` field for ``record`` of ``op`` (validated already) and its request members."""
    return dumps_wire(_lines.to_line(op, members, record), _floats_agree(op, record))


def encode_event(event: Any, session_id: str, user_id: str | None) -> bytes:
    """``encode`` for an Event (the spool's path: one call per event)."""
    line: dict[str, Any] = {"sessionId": session_id}
    if user_id is not None:
        line["userId"] = user_id
    line.update(serde.to_wire(event))
    return dumps_wire(line, float_agrees(event.event_value))


def decode(op: ops.Operation, fields: Any) -> Decoded:
    """The record (and request members) of a stream entry's fields, or ``PoisonEntry`` saying why not."""
    raw = fields.get(RECORD_FIELD) if isinstance(fields, dict) else None
    if raw is None:
        raise PoisonEntry("the entry has no 'record' field")
    try:
        data = _lines.STRICT_JSON.decode(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except UnicodeDecodeError:
        raise PoisonEntry("record: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PoisonEntry(f"record: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise PoisonEntry(f"record: not valid JSON ({exc})") from None
    if type(data) is not dict:
        raise PoisonEntry("record: must be a JSON object")
    try:
        values = _lines.take_members(op, data, null_is_missing=True)
        record = _lines.to_record(op, data)
    except _lines.RecordError as exc:
        raise PoisonEntry(exc.reason) from None
    return Decoded(record, values)
