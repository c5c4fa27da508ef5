"""The spool's one writer thread: typed operations in through one queue, one transaction a round, a ``Round`` out.

The loop side queues operations (``WriteSegment``, ``DeleteSegment``,
``KeepDead``, ``Sync``, ``LoadRows``); the writer drains them, runs one
transaction per round (group commit: new segments, deletions of settled
ones, dead letters, the lease, take-overs), and hands what the round did
(a ``Round``) back to the loop thread. Nothing the loop owns is read
here: the room in memory comes with ``LoadRows``, and what the writer owns
(its totals of events written and deleted, the events waiting on disk, the
segments read back, the segments it gave up) goes back in ``Round``; which
events of a segment given up were still unsettled is the loop's to say.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

from ..._clock import Clock
from .._protocol import SpoolError
from . import _file
from ._backlog import Backlog, Entry, Segment, read_totals, room_in_file
from ._file import Synchronous, connect_spool, describe_sqlite_error, is_busy, is_corrupt, move_aside, transaction
from ._owners import ROW_OVERHEAD, Duties, Owner

__all__ = [
    "DeleteSegment",
    "Entry",
    "KeepDead",
    "LoadRows",
    "Round",
    "Segment",
    "Sync",
    "Totals",
    "WriteSegment",
    "Writer",
    "WriterListener",
]

log: Final = logging.getLogger("aiopersonalize_events.spool")

_MAX_ROUND: Final = 50_000  # operations taken in one round at most
_GIVE_UP_ROUNDS: Final = 20  # failed rounds after which deletions and dead letters are given up
CLOSE_TIME: Final = 4.0
"""Seconds ``close()`` (and the interpreter's exit) gives the writer when no timeout is given (the recorder
always gives one: what is left of its own deadline)."""
_GRACE: Final = 0.25  # beyond the close deadline: the last statement, the hand-over to the loop
_real_time: Final = time.monotonic
"""The one clock the spool does not take from its ``Clock``: the close deadline's. It bounds real blocking
on this thread (SQLite's busy timeout is real milliseconds, a join is real time) and must move by itself:
a ``ManualClock`` moves only when a test advances it, and at interpreter exit the loop has ended."""


# -- operations: what the loop asks of the writer, one small class each ------------------------------


class WriteSegment:
    """Write these events as one row (``entries``: the loop's, never read by the writer)."""

    __slots__ = ("body", "entries", "seg")

    def __init__(self, seg: Segment, body: bytes, entries: list[Entry]) -> None:
        self.seg = seg
        self.body = body
        self.entries = entries


class DeleteSegment:
    """Every event of ``seg`` is settled: its row goes (or it is never written)."""

    __slots__ = ("seg",)

    def __init__(self, seg: Segment) -> None:
        self.seg = seg


class KeepDead:
    """Dead letters: ``(tracking_id, session_id, user_id, event_id, line, reason)`` rows."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows


class Sync:
    """Resolve ``done`` once everything queued before it is committed (with the error when it is not)."""

    __slots__ = ("done",)

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done


class LoadRows:
    """The loop has room for ``room`` more events in memory: read back events of ours waiting on disk."""

    __slots__ = ("room",)

    def __init__(self, room: int) -> None:
        self.room = room


Operation = WriteSegment | DeleteSegment | KeepDead | Sync | LoadRows


class Totals:
    """The writer's running totals since it started (never decreased), sent with every round."""

    __slots__ = ("deleted", "resolved", "resolved_disk")

    def __init__(self) -> None:
        self.resolved = 0  # events of queued segments written, or given up (lost)
        self.resolved_disk = 0  # of those, the ones on their way to disk only
        self.deleted = 0  # events of settled segments whose row went (or never came), or whose deletion was given up

    def copy(self) -> Totals:
        """A snapshot, for a round to carry to the loop thread."""
        done = Totals()
        done.resolved, done.resolved_disk, done.deleted = self.resolved, self.resolved_disk, self.deleted
        return done


class Round:
    """What one writer round did, handed to the loop thread."""

    __slots__ = (
        "backlog",
        "clear_memory",
        "error",
        "held_bytes",
        "held_events",
        "loaded",
        "lose_memory",
        "lost",
        "recovered",
        "rows",
        "sync_error",
        "syncs",
        "totals",
        "unreadable",
        "unreadable_taken",
    )

    def __init__(self, backlog: int) -> None:
        self.totals = Totals()  # the writer's totals after this round (set as it is sent)
        self.rows: list[Entry] = []  # entries read back from disk, for the loop to send
        self.loaded = False  # a ``LoadRows`` was answered (with ``rows``, maybe none)
        self.backlog = backlog  # events of ours on disk, not in memory, after this round
        self.recovered = 0
        self.lost: list[WriteSegment] = []  # segments given up: never written (their unsettled events are lost)
        self.lose_memory = False  # the events of ``lost`` segments that are in memory are lost too (else still sent)
        self.error: SpoolError | None = None
        self.syncs: list[asyncio.Future[None]] = []
        self.sync_error: SpoolError | None = None
        self.held_events: int | None = None
        self.held_bytes: int | None = None
        self.clear_memory = False  # the spool never opened: every event appended is lost, queued or not
        self.unreadable = 0  # events held for us, read back unreadable (now dead letters): failed
        self.unreadable_taken = 0  # events taken over unreadable (now dead letters): never counted, failed


class WriterListener(Protocol):
    """What the writer tells the loop side; each call is made on the loop thread (``before_exit`` excepted)."""

    def writer_opened(self, error: BaseException | None) -> None:
        """The file is open and the first round done (``error`` None), or it could not be opened."""

    def writer_round(self, result: Round) -> None:
        """What a round did."""

    def writer_closed(self) -> None:
        """The writer is done: the file is closed."""

    def before_exit(self) -> None:
        """The interpreter exits with the spool open: queue what is due (called on the exiting thread)."""


class _Plan:
    """A round's operations, sorted by kind."""

    __slots__ = ("dead_rows", "deleted", "inserts", "loads", "syncs")

    def __init__(self, ops: list[Operation]) -> None:
        self.inserts: list[WriteSegment] = []
        self.deleted: list[Segment] = []  # settled segments: their row goes, or they are never written
        self.dead_rows: list[tuple[Any, ...]] = []
        self.syncs: list[asyncio.Future[None]] = []
        self.loads: list[LoadRows] = []
        for op in ops:
            if isinstance(op, WriteSegment):
                if not op.seg.lost:
                    self.inserts.append(op)
            elif isinstance(op, DeleteSegment):
                if not op.seg.lost:
                    self.deleted.append(op.seg)
            elif isinstance(op, Sync):
                self.syncs.append(op.done)
            elif isinstance(op, LoadRows):
                self.loads.append(op)
            else:
                self.dead_rows.extend(op.rows)


class Writer:
    """The thread that owns the spool's connection: opens the file, runs the rounds, frees our rows at the end."""

    def __init__(
        self,
        path: str,
        tracking_id: str,
        *,
        synchronous: Synchronous,
        lease: float,
        commit_interval: float,
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
        listener: WriterListener,
        room: int,
        max_events: int | None,
    ) -> None:
        self.path = path
        self._max_events = max_events
        self._tracking_id = tracking_id
        self._synchronous: Synchronous = synchronous
        self._commit_interval = commit_interval
        self._clock = clock  # monotonic: when to renew and claim, how long writing has failed
        self._wall: Callable[[], float] = time.time  # leases and timestamps kept in the file
        self._loop = loop
        self._listener = listener
        self.owner = Owner(path, tracking_id, lease)
        self.ops: deque[Operation] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="aiopersonalize_events-spool", daemon=True)
        self._conn: sqlite3.Connection | None = None
        self._carry: list[Operation] = []  # operations of a failed round, to try again
        self._carry_rounds = 0
        self._disk = Backlog(path, tracking_id)  # events of ours waiting on disk only, and the reading back
        self._totals = Totals()
        self._first_room = room  # the room in memory when the spool opened: the first round reads back this many
        self._duties = Duties(self.owner, 0.0)  # set again once the file is open
        self._failing_since: float | None = None
        self._deadline: float | None = None  # _real_time() by which a stopping writer is done
        self._exit_hook: Callable[[], None] | None = None

    # -- the loop side's handles -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread: it opens the file and tells ``writer_opened``."""
        self._thread.start()

    def put(self, op: Operation) -> None:
        """Queue one operation (any thread); ``wake()`` makes the writer run a round soon."""
        self.ops.append(op)

    def wake(self) -> None:
        """Run a round now instead of at the next renewal."""
        self._wake.set()

    def stop(self, timeout: float = CLOSE_TIME) -> None:
        """Write what is queued, free our rows and end (``writer_closed`` tells when), within ``timeout`` seconds:
        what the file does not take by then (locked, full) is reported lost, never left half-done."""
        if self._deadline is None:
            self._deadline = _real_time() + max(0.0, timeout)
        self._stop.set()
        self._wake.set()

    def remaining(self) -> float:
        """Seconds left before the close deadline (with the grace for the hand-over); the full budget if none."""
        deadline = self._deadline
        return CLOSE_TIME + _GRACE if deadline is None else max(0.0, deadline - _real_time()) + _GRACE

    def _until(self) -> float | None:
        """The close deadline (on ``_real_time``), once ``stop()`` set one: no wait for a lock goes past it."""
        return self._deadline

    def _bound_waits(self, conn: sqlite3.Connection) -> None:
        """While stopping, no statement may wait on a lock past the close deadline."""
        deadline = self._deadline
        if deadline is not None:
            left = max(0.0, deadline - _real_time())
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")

    def inherited(self) -> object:
        """In a child of fork(): give up the connection (the caller keeps it, unclosed) and the exit hook."""
        conn, self._conn = self._conn, None
        self._unregister_exit_hook()
        return conn

    def is_alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end (never on the thread itself)."""
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join(timeout)

    def _tell(self, result: Round) -> None:
        """Hand a round to the loop thread, with the writer's totals as they are now."""
        result.totals = self._totals.copy()
        self._to_loop(self._listener.writer_round, result)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            return False
        return True

    # -- the thread ---------------------------------------------------------------------------------

    def _main(self) -> None:
        listener = self._listener
        try:
            recovered = self._open_db()
        except BaseException as exc:
            error = exc if isinstance(exc, SpoolError) else SpoolError(describe_sqlite_error(self.path, exc))
            self._fail_queue(error, everything=True)
            self._to_loop(listener.writer_opened, error)
            self._to_loop(listener.writer_closed)
            return
        self._register_exit_hook()
        if recovered:
            log.warning("spool %s: %d event(s) left by earlier processes will be sent", self.path, recovered)
        try:
            self._round(recovered, LoadRows(self._first_room))  # the first rows reach the loop before open returns
            self._to_loop(listener.writer_opened, None)
            self._run()
        except BaseException:  # never die silently: fail what is queued, loudly
            log.exception("spool %s: the writer thread failed", self.path)
            self._fail_queue(SpoolError(f"the spool {self.path} writer failed; see the log"), everything=False)
            self._to_loop(listener.writer_opened, SpoolError(f"the spool {self.path} writer failed; see the log"))
        finally:
            self._shutdown_db()
            self._unregister_exit_hook()
            self._to_loop(listener.writer_closed)

    def _open_db(self) -> int:
        """Open the file, register, take over what the gone left; a corrupted file (found by the connection or
        by the first transaction: a page damaged mid-file) is moved aside and a fresh one started."""
        try:
            conn = connect_spool(self.path, synchronous=self._synchronous)
            try:
                recovered = self._register(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise SpoolError(describe_sqlite_error(self.path, exc)) from exc
            target = move_aside(self.path)
            log.error(
                "spool %s is corrupted (%s); moved aside to %s (not deleted) and started a new one",
                self.path,
                exc,
                target,
            )
            conn = connect_spool(self.path, synchronous=self._synchronous)
            self.owner.unreadable = 0  # what the moved-aside file held is not ours to count
            try:
                recovered = self._register(conn)
            except sqlite3.DatabaseError as again:
                conn.close()
                raise SpoolError(describe_sqlite_error(self.path, again)) from again
        # waits for another connection's lock are slices from now on, between which a close deadline is seen
        conn.execute(f"PRAGMA busy_timeout = {int(_file.BUSY_SLICE * 1000)}")
        self._conn = conn
        self._disk.events += recovered
        now = self._clock.time()
        self._duties = Duties(self.owner, now)
        return recovered

    def _register(self, conn: sqlite3.Connection) -> int:
        wall = self._wall()
        with transaction(conn, until=self._until):
            self.owner.register(conn, wall)
            return self.owner.claim(conn, wall, self._clock.time())

    def _run(self) -> None:
        while True:
            if not self.ops and not self._stop.is_set():
                self._wake.wait(timeout=self._wait_time())
            self._wake.clear()
            stopping = self._stop.is_set()
            if stopping and self._conn is not None:
                self._bound_waits(self._conn)
            self._round(0)
            if stopping and not self.ops and not self._carry:
                return
            if self._carry:  # a failed round (or no room): try again after a pause
                if stopping and (self._deadline is None or _real_time() >= self._deadline):
                    # closing, and the file did not take them by the deadline: they are lost, and said so
                    error = SpoolError(f"the spool {self.path} could not be written within the close deadline")
                    log.error(
                        "spool %s: writing still fails at close; the events not written are lost (reported failed)",
                        self.path,
                    )
                    self._fail_queue(error, everything=False, memory_too=True)
                    return
                pause = self._commit_interval
                if stopping and self._deadline is not None:
                    pause = min(pause, max(0.0, self._deadline - _real_time()))
                if stopping:  # the stop flag is set: waiting on it would not pause
                    time.sleep(pause)
                else:
                    self._stop.wait(pause)

    def _wait_time(self) -> float:
        """How long the idle writer may sleep: until the next lease renewal or claim."""
        return self._duties.wait(self._clock.time())

    def _drain(self) -> list[Operation]:
        ops: list[Operation] = []
        popleft = self.ops.popleft
        try:
            while len(ops) < _MAX_ROUND:
                ops.append(popleft())
        except IndexError:
            pass
        return ops

    # -- one round --------------------------------------------------------------------------------------

    def _round(self, recovered: int, *extra: Operation) -> None:
        """One transaction: write the queued segments, delete the settled ones, keep dead letters, renew, take over.

        Nothing changes in memory until the transaction committed: a round
        that fails leaves everything as it was, to be tried again.
        """
        conn = self._conn
        assert conn is not None
        result = Round(self._disk.events)
        result.recovered = recovered
        ops = [*extra, *self._carry, *self._drain()]
        self._carry = []
        plan = _Plan(ops)
        result.syncs = plan.syncs
        gone = {id(seg) for seg in plan.deleted}
        writes = [op for op in plan.inserts if id(op.seg) not in gone]  # all settled first: never written
        rows = [seg.rowid for seg in plan.deleted if seg.rowid is not None]
        rows.extend(self._disk.unreadable)
        now = self._clock.time()
        housekeeping = self._duties.due(now) or self._stop.is_set()
        unreadable = self.owner.unreadable  # found by an earlier take-over (at open), not yet told
        try:
            ids, claimed = self._write(conn, writes, rows, plan.dead_rows, housekeeping, now)
        except (sqlite3.Error, OSError) as exc:
            self.owner.unreadable = unreadable  # this round's take-over was rolled back: found again next time
            self._round_failed(exc, ops, result)
            self._tell(result)
            return
        if self._failing_since is not None:
            log.warning("spool %s: writing works again", self.path)
            self._failing_since = None
        self._carry_rounds = 0
        self._disk.unreadable = []
        over = writes[len(ids) :]
        self._committed(writes[: len(ids)], ids, plan.deleted)
        waiting = {id(op) for op in over}
        self._resolved([op for op in plan.inserts if id(op) not in waiting])
        if over:  # kept here (they are in memory), written as room frees; put() is told they are not on disk
            self._carry = list(over)
            result.sync_error = SpoolError(
                f"the spool {self.path} is at max_events={self._max_events} (all processes on it together): "
                f"{sum(op.seg.count for op in over)} event(s) wait in memory until room frees"
            )
        result.recovered += claimed
        self._disk.events += claimed
        if plan.loads:
            result.loaded = True
            if self._disk.events > 0:
                result.rows = self._disk.load(conn, self.owner.id, min(op.room for op in plan.loads), self._until)
        result.backlog = self._disk.events
        result.unreadable, self._disk.lost = self._disk.lost, 0
        result.unreadable_taken, self.owner.unreadable = self.owner.unreadable, 0
        if writes or rows or plan.dead_rows or claimed or recovered or result.rows:
            result.held_events, result.held_bytes = read_totals(conn)
        self._tell(result)

    def _resolved(self, ops: list[WriteSegment]) -> None:
        """These queued segments are done with: written (or never, all settled first), or given up."""
        totals = self._totals
        for op in ops:
            totals.resolved += op.seg.count
            if not op.seg.in_memory:
                totals.resolved_disk += op.seg.count

    def _committed(self, writes: list[WriteSegment], ids: list[int], deleted: list[Segment]) -> None:
        """The round committed: now memory follows."""
        for op, rowid in zip(writes, ids, strict=True):
            op.seg.rowid = rowid
            op.seg.nbytes = len(op.body) + ROW_OVERHEAD
            self._disk.written(rowid, op.seg)
        for seg in deleted:
            if seg.rowid is not None:
                self._disk.memory.discard(seg.rowid)
            self._totals.deleted += seg.count

    def _write(
        self,
        conn: sqlite3.Connection,
        writes: list[WriteSegment],
        rows: list[int],
        dead_rows: list[tuple[Any, ...]],
        housekeeping: bool,
        now: float,
    ) -> tuple[list[int], int]:
        """The round's transaction; returns the row ids of the new segments and the events taken over."""
        if not (writes or rows or dead_rows or housekeeping):
            return [], 0
        wall = self._wall()
        owner = self.owner.id
        with transaction(conn, until=self._until):
            deleted_events = deleted_bytes = 0
            if rows:
                gone = conn.execute(
                    "DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?)) AND owner = ? "
                    "RETURNING count, nbytes",
                    (json.dumps(rows), owner),
                ).fetchall()
                deleted_events = sum(g[0] for g in gone)
                deleted_bytes = sum(g[1] for g in gone)
            room = room_in_file(conn, self._max_events, deleted_events) if writes else 0
            ids: list[int] = []
            events_in = bytes_in = 0
            for op in writes:
                if op.seg.count > room - events_in:
                    break  # the file is at max_events (all processes together): the rest waits for room
                nbytes = len(op.body) + ROW_OVERHEAD
                cursor = conn.execute(
                    "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (self._tracking_id, op.seg.count, op.body, nbytes, owner, wall),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
                events_in += op.seg.count
                bytes_in += nbytes
            if dead_rows:
                conn.executemany(
                    "INSERT INTO dead (tracking_id, session_id, user_id, event_id, line, reason, failed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*row, wall) for row in dead_rows],
                )
            conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                [
                    (events_in, "written"),
                    (deleted_events, "deleted"),
                    (events_in - deleted_events, "held_events"),
                    (bytes_in - deleted_bytes, "held_bytes"),
                    (len(dead_rows), "dead"),
                ],
            )
            claimed = self._duties.run(conn, now, wall, closing=self._stop.is_set()) if housekeeping else 0
        return ids, claimed

    def _round_failed(self, exc: BaseException, ops: list[Operation], result: Round) -> None:
        """The round's transaction failed (full disk, I/O error, locked): nothing of it was written.

        Everything is tried again next round, except the segments of events
        that were on their way to disk only: those are lost (reported, so the
        recorder fails them) unless the file was only locked, for less than a
        minute. Events held in memory are still sent meanwhile. ``put()``
        callers waiting on this round get the error.
        """
        now = self._clock.time()
        if self._failing_since is None:
            self._failing_since = now
        busy = is_busy(exc) and now - self._failing_since < 60
        error = SpoolError(describe_sqlite_error(self.path, exc))
        if self._carry_rounds == 0:
            log.error("spool %s: %s; trying again each round", self.path, error)
        self._carry_rounds += 1
        result.error = result.sync_error = error
        carry: list[Operation] = []
        for op in ops:
            if isinstance(op, Sync):
                continue  # answered with the error now
            if isinstance(op, WriteSegment) and not op.seg.in_memory and not busy and not op.seg.lost:
                op.seg.lost = True
                result.lost.append(op)
                continue
            carry.append(op)
        if self._carry_rounds > _GIVE_UP_ROUNDS and not busy:
            # a file that has not worked for this long: keep what still matters (events), give up the rest
            given_up = [op for op in carry if isinstance(op, (DeleteSegment, KeepDead))]
            if given_up:
                log.error(
                    "spool %s: gave up %d deletion(s) and dead letter(s) after %d failed rounds",
                    self.path,
                    len(given_up),
                    _GIVE_UP_ROUNDS,
                )
                self._totals.deleted += sum(op.seg.count for op in given_up if isinstance(op, DeleteSegment))
            carry = [op for op in carry if isinstance(op, (WriteSegment, LoadRows))]
        self._resolved(result.lost)
        self._carry = carry

    def _fail_queue(self, error: SpoolError, *, everything: bool, memory_too: bool = False) -> None:
        """Nothing can be written: queued events on their way to disk only are lost (reported; with
        ``everything``, when the spool never opened, all it holds), every sync waiter fails."""
        result = Round(self._disk.events)
        result.error = result.sync_error = error
        result.clear_memory = everything
        result.lose_memory = everything or memory_too
        for op in self._carry + self._drain():
            if isinstance(op, WriteSegment):
                if not op.seg.lost:
                    op.seg.lost = True
                    result.lost.append(op)
            elif isinstance(op, Sync):
                result.syncs.append(op.done)
            elif isinstance(op, LoadRows):
                result.loaded = True
        self._resolved(result.lost)
        self._carry = []
        self._tell(result)

    def _shutdown_db(self) -> None:
        """Free the rows this process did not send, leave the owners table, close the file."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._bound_waits(conn)
        try:
            with transaction(conn, until=self._until):
                self.owner.leave(conn)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "spool %s: could not free this process's events at close (%s); they are taken over later",
                self.path,
                exc,
            )
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- interpreter exit -------------------------------------------------------------------

    def _register_exit_hook(self) -> None:
        """At interpreter exit (a loop that ended without close()), write what is queued and free our rows."""

        def at_exit() -> None:
            with contextlib.suppress(Exception):
                self._listener.before_exit()
            self.stop()
            # covers the round in flight (a lock waited out for up to the busy timeout) and the rounds after it,
            # which end by the deadline: the writer never dies mid-round with events it said it would keep
            self.join(self.remaining() + _file._BUSY_TIMEOUT)

        self._exit_hook = at_exit
        atexit.register(at_exit)

    def _unregister_exit_hook(self) -> None:
        hook, self._exit_hook = self._exit_hook, None
        if hook is not None:
            atexit.unregister(hook)
