"""Event ids: random UUIDs (version 4, as 32 hex digits) made in bulk, and an event copied with its id.

The recorder gives each event without an ``eventId`` one: at ``record()``
when the spool outlives the process (the id goes to disk with the event),
else when its batch is first sent; a batch keeps its ids when it is sent
again, so the service counts a resent event once. ``IdPool`` makes
``IDS_AT_ONCE`` ids from one ``os.urandom`` call; ``copy_with_id`` copies an
``Event`` member by member without validating it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

import attrs

from ._shapes import Event

__all__ = ["IDS_AT_ONCE", "IdPool", "copy_with_id"]

IDS_AT_ONCE: Final = 256  # event ids made from one os.urandom call


def _make_copier() -> Callable[[Event, str], Event]:
    """A function copying an Event with a new ``event_id``, member by member, without validating it again.

    Generated once from the attrs fields (one statement per member, no loop),
    since the recorder copies every event that arrives without an id.
    """
    names = [field.name for field in attrs.fields(Event)]
    # each member's slot descriptor setter is bound once, as a default argument (a local, not a global lookup)
    setters = ", ".join(f"set_{name}=slots[{name!r}].__set__" for name in names)
    lines = [
        f"def copy_with_id(event, event_id, new_event=new_event, cls=Event, {setters}):",
        "    new = new_event(cls)",
    ]
    for name in names:
        lines.append(f"    set_{name}(new, {'event_id' if name == 'event_id' else f'event.{name}'})")
    lines.append("    return new")
    namespace: dict[str, Any] = {"Event": Event, "new_event": object.__new__, "slots": Event.__dict__}
    exec("\n".join(lines), namespace)
    copier: Callable[[Event, str], Event] = namespace["copy_with_id"]
    return copier


copy_with_id: Final = _make_copier()


def _uuid_masks() -> tuple[int, int]:
    """The masks that make ``IDS_AT_ONCE`` concatenated 16-byte strings version 4 UUIDs: (bits kept, bits set)."""
    keep = bytearray(b"\xff" * 16)
    set_ = bytearray(16)
    keep[6], set_[6] = 0x0F, 0x40  # the version, 4
    keep[8], set_[8] = 0x3F, 0x80  # the RFC 4122 variant
    return int.from_bytes(bytes(keep) * IDS_AT_ONCE, "big"), int.from_bytes(bytes(set_) * IDS_AT_ONCE, "big")


_UUID_KEEP, _UUID_SET = _uuid_masks()


def _new_ids() -> list[str]:
    """``IDS_AT_ONCE`` random UUIDs (version 4, as 32 hex digits) from one ``os.urandom``.

    The version and variant bits of all of them are set with two big-integer
    operations, as ``uuid.uuid4()`` sets them one by one.
    """
    size = 16 * IDS_AT_ONCE
    raw = int.from_bytes(os.urandom(size), "big") & _UUID_KEEP | _UUID_SET
    text = raw.to_bytes(size, "big").hex()
    return [text[n : n + 32] for n in range(0, 2 * size, 32)]


class IdPool:
    """Random ids for events, made ``IDS_AT_ONCE`` at a time."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: list[str] = []

    def next(self) -> str:
        """A random UUID (version 4, as 32 hex digits) from the pool."""
        if not self._ids:
            self._ids = _new_ids()
        return self._ids.pop()

    def with_ids(self, events: list[Event]) -> list[Event]:
        """The events, each one without an id copied with a random id from the pool (not validated again)."""
        given: list[Event] = []
        for event in events:
            if event.event_id is None:
                event = copy_with_id(event, self.next())
            given.append(event)
        return given
