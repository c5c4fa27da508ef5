"""Segments: many events in one row, encoded on the loop and decoded (checked again) when read back.

Format 2 (written since 2026-12): ``b"J"`` then one JSON array,
``[2, [[[event_type, sent_at, event_id, event_value, item_id, properties,
recommendation_id, impression, attribution_source], session_id, user_id],
...]]``: the members as the shape holds them (``properties`` its JSON text,
``impression`` a list of str or null), encoded by orjson when it is
installed (the ``fast`` extra), else by the stdlib. JSON has no references and no
classes, so decoding is linear in the row's size and memory; the stdlib
decoder stops deep nesting at the recursion limit, and numbers are read
with a bound on their digits. Every row is then checked against that fixed
layout (types first, then the ``Event`` shape's own checks), never
traversed beyond it, never ``repr``-ed: a row that does not fit becomes a
dead letter with the reason, never an error of the spool.

Format 1 (written by releases up to 2026-11): a pickle of plain tuples,
still read, with an unpickler that refuses every class (no code runs) and
the same checks.
"""

from __future__ import annotations

import io
import json
import math
import operator
import pickle
from collections.abc import Sequence
from typing import Any, Final, cast

from ..._shapes import Event, MetricAttribution

__all__ = ["Decoded", "segment_body", "segment_events"]

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
_JSON_FORMAT: Final = 2
_PICKLE_FORMAT: Final = 1
_JSON_MARK: Final = b"J"
_MAX_DIGITS: Final = 40  # digits of one number in a segment at most (epoch seconds, event values)
_MAX_TEXT: Final = 20_000  # characters of one stored member at most (the whole event is at most 10 KB)
_MAX_IMPRESSION: Final = 100

Decoded = tuple[Event, str, str | None] | tuple[None, str, str]
"""An event with its session and user, or ``(None, text, reason)`` for one that cannot be read."""

_encode: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"), check_circular=False).encode

try:  # optional: the "fast" extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]


class _PlainUnpickler(pickle.Unpickler):
    """Reads only plain data (tuples, lists, str, float, int, None): a segment never names a class."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a spool segment holds plain data only, not {module}.{name}")


class _Unreadable(ValueError):
    """A stored row that does not fit the layout (the message says which member, never its value)."""


def segment_body(events: Sequence[tuple[Event, str, str | None]]) -> bytes:
    """Events with their session and user as one segment (format 2: JSON of plain values, no class, no code)."""
    rows = []
    for event, session_id, user_id in events:
        members = _members(event)
        if members[8] is not None:
            members = (*members[:8], members[8].event_attribution_source)
        rows.append((members, session_id, user_id))
    if _orjson is not None:
        try:
            return _JSON_MARK + _orjson.dumps((_JSON_FORMAT, rows))
        except TypeError:  # a str orjson does not take (a lone surrogate): the stdlib escapes it
            pass
    return _JSON_MARK + _encode((_JSON_FORMAT, rows)).encode("ascii")


def _number(text: str) -> float:
    if len(text) > _MAX_DIGITS:
        raise _Unreadable("a number in the segment has too many digits")
    return float(text)


def _constant(name: str) -> float:
    raise _Unreadable(f"a segment holds {name}, which is not JSON")


_decoder: Final = json.JSONDecoder(parse_int=_number, parse_float=_number, parse_constant=_constant)


def _load(body: bytes) -> list[Any]:
    """The rows of a segment of either format (not checked yet); raises for one that cannot be read at all."""
    if body[:1] == _JSON_MARK:
        # orjson is bounded too: nesting stops at 1024, integers at 64 bits, no NaN
        loaded = _orjson.loads(body[1:]) if _orjson is not None else _decoder.decode(body[1:].decode())
        kind: type = list
        container = _JSON_FORMAT
    else:
        loaded = _PlainUnpickler(io.BytesIO(body)).load()
        kind, container = tuple, _PICKLE_FORMAT
    if not (type(loaded) in (list, tuple) and len(loaded) == 2 and loaded[0] == container):
        raise _Unreadable("an unknown segment format")
    if type(loaded[1]) is not list:
        raise _Unreadable("an unknown segment format")
    rows: list[Any] = []
    items: list[Any] = loaded[1]
    for row in items:  # ((9 members), session_id, user_id)
        if _shaped(row, kind):
            rows.append([*row[0], row[1], row[2]])
        else:
            rows.append(None)
    return rows


def _shaped(row: Any, kind: type) -> bool:
    """True for ``((9 members), session_id, user_id)`` in the format's container type."""
    if type(row) is not kind:
        return False
    seq = cast(Sequence[Any], row)
    return len(seq) == 3 and type(seq[0]) is kind and len(cast(Sequence[Any], seq[0])) == 9


