"""The default spool: events in memory, grouped by (session, user); gone with the process."""

from __future__ import annotations

import sys
from collections import deque

from .. import _limits as L
from .._batching import Grouper
from .._shapes import Event
from ._protocol import SpoolBatch, SpoolListener

__all__ = ["MemorySpool"]

_Key = tuple[str, "str | None"]


class MemorySpool:
    """The default spool: events in memory, grouped by (session, user); gone with the process.

    ``max_events`` bounds the events held (queued, out in a batch, or waiting
    to be retried): the recorder's ``max_queue_size``. Event ids are given
    when a batch is first sent, not at ``record()``.
    """

    __slots__ = ("_count", "_grouper", "_listener", "_max_events", "_ready")

    durable = False
    nbytes = 0

    def __init__(self, *, max_events: int | None = None) -> None:
        self._max_events = max_events if max_events is not None else sys.maxsize
        self._grouper: Grouper[_Key, Event] = Grouper(L.RECORDS_PER_CALL)
        self._ready: deque[tuple[_Key, list[Event]]] = deque()
        self._count = 0
        self._listener: SpoolListener | None = None

    def __repr__(self) -> str:
        return f"MemorySpool(held={self._count}, max_events={self._max_events})"

    def __len__(self) -> int:
        return self._count

    async def open(self, listener: SpoolListener, *, tracking_id: str) -> None:
        """Remember the listener (nothing to prepare in memory)."""
        del tracking_id
        self._listener = listener

    def full(self) -> bool:
        """True when ``max_events`` events are held."""
        return self._count >= self._max_events

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Add the event to its (session, user) group; a full group is ready for ``take()``."""
        self._count += 1
        ready = self._grouper.add((session_id, user_id), event)
        if ready:  # a full group (one in ten calls at most): batches are made in take()
            self._ready.extend(ready)
            if self._listener is not None:
                self._listener.spool_ready()

    def pop_oldest(self) -> Event | None:
        """Remove and return the oldest event of the oldest group, or None."""
        oldest = self._grouper.pop_oldest()
        if oldest is None:
            return None
        self._count -= 1
        return oldest[1]

    def take(self, *, flush: bool) -> list[SpoolBatch]:
        """The full groups, and every group when ``flush``, as batches."""
        groups = list(self._ready)
        self._ready.clear()
        if flush:
            groups.extend(self._grouper.cut())
        return [SpoolBatch(key[0], key[1], events) for key, events in groups]

    def ack(self, batch: SpoolBatch) -> None:
        """The service accepted ``batch``: forget its events."""
        self._count -= len(batch.events)

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """``batch`` failed for good: forget its events (the recorder reports them)."""
        del reason
        self._count -= len(batch.events)

    def release(self, batch: SpoolBatch) -> None:
        """The recorder stops with ``batch`` unsent: forget its events (memory does not outlive us)."""
        self._count -= len(batch.events)

    async def sync(self) -> None:
        """Nothing to wait for: memory is not durable."""
        return None

    async def close(self) -> None:
        """Forget the listener; idempotent."""
        self._listener = None
