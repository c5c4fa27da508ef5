"""The events of ours waiting on disk only: how many, which segments are in memory, and reading them back.

The writer owns it (nothing here is read by the loop): segments written
while the loop's memory window was full, and segments taken over, wait
here; ``load()`` reads them back in id order, as far as the room the loop
gave allows. ``Segment`` and ``Entry`` are the two records both sides share.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Final

from ..._shapes import Event
from ._file import transaction
from ._segments import segment_events

__all__ = ["Backlog", "Entry", "Segment", "read_totals", "room_in_file"]

log: Final = logging.getLogger("aiopersonalize_events.spool")


class Segment:
    """Events written (or to be written) as one row. ``left`` counts those not yet settled (loop side);
    when it reaches 0 the loop asks the writer to delete the row. ``rowid`` is set by the writer once
    the row is committed; ``lost`` when the writer gave writing it up (writer side), ``void`` once the
    loop learnt so (loop side: its row never comes, so nothing of it is deleted)."""

    __slots__ = ("count", "in_memory", "left", "lost", "nbytes", "rowid", "void")

    def __init__(self, count: int, in_memory: bool, rowid: int | None = None, nbytes: int = 0) -> None:
        self.count = count
        self.left = count
        self.in_memory = in_memory
        self.rowid = rowid
        self.nbytes = nbytes
        self.lost = False
        self.void = False


class Entry:
    """One event the spool holds: in memory (grouped, to be sent) and, once due or needed, on disk.

    ``seg`` is the segment its line went into (None while not yet due);
    ``done`` marks one settled (sent, failed, dropped) before that, so it is
    never written. ``in_memory`` is False for an event that found the window
    full: it waits on disk only and is read back later. ``released`` marks
    one the recorder gave back unsent at its stop (out of memory, still to be
    kept on disk). Loop side only.
    """

    __slots__ = ("born", "done", "event", "in_memory", "released", "seg", "session_id", "user_id")

    def __init__(
        self,
        event: Event,
        session_id: str,
        user_id: str | None,
        born: float,
        in_memory: bool,
        seg: Segment | None = None,
    ) -> None:
        self.event = event
        self.session_id = session_id
        self.user_id = user_id
        self.born = born
        self.in_memory = in_memory
        self.seg = seg
        self.done = False
        self.released = False


class Backlog:
    """Events of ours on disk and not in memory (``events``), and the segments read back or in memory."""

    __slots__ = ("cursor", "events", "lost", "memory", "path", "tracking_id", "unreadable")

    def __init__(self, path: str, tracking_id: str) -> None:
        self.path = path
        self.tracking_id = tracking_id
        self.events = 0
        self.cursor = 0  # segments of ours with an id up to this were read back, or are in memory
        self.memory: set[int] = set()  # segments whose events are in memory
        self.unreadable: list[int] = []  # read back with nothing readable: deleted next round
        self.lost = 0  # events of ours read back that could not be read (their rows' count), since last asked

    def written(self, rowid: int, seg: Segment) -> None:
        """A segment was committed: its events are in memory too, or wait here."""
        if seg.in_memory:
            self.memory.add(rowid)
        else:
            self.events += seg.count

    def load(
        self, conn: sqlite3.Connection, owner: str, room: int, until: Callable[[], float | None] = lambda: None
    ) -> list[Entry]:
        """Read segments of ours waiting on disk back into memory, in id order, as far as ``room`` allows.

        ``until``: the writer's close deadline, for the transaction keeping unreadable rows as dead letters.
        """
        try:
            found = conn.execute(
                "SELECT id, body, nbytes, count FROM segments WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
                (owner, self.cursor, 1 + room // 2 + len(self.memory)),
            ).fetchall()
        except sqlite3.Error as exc:
            log.error("spool %s: could not read waiting events: %s", self.path, exc)
            return []
        rows: list[Entry] = []
        unreadable: list[tuple[str, str]] = []
        for segment, body, nbytes, count in found:
            if len(rows) >= room:
                break
            self.cursor = segment
            if segment in self.memory:
                continue
            events = segment_events(bytes(body))
            # the row's count is what was counted when it was written or taken over; a row that cannot be
            # read says nothing reliable of itself
            held = max(int(count), 0)
            self.events -= held
            entries: list[Entry] = []
            for event, session_id, user_id in events:
                if event is None:
                    assert user_id is not None
                    unreadable.append((session_id, user_id))  # (the text, the reason)
                    continue
                entries.append(Entry(event, session_id, user_id, 0.0, True))
            self.lost += max(0, held - len(entries))
            if not entries:
                self.unreadable.append(segment)
                continue
            seg = Segment(len(entries), True, segment, nbytes)
            for entry in entries:
                entry.seg = seg
            self.memory.add(segment)
            rows.extend(entries)
        if not found:
            self.events = 0  # taken or cleared meanwhile
        if unreadable:
            with contextlib.suppress(sqlite3.Error):
                self._keep_unreadable(conn, unreadable, until)
        return rows

    def _keep_unreadable(
        self, conn: sqlite3.Connection, lines: list[tuple[str, str]], until: Callable[[], float | None]
    ) -> None:
        wall = time.time()
        with transaction(conn, until=until):
            conn.executemany(
                "INSERT INTO dead (tracking_id, line, reason, failed_at) VALUES (?, ?, ?, ?)",
                [(self.tracking_id, line, reason, wall) for line, reason in lines],
            )
            conn.execute("UPDATE counters SET value = value + ? WHERE name = 'dead'", (len(lines),))
        log.error("spool %s: %d stored event(s) could not be read; kept as dead letters", self.path, len(lines))


def read_totals(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
    """The file's pending events and bytes (all owners) as its counters say, or (None, None) when unreadable."""
    try:
        values = dict(
            conn.execute("SELECT name, value FROM counters WHERE name IN ('held_events', 'held_bytes')").fetchall()
        )
    except sqlite3.Error:
        return None, None
    return max(0, int(values.get("held_events", 0))), max(0, int(values.get("held_bytes", 0)))


def room_in_file(conn: sqlite3.Connection, max_events: int | None, deleted: int) -> int:
    """Events the file may still take under ``max_events``, read inside the caller's transaction (so every
    process on the file sees the others' commits: the bound holds for all of them together), ``deleted``
    being what that transaction already took off."""
    if max_events is None:
        return sys.maxsize
    row = conn.execute("SELECT value FROM counters WHERE name = 'held_events'").fetchone()
    held = int(row[0]) if row is not None else 0
    return max(0, max_events - held + deleted)
