"""SqliteSpool: the recorder's events in an SQLite file, so they outlive a crash, a kill and a restart.

Standard library ``sqlite3`` only, WAL mode. ``append()`` groups the event
in memory to be sent, as the memory spool does, and notes when it came; no
I/O. At each tick (a loop timer, at most every ``commit_interval / 4``) the
events still unsent ``commit_interval / 2`` after they came are serialised,
on the loop, into one *segment* (one row: a pickle of plain tuples, read
back with an unpickler that refuses every class) and queued for the
spool's one writer thread, which does SQL only (so it holds the GIL
little): one transaction per round (group commit) writes the
new segments, deletes those whose events are all settled, keeps dead
letters, renews this process's lease and takes over what dead processes
left. An event the service accepted before it was due is never written
(write-behind): whatever ``record()`` accepted is on disk or at the service
within ``commit_interval``. ``put()`` forces the events before it onto disk
and waits for the commit. Every event carries the ``eventId`` given at
``record()``, so one sent before a crash and again after it is counted once
by the service (after a kill, the events of a segment that were already
accepted are sent again: the service drops them).

Memory is bounded by ``window``: beyond it, events wait on disk only and
are read back (in id order) as room frees up; so are events taken over.

Several processes may share one file. Each registers as an *owner* (host,
pid, process start time, lease expiry); its rows carry its owner id. An
owner renews its lease every few seconds; another process takes over (moves
to itself, in one transaction) the rows of an owner that is gone: the same
host and its pid no longer runs (or runs another program, or is a zombie),
or its lease has expired. Rows are never taken from an owner that lives, so
nothing is sent twice by us while it lives. At ``close()`` an owner writes
what it holds and frees the rows it did not send (owner NULL) for whoever
opens the file next.

Where each part lives: ``_file`` (opening, schema, the transaction helper,
moving a bad file aside), ``_segments`` (the segment encoding), ``_owners``
(leases, liveness, take-over), ``_writer`` (the writer thread and its typed
operations), ``_behind`` (write-behind: which events go to the writer, and
when); this module is the loop side (intake, batches, what it counts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

from ... import _limits as L
from ..._batching import Grouper
from ..._clock import Clock
from ..._lines import event_line
from ..._shapes import Event
from ..._validators import check_positive_int
from ...errors import ValidationError
from .._protocol import SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from ._behind import WriteBehind
from ._file import SCHEMA_VERSION, Synchronous, connect_spool, describe_sqlite_error
from ._writer import (
    CLOSE_TIME,
    DeleteSegment,
    Entry,
    KeepDead,
    LoadRows,
    Round,
    Sync,
    Totals,
    Writer,
)

log: Final = logging.getLogger("aiopersonalize_events.spool")

__all__ = ["SCHEMA_VERSION", "SqliteSpool", "connect_spool", "describe_sqlite_error"]

_Key = tuple[str, "str | None"]

_OPEN: weakref.WeakSet[SqliteSpool] = weakref.WeakSet()  # spools open in this process, for the fork hook
_INHERITED: list[object] = []  # connections a forked child inherited: kept, never closed, never used there


def _after_fork_in_child() -> None:
    """A child of fork() has the parent's open spools without their writer threads: they belong to the parent.
    Keep their connections from being closed here (SQLite must not use a connection across fork)."""
    for spool in list(_OPEN):
        spool._forked()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_options(
    path: object,
    commit_interval: object,
    max_events: int | None,
    max_bytes: int | None,
    synchronous: object,
    lease: object,
    window: int,
    clock: object,
) -> None:
    """``SqliteSpool``'s options checked before anything is opened: a ``ValidationError`` naming the one wrong."""
    if not isinstance(path, str) or not path or path == ":memory:":
        raise ValidationError("path", "must be the path of a file (a spool in memory would not outlive us)")
    if isinstance(commit_interval, bool) or not isinstance(commit_interval, (int, float)):
        raise ValidationError("commit_interval", "must be a number of seconds")
    if not 0 < commit_interval <= 10:
        raise ValidationError("commit_interval", "must be more than 0 and at most 10 seconds")
    if max_events is not None:
        check_positive_int("max_events", max_events)
    if max_bytes is not None:
        check_positive_int("max_bytes", max_bytes)
    if synchronous not in ("normal", "full"):
        raise ValidationError("synchronous", "must be 'normal' or 'full'")
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease >= 1:
        raise ValidationError("lease", "must be at least 1 second")
    check_positive_int("window", window)
    if clock is not None and not isinstance(clock, Clock):
        raise ValidationError("clock", "must have time() and call_at() (an event loop, a ManualClock)")


