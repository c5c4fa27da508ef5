"""Write-behind on the loop side: which appended events go to the writer, and when (the ticks).

An event held in memory is queued for the writer once it has been unsent
``hold`` seconds, so one the service accepts sooner is never written; one
that found the memory window full (on disk only) goes at the next tick; all
of them when the spool syncs or closes. A tick comes at most every ``pace``
seconds (group commit) and serialises what is due into segments, events
held in memory and events on disk only apart, for the writer's next round.
Time is the spool's ``Clock``. Loop thread only.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..._clock import Clock
from ._backlog import Entry, Segment
from ._segments import segment_body
from ._writer import Writer, WriteSegment

__all__ = ["WriteBehind"]


class WriteBehind:
    """The events appended and not yet queued for the writer (``due``, oldest first), and the ticks that queue them.

    ``force`` is how many of the first ``due`` go at the next tick whatever
    their age (events on disk only); ``tick`` the clock's handle of the next
    tick, None when none is scheduled. ``start()`` gives the clock and the
    writer, once the spool opens.
    """

    __slots__ = ("_clock", "_last_tick", "_pace", "_tick_at", "_writer", "due", "force", "hold", "tick")

    def __init__(self, hold: float, pace: float) -> None:
        self.hold = hold
        self._pace = pace
        self.due: deque[Entry] = deque()
        self.force = 0
        self.tick: Any = None
        self._tick_at = 0.0
        self._last_tick = 0.0
        self._clock: Clock | None = None
        self._writer: Writer | None = None

    def start(self, clock: Clock, writer: Writer) -> None:
        """The spool opens: ticks are timed on ``clock``, segments go to ``writer``."""
        self._clock = clock
        self._writer = writer

    def schedule(self, delay: float) -> None:
        """The next tick in ``delay`` seconds (sooner replaces later); not sooner than the pace allows."""
        clock = self._clock
        assert clock is not None
        at = max(clock.time() + delay, self._last_tick + self._pace)
        tick = self.tick
        if tick is not None:
            if self._tick_at <= at + 0.001:
                return
            tick.cancel()
        self._tick_at = at
        self.tick = clock.call_at(at, self._on_tick)

    def cancel(self) -> None:
        """No more ticks (the spool closes: what is due goes with ``queue(force=True)``)."""
        if self.tick is not None:
            self.tick.cancel()
            self.tick = None

    def _on_tick(self) -> None:
        clock = self._clock
        assert clock is not None
        self.tick = None
        self._last_tick = clock.time()
        self.queue(force=False)
        if self.due:
            self.schedule(max(0.0, self.due[0].born + self.hold - clock.time()))

    def queue(self, *, force: bool) -> None:
        """Serialise the events that are due (all with ``force``) into segments for the writer, and wake it."""
        writer, clock = self._writer, self._clock
        if writer is None or clock is None:
            return
        due = self.due
        horizon = clock.time() - self.hold
        memory: list[Entry] = []
        disk: list[Entry] = []
        while due:
            entry = due[0]
            if entry.done:
                due.popleft()
                continue
            if not (force or self.force > 0 or entry.born <= horizon):
                break
            due.popleft()
            if self.force > 0:
                self.force -= 1
            (memory if entry.in_memory else disk).append(entry)
        self.force = min(self.force, len(due))
        for entries, in_memory in ((memory, True), (disk, False)):
            if entries:  # events held in memory and events on disk only never share a segment
                seg = Segment(len(entries), in_memory)
                for entry in entries:
                    entry.seg = seg
                body = segment_body([(e.event, e.session_id, e.user_id) for e in entries])
                writer.put(WriteSegment(seg, body, entries))
        if memory or disk:
            writer.wake()

    def take_unqueued(self) -> list[Entry]:
        """Remove and return the events never queued (not settled either): the spool never opened."""
        entries = [entry for entry in self.due if not entry.done]
        self.due.clear()
        self.force = 0
        return entries
