"""Segments: many events in one row, encoded on the loop and decoded (checked again) when read back.

A segment is a pickle of plain tuples, read back with an unpickler that
refuses every class (no code runs); an event that cannot be read comes back
with the reason, to be kept as a dead letter.
"""

from __future__ import annotations

import io
import operator
import pickle
from collections.abc import Sequence
from typing import Any, Final

from ..._shapes import Event, MetricAttribution
from ...errors import ValidationError

__all__ = ["segment_body", "segment_events"]

_FIELDS: Final = (
    "event_type",
    "sent_at",
    "event_id",
    "event_value",
    "item_id",
    "properties",
    "recommendation_id",
    "impression",
    "metric_attribution",
)
_members: Final = operator.attrgetter(*_FIELDS)
_BODY_FORMAT: Final = 1


class _PlainUnpickler(pickle.Unpickler):
    """Reads only plain data (tuples, lists, str, float, int, None): a segment never names a class."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a spool segment holds plain data only, not {module}.{name}")


def segment_body(events: Sequence[tuple[Event, str, str | None]]) -> bytes:
    """Events with their session and user as one segment: a pickle of plain tuples (no class, no code).

    ``(1, [((event_type, sent_at, event_id, event_value, item_id, properties,
    recommendation_id, impression, attribution_source), session_id, user_id), ...])``:
    the members as the shape holds them (``properties`` its JSON text), taken
    in C, so a segment costs well under a microsecond per event.
    """
    rows = []
    for event, session_id, user_id in events:
        members = _members(event)
        if members[8] is not None:
            members = (*members[:8], members[8].event_attribution_source)
        rows.append((members, session_id, user_id))
    return pickle.dumps((_BODY_FORMAT, rows), protocol=5)


def segment_events(body: bytes) -> list[tuple[Event, str, str | None] | tuple[None, str, str]]:
    """The events of a segment, checked again (the file is outside our process); an unreadable one comes
    back as ``(None, text, reason)``."""
    try:
        loaded = _PlainUnpickler(io.BytesIO(body)).load()
        if not (isinstance(loaded, tuple) and len(loaded) == 2 and loaded[0] == _BODY_FORMAT):
            raise ValueError(f"an unknown segment format: {str(loaded)[:80]}")
        rows = list(loaded[1])
    except Exception as exc:
        return [(None, repr(bytes(body[:200])), f"unreadable segment: {exc}")]
    out: list[tuple[Event, str, str | None] | tuple[None, str, str]] = []
    for row in rows:
        try:
            members, session_id, user_id = row
            values = dict(zip(_FIELDS, members, strict=True))
            source = values.pop("metric_attribution")
            if source is not None:
                values["metric_attribution"] = MetricAttribution(event_attribution_source=source)
            if not isinstance(session_id, str) or not (user_id is None or isinstance(user_id, str)):
                raise ValidationError("sessionId", "a stored event must carry its sessionId (and userId, when any)")
            event = Event(**values)
            if event.event_id is None:
                raise ValidationError("eventId", "a stored event must carry its eventId")
        except Exception as exc:
            out.append((None, repr(row)[:2000], f"unreadable in the spool: {exc}"))
            continue
        out.append((event, session_id, user_id))
    return out