class SqliteSpool:
    """Keeps the recorder's events in an SQLite file (WAL mode) until the service accepted them.

    ``SqliteSpool(path, *, commit_interval=0.05, max_events=None, max_bytes=None)``:
    what ``record()`` accepted is on disk, or accepted by the service, within
    ``commit_interval`` seconds (group commit: an event still unsent after
    ``commit_interval / 2`` goes into the next transaction, one every
    ``commit_interval / 4`` at most); one the service accepted before that is
    never written. ``await recorder.put()`` returns once its event is on
    disk. ``max_events`` and ``max_bytes`` bound the pending events (all
    processes together, checked against the last commit; bytes of events not
    yet written are estimated); beyond them the recorder's ``overflow``
    policy applies. ``synchronous="full"`` makes every commit wait for the
    disk (fsync), which also survives a power loss; the default ``"normal"``
    survives a crash or kill of the process, not of the machine. ``lease``
    is how long (seconds) a process that stopped renewing keeps its rows when
    it cannot be seen dead (another host, a hung process). ``window`` bounds
    the events held in memory (the rest wait on disk only). ``clock`` (a
    ``Clock``; the event loop by default) measures the write-behind delay and
    the writer's pace, so a test can move it.

    Errors at open raise ``SpoolError`` (a directory that does not exist, a
    read-only file or directory, a file locked by another program, a schema
    newer than this version). A corrupted file is moved aside (renamed
    ``PATH.corrupt-...``, never deleted) and a fresh one is started, with an
    ERROR log line naming it. At run time, when writing fails (disk full, I/O
    error): events held in memory stay queued and are still sent (writing is
    tried again each round; ``put()`` raises ``SpoolError`` meanwhile), and
    events that could only be kept on disk fail for good: counted, logged and
    handed to ``on_failure``.
    """

    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        commit_interval: float = 0.05,
        max_events: int | None = None,
        max_bytes: int | None = None,
        synchronous: Synchronous = "normal",
        lease: float = 30.0,
        window: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        self._path = os.fspath(path)
        _check_options(self._path, commit_interval, max_events, max_bytes, synchronous, lease, window, clock)
        self._commit_interval = float(commit_interval)
        self._hold = self._commit_interval / 2  # an event unsent this long is written
        self._pace = self._commit_interval / 4  # at most one transaction this often
        self._limit_events = max_events if max_events is not None else sys.maxsize
        self._limit_bytes = max_bytes if max_bytes is not None else sys.maxsize
        self._unbounded = max_events is None and max_bytes is None
        self._synchronous: Synchronous = synchronous
        self._lease = float(lease)
        self._window = window
        self._clock = clock
        self._now: Callable[[], float] = clock.time if clock is not None else self._first_time  # append()'s clock

        self._state = "new"  # new -> opening -> open -> closing -> closed (or failed)
        self._writer: Writer | None = None
        self._behind = WriteBehind(self._hold, self._pace)  # appended, not yet queued for the writer; the ticks
        self._grouper: Grouper[_Key, Entry] = Grouper(L.RECORDS_PER_CALL)
        self._ready: deque[tuple[_Key, list[Entry]]] = deque()
        # len(), full() and sync() derive what they say (_held, _unwritten, _deletes_queued) from totals that
        # each count one kind of happening: the loop's here, the writer's as its last round said (``_done``).
        # One level is kept by hand: the entries in memory, since the batches out are the recorder's to hold.
        self._in_memory = 0  # entries in the grouper, in ready groups, or out in batches
        self._appended = 0  # append() calls
        self._appended_disk = 0  # of those, the ones that found the window full: on disk only
        self._never_written = 0  # appended events settled (or lost) before they were queued for the writer
        self._never_written_disk = 0  # of those, ones on disk only (lost before queued: the spool never opened)
        self._settled_written = 0  # settled events whose segment was queued: deleted once all of it is settled
        self._deletes_void = 0  # of those, in segments the writer gave up: no row to delete
        self._done = Totals()  # the writer's totals (written or lost, deleted) as of its last round
        self._disk_events = 0  # pending rows in the file (all owners) at the last commit
        self._disk_bytes = 0
        self._avg_bytes = 300
        self._backlog = 0  # events of ours waiting on disk only, as the writer last said
        self._in_transit = False  # a LoadRows asked and not yet answered
        self._listener: SpoolListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracking_id: str | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._recovered_total = 0
        self._pid: int | None = None  # the process that opened it

    def __repr__(self) -> str:
        return f"SqliteSpool({self._path!r}, state={self._state}, held={self._held})"

    @property
    def path(self) -> str:
        """The spool file."""
        return self._path

    @property
    def nbytes(self) -> int:
        """Bytes of the pending events in the file (all processes) at the last commit, as counted for ``max_bytes``."""
        return self._disk_bytes

    @property
    def recovered(self) -> int:
        """Events this spool took over from earlier or dead processes since it opened."""
        return self._recovered_total

    def __len__(self) -> int:
        return self._held

    @property
    def _held(self) -> int:
        """What ``len()`` says: in memory, plus ours on disk only: the writer's backlog (read back, taken over,
        unreadable rows and all, as its last round said) and those on their way there."""
        on_their_way = self._appended_disk - self._never_written_disk - self._done.resolved_disk
        return self._in_memory + self._backlog + on_their_way

    @property
    def _unwritten(self) -> int:
        """Appended events neither written (nor given up) by the writer, nor settled before they were queued."""
        return self._appended - self._never_written - self._done.resolved

    @property
    def _deletes_queued(self) -> int:
        """Settled events still in the file as of the last commit: their segment's deletion is yet to come."""
        return self._settled_written - self._deletes_void - self._done.deleted

    def _first_time(self) -> float:
        """``append()``'s clock until one is known: the running loop's (the default clock), adopted once.

        ``append()`` runs on the loop thread, so the loop is found at the first
        event; with none running yet the event counts as due at the first tick
        after ``open()`` (it has waited at least that long).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return float("-inf")
        self._clock = loop
        self._now = loop.time
        return loop.time()

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self, listener: SpoolListener, *, tracking_id: str) -> None:
        """Open the file in the writer thread, take over what earlier processes left; see ``Spool.open``."""
        if self._pid is not None and self._pid != os.getpid():
            raise SpoolStateError(
                f"the spool {self._path} was opened by process {self._pid} before fork(); a process made by fork() "
                "cannot use it: make the spool (or the recorder) in each process, or open it after the fork"
            )
        if self._state != "new":
            raise SpoolStateError(f"the spool {self._path} is already {self._state}; a spool serves one recorder")
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._clock is None:
            self._clock = loop
            self._now = loop.time
        self._listener = listener
        self._tracking_id = tracking_id
        self._state = "opening"
        self._pid = os.getpid()
        _OPEN.add(self)
        self._opened = loop.create_future()
        self._in_transit = True  # the first round reads back what waits on disk
        self._writer = Writer(
            self._path,
            tracking_id,
            synchronous=self._synchronous,
            lease=self._lease,
            commit_interval=self._commit_interval,
            clock=self._clock,
            loop=loop,
            listener=self,
            room=max(0, self._window - self._in_memory),
            max_events=self._limit_events if self._limit_events != sys.maxsize else None,
        )
        self._behind.start(self._clock, self._writer)  # before the first round: a sync() meanwhile queues what is due
        self._writer.start()
        await asyncio.shield(self._opened)
        if self._behind.due and self._behind.tick is None:
            self._behind.schedule(0.0)

    async def sync(self) -> None:
        """Return once every event appended before this call is on disk; ``SpoolError`` if writing fails."""
        writer = self._writer
        if self._state in ("new", "closed", "failed") or writer is None:
            if self._unwritten:
                raise SpoolError(f"the spool {self._path} is {self._state}: events could not be written")
            return
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._behind.queue(force=True)
        writer.put(Sync(done))
        writer.wake()
        await done

    async def close(self, *, timeout: float | None = None) -> None:
        """Write what is unsent, free it for a later process, close the file; idempotent.

        Returns within ``timeout`` seconds (``CLOSE_TIME``, 4, when None), whatever the file does: events
        it could not take by then (another program holding a lock, a full disk) are reported through
        ``spool_lost`` (the recorder counts them failed), so what stays counted is in the file.
        """
        if self._pid is not None and self._pid != os.getpid():
            return  # a copy in a forked child: the parent's writer holds the file, nothing here to close
        if self._state in ("new", "closed", "failed"):
            if self._state == "new":
                self._state = "closed"
            return
        writer = self._writer
        assert writer is not None
        if self._closed is None:
            assert self._loop is not None
            self._closed = self._loop.create_future()
            self._state = "closing"
            self._behind.cancel()
            self._behind.queue(force=True)
            writer.stop(CLOSE_TIME if timeout is None else timeout)
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), writer.remaining())
        except asyncio.TimeoutError:  # a statement outlived the deadline: the exit hook still waits for it
            log.error("spool %s: the writer did not finish within the close deadline", self._path)
            return
        _OPEN.discard(self)
        if writer.is_alive():
            # the writer said it is done as its last act; wait (off the loop) for it to end, so that
            # close() returns with no thread of this spool left
            await asyncio.to_thread(writer.join, writer.remaining())

    # -- intake and delivery (loop thread) -----------------------------------------------------

    def full(self) -> bool:
        """True when one more event would exceed ``max_events`` or ``max_bytes``."""
        if self._unbounded:  # (called at every record(): the common case costs nothing)
            return False
        # what the file will gain once the writer catches up: _unwritten - _deletes_queued, inlined (hot path)
        done = self._done
        coming = self._appended - self._never_written - done.resolved - self._settled_written + self._deletes_void
        coming += done.deleted
        return (
            self._disk_events + coming >= self._limit_events
            or self._disk_bytes + coming * self._avg_bytes >= self._limit_bytes
        )

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Keep one event: grouped in memory to be sent, and due on disk unless sent first (no I/O here)."""
        self._appended += 1
        behind = self._behind
        if self._in_memory < self._window:
            self._in_memory += 1
            entry = Entry(event, session_id, user_id, self._now(), True)
            behind.due.append(entry)
            ready = self._grouper.add((session_id, user_id), entry)
            if ready:
                self._ready.extend(ready)
                if self._listener is not None:
                    self._listener.spool_ready()
            if behind.tick is None and self._state == "open":
                behind.schedule(self._hold)
        else:  # the window is full: this one waits on disk only, written at the next tick
            self._appended_disk += 1
            behind.due.append(Entry(event, session_id, user_id, self._now(), False))
            behind.force = len(behind.due)
            if self._state == "open":
                behind.schedule(0.0)

    def pop_oldest(self) -> Event | None:
        """Remove and return the oldest event waiting in memory (not out in a batch), or None."""
        oldest = self._grouper.pop_oldest()
        if oldest is None:
            return None
        entry = oldest[1]
        self._in_memory -= 1
        self._settle((entry,), None, dead=False)
        self._ask_rows()
        return entry.event

    def take(self, *, flush: bool) -> list[SpoolBatch]:
        """The batches ready to send: full groups, and every group when ``flush``."""
        groups = list(self._ready)
        self._ready.clear()
        if flush:
            groups.extend(self._grouper.cut())
        return [SpoolBatch(key[0], key[1], [e.event for e in entries], entries) for key, entries in groups]

    def ack(self, batch: SpoolBatch) -> None:
        """The service accepted ``batch``: its events leave the spool (never written, if not yet due)."""
        self._settled(batch)
        self._settle(batch.handles, None, dead=False)

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """``batch`` failed for good: its events become dead letters, with ``reason``."""
        self._settled(batch)
        self._settle(batch.handles, reason, dead=True)

    def release(self, batch: SpoolBatch) -> None:
        """The recorder stops with ``batch`` unsent: it stays in the file for the next start."""
        for entry in batch.handles:
            assert isinstance(entry, Entry)
            entry.released = True
        self._settled(batch)

    def _settled(self, batch: SpoolBatch) -> None:
        self._in_memory -= len(batch.events)
        self._ask_rows()

    def _settle(self, handles: Sequence[Hashable], reason: str | None, *, dead: bool) -> None:
        """Events leave: one never written is simply not written; a segment all settled is deleted."""
        writer = self._writer
        rows: list[tuple[Any, ...]] = []
        for entry in handles:
            assert isinstance(entry, Entry)
            if dead:
                rows.append(_dead_row(self._tracking_id, entry, reason or ""))
            seg = entry.seg
            if seg is None:
                if not entry.done:  # (an entry lost meanwhile is done already)
                    entry.done = True
                    self._never_written += 1
                continue
            entry.seg = None
            if seg.void:  # its segment was given up, so it has no row: nothing to delete
                continue
            self._settled_written += 1
            seg.left -= 1
            if seg.left <= 0 and writer is not None:
                writer.put(DeleteSegment(seg))
        if rows and writer is not None:
            writer.put(KeepDead(rows))

    def _ask_rows(self) -> None:
        """Ask the writer for events waiting on disk when memory has room and none are on their way."""
        writer = self._writer
        if self._in_transit or self._backlog <= 0 or self._in_memory >= self._window or writer is None:
            return
        if self._state not in ("opening", "open"):
            return
        self._in_transit = True
        writer.put(LoadRows(self._window - self._in_memory))
        writer.wake()

    # -- what the writer tells (on the loop thread) ------------------------------------------------------

    def writer_opened(self, error: BaseException | None) -> None:
        """The file is open (``error`` None), or it could not be opened."""
        assert self._opened is not None
        if self._opened.done():
            return
        if error is None:
            if self._state == "opening":
                self._state = "open"
            self._opened.set_result(None)
            self._ask_rows()
        else:
            self._state = "failed"
            self._opened.set_exception(error)

    def writer_round(self, result: Round) -> None:
        """What a writer round did: counts, events read back or taken over, events lost, syncs answered."""
        lost = self._lost(result)
        self._done = result.totals
        self._backlog = result.backlog
        if result.held_events is not None and result.held_bytes is not None:
            self._disk_events = result.held_events
            self._disk_bytes = result.held_bytes
            if result.held_events:
                self._avg_bytes = max(1, result.held_bytes // result.held_events)
        listener = self._listener
        if result.recovered:
            self._recovered_total += result.recovered
            if listener is not None:
                listener.spool_recovered(result.recovered)
        if lost and listener is not None:
            error = result.error or SpoolError(f"the spool {self._path} could not keep these events")
            listener.spool_lost([e.event for e in lost], error)
        if result.unreadable or result.unreadable_taken:
            _tell_unreadable(listener, result.unreadable, result.unreadable_taken)
        self._take_rows(result.rows)
        if result.loaded:
            self._in_transit = False
        _answer_syncs(result)
        self._ask_rows()

    def _lost(self, result: Round) -> list[Entry]:
        """The events a round gave up: the unsettled ones of its segments given up (those in memory too, when the
        spool is ending; else they are still sent), and, when the spool never opened, every one appended."""
        lost: list[Entry] = []
        for op in result.lost:
            seg = op.seg
            seg.void = True
            unsettled = [e for e in op.entries if e.seg is seg]  # the loop's to say: it settles them
            self._deletes_void += seg.count - len(unsettled)
            if result.lose_memory or not seg.in_memory:
                lost.extend(unsettled)
        if result.clear_memory:  # the spool never opened: what was never queued is lost too
            for entry in self._behind.take_unqueued():
                self._never_written += 1
                self._never_written_disk += not entry.in_memory
                lost.append(entry)
            self._grouper.cut()
            self._ready.clear()
        for entry in lost:
            entry.seg = None
            entry.done = True
            if entry.in_memory and not entry.released:  # (a released one has left memory already)
                self._in_memory -= 1
        return lost

    def _take_rows(self, rows: list[Entry]) -> None:
        ready = False
        for entry in rows:
            self._in_memory += 1
            groups = self._grouper.add((entry.session_id, entry.user_id), entry)
            if groups:
                self._ready.extend(groups)
                ready = True
        if ready and self._listener is not None:
            self._listener.spool_ready()

    def writer_closed(self) -> None:
        """The writer ended: the file is closed."""
        self._state = "closed"
        self._listener = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _forked(self) -> None:
        """In a child of fork(): the writer thread did not come along; keep its connection unclosed."""
        writer = self._writer
        if writer is not None:
            _INHERITED.append(writer.inherited())
        self._behind.tick = None

    def before_exit(self) -> None:
        """At interpreter exit with the spool open (the loop has ended): its events due on disk go now."""
        if self._state in ("open", "closing"):
            self._behind.queue(force=True)


def _dead_row(tracking_id: str | None, entry: Entry, reason: str) -> tuple[Any, ...]:
    """The dead-letter row of ``entry``: its tracking id, session, user, event id, put-events line and reason."""
    line = event_line(entry.event, entry.session_id, entry.user_id).decode()
    return (tracking_id, entry.session_id, entry.user_id, entry.event.event_id, line, reason)


def _tell_unreadable(listener: SpoolListener | None, held: int, taken: int) -> None:
    """Stored events found unreadable (kept as dead letters): ``held`` were ours, ``taken`` being taken over.

    The listener counts them failed (a count only: there is no event to hand
    on), when it has ``spool_unreadable``; ours have left ``len()`` already
    (the backlog counts only what it can read back).
    """
    tell = getattr(listener, "spool_unreadable", None)
    if tell is None:
        return
    if held:
        tell(held, taken_over=False)
    if taken:
        tell(taken, taken_over=True)


def _answer_syncs(result: Round) -> None:
    """Answer the ``sync()`` calls a writer round covered: done, or the round's write error."""
    for done in result.syncs:
        if done.done():
            continue
        if result.sync_error is not None:
            done.set_exception(result.sync_error)
        else:
            done.set_result(None)