def _text(name: str, value: object, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise _Unreadable(f"its {name} is not a text of at most {_MAX_TEXT} characters")
    return value


def _real(name: str, value: object, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if type(value) is int:
        if not -(10**15) < value < 10**15:
            raise _Unreadable(f"its {name} is out of range")
        return float(value)
    if type(value) is not float or not math.isfinite(value):
        raise _Unreadable(f"its {name} is not a finite number")
    return value


def _event(row: list[Any]) -> tuple[Event, str, str | None]:
    """One stored row checked against the layout, member by member, then built (and checked) as an ``Event``."""
    impression = row[7]
    if impression is not None:
        if type(impression) not in (list, tuple) or len(impression) > _MAX_IMPRESSION:
            raise _Unreadable(f"its impression is not a list of at most {_MAX_IMPRESSION} texts")
        impression = [_text("impression", x, optional=False) for x in impression]
    source = _text("attribution source", row[8])
    session_id = _text("sessionId", row[9], optional=False)
    assert session_id is not None
    event = Event(
        event_type=_text("eventType", row[0], optional=False),  # type: ignore[arg-type]
        sent_at=_real("sentAt", row[1], optional=False),  # type: ignore[arg-type]
        event_id=_text("eventId", row[2], optional=False),
        event_value=_real("eventValue", row[3], optional=True),
        item_id=_text("itemId", row[4]),
        properties=_text("properties", row[5]),
        recommendation_id=_text("recommendationId", row[6]),
        impression=impression,
        metric_attribution=None if source is None else MetricAttribution(event_attribution_source=source),
    )
    return event, session_id, _text("userId", row[10])


def _describe(row: object, index: int) -> str:
    """What a dead letter shows of a row that could not be read: its place and, when it is a short text, its id."""
    text: dict[str, Any] = {"unreadable": True, "row": index}
    if type(row) is list and len(row) == 11 and type(row[2]) is str and len(row[2]) <= 256:
        text["eventId"] = row[2]
    return json.dumps(text)


def segment_events(body: bytes) -> list[Decoded]:
    """The events of a segment, checked again (the file is outside our process); an unreadable one comes
    back as ``(None, text, reason)``, to be kept as a dead letter. Never raises."""
    try:
        rows = _load(body)
    except Exception as exc:  # MemoryError, RecursionError, a refused class, bad bytes: one reason, never a crash
        return [(None, repr(bytes(body[:200])), f"unreadable segment: {type(exc).__name__}: {_reason(exc)}")]
    out: list[Decoded] = []
    for index, row in enumerate(rows):
        try:
            if row is None:
                raise _Unreadable("it does not have the layout of a stored event")
            out.append(_event(row))
        except Exception as exc:
            out.append((None, _describe(row, index), f"unreadable in the spool: {_reason(exc)}"))
    return out


def _reason(exc: BaseException) -> str:
    """The exception's message, bounded (a message never quotes a value of ours, but may be long)."""
    try:
        text = str(exc)
    except Exception:
        text = type(exc).__name__
    return text[:300]
