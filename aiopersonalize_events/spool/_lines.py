"""The one codec of "an event with its session and user as a ``put-events`` line", as the spool keeps dead letters.

``event_line`` writes the line (the event's wire form plus ``sessionId``
and ``userId``) that dead letters hold and ``spool export-failed`` prints;
``line_event`` reads one back, checked again (the file is outside our
process), for ``spool retry-failed``.
"""

from __future__ import annotations

import json

from .._json import dumps_wire, float_agrees
from .._shapes import Event
from .._wire import to_wire
from ..errors import ValidationError

__all__ = ["event_line", "line_event"]


def event_line(event: Event, session_id: str, user_id: str | None) -> bytes:
    """One event as the spool keeps it: a ``put-events`` input line (wire form plus ``sessionId``, ``userId``)."""
    wire = to_wire(event)
    wire["sessionId"] = session_id
    if user_id is not None:
        wire["userId"] = user_id
    return dumps_wire(wire, float_agrees(event.sent_at) and float_agrees(event.event_value))


def line_event(line: str | bytes) -> tuple[Event, str, str | None]:
    """An event, its session and user from a stored line (checked again: the file is outside our process)."""
    from ..serde import from_wire

    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValidationError("line", "a stored event must be a JSON object")
    session_id = data.pop("sessionId", None)
    user_id = data.pop("userId", None)
    if not isinstance(session_id, str) or not (user_id is None or isinstance(user_id, str)):
        raise ValidationError("sessionId", "a stored event must carry its sessionId (and userId, when any)")
    event = from_wire(Event, data)
    if event.event_id is None:
        raise ValidationError("eventId", "a stored event must carry its eventId")
    return event, session_id, user_id
