"""Stream entries: one record per entry, as one line of the command line's input form.

An entry has one field, ``record``: the record's line (``_lines``: the
record in the service's camelCase shape, ``properties`` as the JSON text the
service takes, and, for ``PutEvents``, the ``sessionId`` and optional
``userId`` it is sent with), exactly a line ``aiopersonalize-events
put-events`` reads, so a dead letter can be sent again from a shell. The
producers (the stream spool, ``add_records``) write it with
``_lines.event_line``/``_lines.encode``; ``decode`` here reads it for the
forwarder with ``_lines.read_object``/``from_object``, which checks what the producer did not
make (an entry written by another program) as the command line does, and
raises ``PoisonEntry`` with the reason.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from .. import _lines
from .. import _operations as ops
from .._lines import line_members

__all__ = ["RECORD_FIELD", "Decoded", "PoisonEntry", "decode", "line_members"]

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


def decode(op: ops.Operation, fields: Any) -> Decoded:
    """The record (and request members) of a stream entry's fields, or ``PoisonEntry`` saying why not."""
    raw = fields.get(RECORD_FIELD) if isinstance(fields, dict) else None
    if raw is None:
        raise PoisonEntry("the entry has no 'record' field")
    try:
        data = _lines.read_object(raw if isinstance(raw, bytes) else str(raw))
    except _lines.RecordError as exc:  # what is wrong with the field as a whole is said of the field
        raise PoisonEntry(f"record: {exc.reason}") from None
    try:
        record, values = _lines.from_object(op, data, null_is_missing=True)
    except _lines.RecordError as exc:
        raise PoisonEntry(exc.reason) from None
    return Decoded(record, values)
