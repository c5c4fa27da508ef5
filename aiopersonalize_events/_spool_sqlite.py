"""SqliteSpool: the recorder's events in an SQLite file, so they outlive a crash, a kill and a restart.

Standard library ``sqlite3`` only, WAL mode. The event loop never touches the
database: ``append()`` puts the event on a queue (a ``deque``) and returns;
one writer thread per spool takes the queue in rounds (group commit: a round
at most every ``commit_interval / 2``, so what ``append()`` took is committed
within ``commit_interval``), writes the new rows, deletes the acknowledged
ones, moves failed ones to the dead letters, renews this process's lease,
takes over what dead processes left, and commits, all in one transaction.
Only committed rows are handed back to the loop (``call_soon_threadsafe``) to
be grouped and sent, so every event that reaches the service is on disk
first, with the ``eventId`` it is sent with.

Several processes may share one file. Each registers as an *owner* (host,
pid, process start time, lease expiry); its rows carry its owner id. An
owner renews its lease every few seconds; another process takes over (moves
to itself, in one transaction) the rows of an owner that is gone: the same
host and its pid no longer runs (or runs another program), or its lease has
expired. Rows are never taken from an owner that lives, so nothing is sent
twice by us while it lives. At ``close()`` an owner frees the rows it did
not send (owner NULL) for whoever opens the file next.

Tables (schema version 1): ``schema_version``, ``events`` (pending),
``dead`` (failed for good, with the reason), ``owners``, ``counters``
(lifetime totals: ``written == sent + failed + dropped + held``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import json
import logging
import os
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Final, Literal

from . import _limits as L
from ._batching import Grouper
from ._json import dumps_wire, float_agrees
from ._shapes import Event
from ._spool import SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from ._validators import check_positive_int
from ._wire import to_wire
from .errors import PersonalizeEventsError, ValidationError

__all__ = ["SCHEMA_VERSION", "SqliteSpool", "connect_spool", "describe_sqlite_error"]

log: Final = logging.getLogger("aiopersonalize_events.spool")

SCHEMA_VERSION: Final = 1
"""The schema this version writes and reads; a file with a higher version is refused."""

_ROW_OVERHEAD: Final = 64  # bytes counted per row beyond its JSON body and ids (row header, index entries)
_MAX_ROUND: Final = 50_000  # operations taken in one round at most
_CLAIM_CHUNK: Final = 10_000  # rows taken over from dead owners in one round at most
_BUSY_TIMEOUT: Final = 5.0
_GIVE_UP_ROUNDS: Final = 20  # failed rounds after which acknowledgements are given up (they are only deletions)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tracking_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_id TEXT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    nbytes INTEGER NOT NULL,
    owner TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_owner ON events (owner, id);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tracking_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_id TEXT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    nbytes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TEXT,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COUNTERS: Final = ("written", "sent", "failed", "dropped", "recovered", "held_events", "held_bytes")
"""Lifetime totals kept in the file: ``written == sent + failed + dropped + held_events`` at every commit."""

_HOST: Final = socket.gethostname()

Synchronous = Literal["normal", "full"]


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), to tell a reused pid from its first owner, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def _process_lives(pid: int, started: str | None) -> bool:
    """True when ``pid`` runs on this host and (when known) is the same process that registered."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    if started is not None:
        now = _proc_start(pid)
        if now is not None and now != started:
            return False
        with contextlib.suppress(OSError):  # a zombie (killed, not yet reaped) holds nothing
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            if data[data.rfind(b")") + 2 :].split()[:1] == [b"Z"]:
                return False
    return True


def describe_sqlite_error(path: str, exc: BaseException) -> str:
    """A sentence saying what is wrong with the spool file and what to do."""
    text = str(exc)
    low = text.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in low:
        return f"the disk holding the spool {path} is full ({text}); free space or set max_bytes"
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return f"the spool {path} cannot be written ({text}): the file or its directory is read-only"
    if "locked" in low or "busy" in low:
        return (
            f"the spool {path} is locked by another process ({text}) for more than {_BUSY_TIMEOUT:g}s; "
            "is a program holding a long transaction on it?"
        )
    if "unable to open" in low:
        return f"cannot open the spool {path} ({text}): does its directory exist, and may we write in it?"
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return f"the spool {path} is corrupted ({text})"
    return f"the spool {path} failed: {type(exc).__name__}: {text}"


def _is_busy(exc: BaseException) -> bool:
    low = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in low or "busy" in low)


def _is_corrupt(exc: BaseException) -> bool:
    low = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("not a database" in low or "malformed" in low)


def connect_spool(path: str, *, synchronous: Synchronous = "normal", create: bool = True) -> sqlite3.Connection:
    """Open the spool file (WAL mode, autocommit: transactions are explicit) and check its schema.

    Raises ``SpoolError`` with a clear message: a directory that does not
    exist or cannot be written, a read-only file, a file locked for longer
    than the busy timeout, a newer schema. A file that is not a database (or
    is malformed) raises ``sqlite3.DatabaseError`` for the caller to move
    aside. With ``create=False`` a missing file is an error (the command line
    inspects, never creates).
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SpoolError(f"cannot open the spool {path}: its directory {directory} does not exist")
    exists = os.path.exists(path)
    if not exists and not create:
        raise SpoolError(f"no spool at {path}")
    if create and ((exists and not os.access(path, os.W_OK)) or (not os.access(directory, os.W_OK | os.X_OK))):
        what = path if exists and not os.access(path, os.W_OK) else f"its directory {directory}"
        raise SpoolError(f"the spool {path} cannot be written: {what} is read-only (needs write access)")
    try:
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise SpoolError(describe_sqlite_error(path, exc)) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise SpoolError(f"the spool {path} cannot use WAL mode (journal_mode={mode}); is it on a network disk?")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
            if version is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                conn.executemany("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", [(n,) for n in COUNTERS])
            elif version > SCHEMA_VERSION:
                raise SpoolError(
                    f"the spool {path} was written by a newer aiopersonalize-events (schema version {version}; "
                    f"this version reads up to {SCHEMA_VERSION}): upgrade aiopersonalize-events, or use another path"
                )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except SpoolError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_corrupt(exc):
            raise
        raise SpoolError(describe_sqlite_error(path, exc)) from exc
    except OSError as exc:
        conn.close()
        raise SpoolError(describe_sqlite_error(path, exc)) from exc
    return conn


def move_aside(path: str) -> str:
    """Rename a corrupted spool (and its -wal and -shm files) to ``PATH.corrupt-TIMESTAMP``; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = f"{path}.corrupt-{stamp}-{os.getpid()}"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, target + suffix)
    return target


def event_to_row_body(event: Event) -> str:
    """The event's wire JSON (camelCase, as PutEvents sends it), as the spool keeps it."""
    agree = float_agrees(event.sent_at) and float_agrees(event.event_value)
    return dumps_wire(to_wire(event), agree).decode()


def row_event(body: str | bytes) -> Event:
    """An Event from a stored body (checked again: the file is outside our process)."""
    from .serde import from_wire

    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValidationError("event", "a stored event must be a JSON object")
    return from_wire(Event, data)


class _Row:
    """One committed event handed to the loop: the event, its row id, its size."""

    __slots__ = ("event", "nbytes", "rowid", "session_id", "user_id")

    def __init__(self, rowid: int, event: Event, session_id: str, user_id: str | None, nbytes: int) -> None:
        self.rowid = rowid
        self.event = event
        self.session_id = session_id
        self.user_id = user_id
        self.nbytes = nbytes


class _Round:
    """What one writer round did, handed to the loop thread."""

    __slots__ = (
        "appended",
        "deleted_bytes",
        "deleted_events",
        "error",
        "held_bytes",
        "held_events",
        "lost",
        "recovered",
        "rows",
        "syncs",
    )

    def __init__(self) -> None:
        self.appended = 0  # appends taken off the queue this round (committed or lost)
        self.deleted_events = 0  # deletions taken off the queue this round
        self.deleted_bytes = 0
        self.rows: list[_Row] = []  # committed rows handed over
        self.recovered = 0
        self.lost: list[Event] = []
        self.error: SpoolError | None = None
        self.syncs: list[asyncio.Future[None]] = []
        self.held_events: int | None = None
        self.held_bytes: int | None = None


# queue operations (first item is the kind)
_APPEND: Final = 0
_ACK: Final = 1
_FAIL: Final = 2
_DROP: Final = 3
_RELEASE: Final = 4
_SYNC: Final = 5

_Key = tuple[str, "str | None"]


class SqliteSpool:
    """Keeps the recorder's events in an SQLite file (WAL mode) until the service accepted them.

    ``SqliteSpool(path, *, commit_interval=0.05, max_events=None, max_bytes=None)``:
    what ``record()`` accepted is on disk within ``commit_interval`` seconds
    (one transaction per round: group commit); ``await recorder.put()``
    returns once its event is. ``max_events`` and ``max_bytes`` bound the
    pending events in the file (all processes together, checked against the
    last commit); beyond them the recorder's ``overflow`` policy applies.
    ``synchronous="full"`` makes every commit wait for the disk (fsync),
    which also survives a power loss; the default ``"normal"`` survives a
    crash or kill of the process, not of the machine. ``lease`` is how long
    (seconds) a process that stopped renewing keeps its rows when it cannot
    be seen dead (another host, a hung process). ``window`` bounds the
    events held in memory (the rest wait on disk). ``clock`` gives wall-clock
    seconds (leases, timestamps).

    Errors at open raise ``SpoolError`` (a directory that does not exist, a
    read-only file or directory, a file locked by another program, a schema
    newer than this version). A corrupted file is moved aside (renamed
    ``PATH.corrupt-...``, never deleted) and a fresh one is started, with an
    ERROR log line naming it. At run time, events that cannot be written
    (disk full, I/O error) fail for good: counted, logged and handed to
    ``on_failure``; writing goes on when it can.
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = os.fspath(path)
        if not isinstance(self._path, str) or not self._path or self._path == ":memory:":
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
        self._commit_interval = float(commit_interval)
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._limit_events = max_events if max_events is not None else sys.maxsize
        self._limit_bytes = max_bytes if max_bytes is not None else sys.maxsize
        self._synchronous: Synchronous = synchronous
        self._lease = float(lease)
        self._window = window
        self._clock = clock

        # loop side
        self._state = "new"  # new -> opening -> open -> closing -> closed (or failed)
        self._ops: deque[tuple[Any, ...]] = deque()
        self._grouper: Grouper[_Key, _Row] = Grouper(L.RECORDS_PER_CALL)
        self._ready: deque[tuple[_Key, list[_Row]]] = deque()
        self._held = 0
        self._unwritten = 0  # appends queued, not yet taken by the writer
        self._deletes_queued = 0  # deletions queued (ack, fail, drop), not yet taken by the writer
        self._deletes_queued_bytes = 0
        self._disk_events = 0  # pending rows in the file (all owners) at the last commit
        self._disk_bytes = 0
        self._avg_bytes = 256
        self._listener: SpoolListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracking_id: str | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._recovered_total = 0

        # writer side
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._owner = f"{_HOST}/{os.getpid()}/{secrets.token_hex(4)}"
        self._carry: list[tuple[Any, ...]] = []
        self._carry_rounds = 0
        self._backlog = 0  # rows of ours on disk not handed to the loop
        self._handed_upto = 0  # every row of ours with a lower or equal id was handed
        self._in_memory = 0  # rows handed and not yet settled (writer's count)
        self._next_lease = 0.0
        self._next_claim = 0.0
        self._busy_since: float | None = None
        self._failing = False
        self._exit_hook: Callable[[], None] | None = None

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

    # -- loop side ----------------------------------------------------------------

    async def open(self, listener: SpoolListener, *, tracking_id: str) -> None:
        """Get ready for the recorder of ``tracking_id``; see ``Spool.open``."""
        if self._state != "new":
            raise SpoolStateError(f"the spool {self._path} is already {self._state}; a spool serves one recorder")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._listener = listener
        self._tracking_id = tracking_id
        self._state = "opening"
        self._opened = loop.create_future()
        self._thread = threading.Thread(target=self._writer_main, name="aiopersonalize_events-spool", daemon=True)
        self._thread.start()
        await asyncio.shield(self._opened)

    def full(self) -> bool:
        """True when one more event would exceed the bounds."""
        return (
            self._disk_events + self._unwritten - self._deletes_queued >= self._limit_events
            or self._disk_bytes + self._unwritten * self._avg_bytes - self._deletes_queued_bytes >= self._limit_bytes
        )

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Keep one event (synchronous, no I/O)."""
        self._held += 1
        self._unwritten += 1
        self._ops.append((_APPEND, event, session_id, user_id))
        if self._idle:
            self._idle = False
            self._wake.set()

    def pop_oldest(self) -> Event | None:
        """Remove and return the oldest event waiting in memory (not out in a batch), or None."""
        oldest = self._grouper.pop_oldest()
        if oldest is None:
            return None
        row = oldest[1]
        self._held -= 1
        self._queue_delete(_DROP, (row.rowid,), row.nbytes)
        return row.event

    def take(self, *, flush: bool) -> list[SpoolBatch]:
        """The batches ready to send: full groups, and every group when ``flush``."""
        groups = list(self._ready)
        self._ready.clear()
        if flush:
            groups.extend(self._grouper.cut())
        return [
            SpoolBatch(
                key[0],
                key[1],
                [r.event for r in rows],
                tuple(r.rowid for r in rows),
                sum(r.nbytes for r in rows),
            )
            for key, rows in groups
        ]

    def ack(self, batch: SpoolBatch) -> None:
        """The service accepted ``batch``: its events leave the spool."""
        self._held -= len(batch.events)
        self._queue_delete(_ACK, batch.handles, batch.nbytes)

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """``batch`` failed for good (kept as dead letters by a durable spool)."""
        self._held -= len(batch.events)
        self._queue_delete(_FAIL, batch.handles, batch.nbytes, reason)

    def release(self, batch: SpoolBatch) -> None:
        """``batch`` was not settled and the recorder is stopping."""
        self._held -= len(batch.events)
        self._ops.append((_RELEASE, batch.handles))
        self._poke_writer()

    def _queue_delete(self, kind: int, handles: Sequence[Hashable], nbytes: int, reason: str | None = None) -> None:
        self._deletes_queued += len(handles)
        self._deletes_queued_bytes += nbytes
        self._ops.append((kind, handles, nbytes, reason))
        self._poke_writer()

    def _poke_writer(self) -> None:
        if self._idle:
            self._idle = False
            self._wake.set()

    async def sync(self) -> None:
        """Return once every event appended before this call is durable."""
        if self._state in ("new", "closed", "failed"):
            if self._unwritten:
                raise SpoolError(f"the spool {self._path} is {self._state}: events could not be written")
            return
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._ops.append((_SYNC, done))
        self._poke_writer()
        await done

    async def close(self) -> None:
        """Write what is queued, free what is unsent for a later process, release resources; idempotent."""
        if self._state in ("new", "closed", "failed"):
            self._state = "closed" if self._state != "failed" else self._state
            return
        if self._closed is None:
            assert self._loop is not None
            self._closed = self._loop.create_future()
            self._state = "closing"
            self._stop.set()
            self._wake.set()
        await asyncio.shield(self._closed)

    # called on the loop thread by the writer

    def _opened_result(self, error: BaseException | None) -> None:
        assert self._opened is not None
        if self._opened.done():
            return
        if error is None:
            if self._state == "opening":
                self._state = "open"
            self._opened.set_result(None)
        else:
            self._state = "failed"
            self._opened.set_exception(error)

    def _round_done(self, result: _Round) -> None:
        self._unwritten -= result.appended
        self._deletes_queued -= result.deleted_events
        self._deletes_queued_bytes -= result.deleted_bytes
        if result.held_events is not None:
            self._disk_events = result.held_events
        if result.held_bytes is not None:
            self._disk_bytes = result.held_bytes
            if result.held_events:
                self._avg_bytes = max(1, result.held_bytes // result.held_events)
        listener = self._listener
        if result.recovered:
            self._held += result.recovered
            self._recovered_total += result.recovered
            if listener is not None:
                listener.spool_recovered(result.recovered)
        if result.lost:
            self._held -= len(result.lost)
            if listener is not None:
                error = result.error or SpoolError(f"the spool {self._path} could not keep these events")
                listener.spool_lost(result.lost, error)
        ready = False
        for row in result.rows:
            groups = self._grouper.add((row.session_id, row.user_id), row)
            if groups:
                self._ready.extend(groups)
                ready = True
        if ready and listener is not None:
            listener.spool_ready()
        for done in result.syncs:
            if done.done():
                continue
            if result.error is not None and result.lost:
                done.set_exception(result.error)
            else:
                done.set_result(None)

    def _closed_result(self) -> None:
        self._state = "closed"
        self._listener = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> bool:
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            return False
        return True

    # -- writer thread ---------------------------------------------------------------------

    def _writer_main(self) -> None:
        try:
            recovered = self._open_db()
        except BaseException as exc:
            error = exc if isinstance(exc, SpoolError) else SpoolError(describe_sqlite_error(self._path, exc))
            self._to_loop(self._opened_result, error)
            self._fail_queue(error)
            return
        self._register_exit_hook()
        self._to_loop(self._opened_result, None)
        if recovered:
            log.warning("spool %s: %d event(s) left by earlier processes will be sent", self._path, recovered)
        try:
            self._writer_loop(recovered)
        except BaseException:  # never die silently: fail what is queued, loudly
            log.exception("spool %s: the writer thread failed", self._path)
            self._fail_queue(SpoolError(f"the spool {self._path} writer failed; see the log"))
        finally:
            self._shutdown_db()
            self._unregister_exit_hook()
            self._to_loop(self._closed_result)

    def _fail_queue(self, error: SpoolError) -> None:
        """Everything queued cannot be written: report the appends lost and fail the sync waiters."""
        result = _Round()
        ops = self._carry + self._drain()
        self._carry = []
        for op in ops:
            self._tally(op, result)
            if op[0] == _APPEND:
                result.lost.append(op[1])
        result.error = error
        if not self._to_loop(self._round_done, result):
            return
        self._to_loop(self._closed_result)

    def _drain(self) -> list[tuple[Any, ...]]:
        ops: list[tuple[Any, ...]] = []
        popleft = self._ops.popleft
        try:
            while len(ops) < _MAX_ROUND:
                ops.append(popleft())
        except IndexError:
            pass
        return ops

    def _open_db(self) -> int:
        try:
            conn = connect_spool(self._path, synchronous=self._synchronous)
        except sqlite3.DatabaseError as exc:  # not a database, or malformed: move it aside, start afresh
            target = move_aside(self._path)
            log.error(
                "spool %s is corrupted (%s); moved aside to %s (not deleted) and started a new one",
                self._path,
                exc,
                target,
            )
            conn = connect_spool(self._path, synchronous=self._synchronous)
        self._conn = conn
        now = self._clock()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO owners (owner, host, pid, started, expires) VALUES (?, ?, ?, ?, ?)",
                    (self._owner, _HOST, os.getpid(), _proc_start(os.getpid()), now + self._lease),
                )
                recovered = self._claim(conn, now)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise SpoolError(describe_sqlite_error(self._path, exc)) from exc
        self._next_lease = now + self._lease / 3
        self._next_claim = now + min(2.0, self._lease / 3)
        return recovered

    def _claim(self, conn: sqlite3.Connection, now: float) -> int:
        """Take over the rows of owners that are gone (and rows nobody owns), up to a chunk; return how many."""
        gone = []
        for owner, host, pid, started, expires in conn.execute("SELECT owner, host, pid, started, expires FROM owners"):
            if owner == self._owner:
                continue
            if expires < now or (host == _HOST and not _process_lives(pid, started)):
                gone.append(owner)
        if gone:
            conn.executemany("DELETE FROM owners WHERE owner = ?", [(o,) for o in gone])
            log.info("spool %s: %d process(es) gone; taking over their events", self._path, len(gone))
        orphan = "tracking_id = ? AND (owner IS NULL OR owner NOT IN (SELECT owner FROM owners))"
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM events WHERE {orphan} ORDER BY id LIMIT ?", (self._tracking_id, _CLAIM_CHUNK)
            )
        ]
        if not ids:
            return 0
        chosen = json.dumps(ids)
        # moved to new ids, above every row handed so far: they are read back in id order
        conn.execute(
            "INSERT INTO events (tracking_id, session_id, user_id, event_id, body, nbytes, owner, created) "
            "SELECT tracking_id, session_id, user_id, event_id, body, nbytes, ?, created FROM events "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (self._owner, chosen),
        )
        conn.execute("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (chosen,))
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'recovered'", (len(ids),))
        self._backlog += len(ids)
        return len(ids)

    def _writer_loop(self, recovered: int) -> None:
        pace = self._commit_interval / 2
        first = True
        while True:
            if (
                not first
                and not self._ops
                and not self._carry
                and not self._stop.is_set()
                and not self._backlog_ready()
            ):
                self._idle = True
                if not self._ops:
                    self._wake.wait(timeout=self._housekeeping_wait())
                self._wake.clear()
                self._idle = False
            stopping = self._stop.is_set()
            started = time.monotonic()
            self._round(recovered if first else 0)
            first = False
            if stopping and not self._ops and not self._carry:
                return
            rest = started + pace - time.monotonic()
            if rest > 0 and not stopping:
                self._stop.wait(rest)

    def _backlog_ready(self) -> bool:
        return self._backlog > 0 and self._in_memory < self._window

    def _housekeeping_wait(self) -> float:
        now = self._clock()
        return max(0.01, min(self._next_lease, self._next_claim) - now)

    @staticmethod
    def _tally(op: tuple[Any, ...], result: _Round) -> None:
        kind = op[0]
        if kind == _APPEND:
            result.appended += 1
        elif kind in (_ACK, _FAIL, _DROP):
            result.deleted_events += len(op[1])
            result.deleted_bytes += op[2]
        elif kind == _SYNC:
            result.syncs.append(op[1])

    def _round(self, recovered: int) -> None:
        """One transaction: write, delete, fail, renew, take over; then hand committed rows to the loop."""
        conn = self._conn
        assert conn is not None
        ops = self._carry + self._drain()
        self._carry = []
        result = _Round()
        result.recovered = recovered
        appends: list[tuple[Event, str, str | None]] = []
        acks: list[int] = []
        fails: list[tuple[Sequence[Hashable], str]] = []
        drops: list[int] = []
        for op in ops:
            kind = op[0]
            if kind == _APPEND:
                appends.append((op[1], op[2], op[3]))
            elif kind == _ACK:
                acks.extend(op[1])
            elif kind == _FAIL:
                fails.append((op[1], op[3]))
            elif kind == _DROP:
                drops.extend(op[1])
        rows: list[tuple[Any, ...]] = []
        kept: list[tuple[Event, str, str | None, int]] = []
        now = self._clock()
        for event, session_id, user_id in appends:
            try:
                if event.event_id is None:
                    raise ValidationError("event_id", "a durable spool needs every event to carry its event_id")
                body = event_to_row_body(event)
            except Exception as exc:  # cannot happen for a validated event; never lose one silently
                result.lost.append(event)
                result.error = SpoolError(f"an event could not be written to the spool: {exc}")
                continue
            nbytes = len(body) + len(session_id) + len(user_id or "") + len(event.event_id) + _ROW_OVERHEAD
            rows.append((self._tracking_id, session_id, user_id, event.event_id, body, nbytes, self._owner, now))
            kept.append((event, session_id, user_id, nbytes))
        housekeeping = now >= self._next_lease or now >= self._next_claim or self._stop.is_set()
        try:
            first_id, claimed = self._write(conn, rows, acks, fails, drops, housekeeping, now)
        except (sqlite3.Error, OSError) as exc:
            self._round_failed(exc, ops, kept, result)
            self._to_loop(self._round_done, result)
            return
        if self._busy_since is not None or self._failing:
            log.warning("spool %s: writing works again", self._path)
        self._busy_since = None
        self._failing = False
        self._carry_rounds = 0
        for op in ops:  # all done: the loop may count them
            self._tally(op, result)
            if op[0] != _APPEND and op[0] != _SYNC:
                self._in_memory -= len(op[1])
        result.recovered += claimed
        # hand over: the new rows directly while nothing of ours waits on disk, else through the backlog
        if kept:
            room = self._window - self._in_memory
            if self._backlog == 0 and room > 0:
                handed = kept[:room]
                for offset, (event, session_id, user_id, nbytes) in enumerate(handed):
                    result.rows.append(_Row(first_id + offset, event, session_id, user_id, nbytes))
                self._handed_upto = first_id + len(handed) - 1
                self._in_memory += len(handed)
                self._backlog += len(kept) - len(handed)
            else:
                self._backlog += len(kept)
        if self._backlog_ready():
            self._load_backlog(conn, result)
        if rows or acks or fails or drops or claimed or recovered:
            self._read_totals(conn, result)
        self._to_loop(self._round_done, result)

    def _write(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[Any, ...]],
        acks: list[int],
        fails: list[tuple[Sequence[Hashable], str]],
        drops: list[int],
        housekeeping: bool,
        now: float,
    ) -> tuple[int, int]:
        """The round's transaction; returns the first new row id and the rows taken over."""
        if not (rows or acks or fails or drops or housekeeping):
            return 0, 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            first_id = 0
            held_events = held_bytes = 0
            if rows:
                conn.executemany(
                    "INSERT INTO events (tracking_id, session_id, user_id, event_id, body, nbytes, owner, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                first_id = last - len(rows) + 1  # one statement under the write lock: consecutive ids
                held_events += len(rows)
                held_bytes += sum(r[5] for r in rows)
            sent = dropped = failed = 0
            for kind, ids in (("sent", acks), ("dropped", drops)):
                if ids:
                    gone = conn.execute(
                        "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?)) RETURNING nbytes",
                        (json.dumps(ids),),
                    ).fetchall()
                    held_events -= len(gone)
                    held_bytes -= sum(g[0] for g in gone)
                    if kind == "sent":
                        sent = len(gone)
                    else:
                        dropped = len(gone)
            for handles, reason in fails:
                chosen = json.dumps(list(handles))
                conn.execute(
                    "INSERT INTO dead (tracking_id, session_id, user_id, event_id, body, nbytes, reason, created, "
                    "failed_at) SELECT tracking_id, session_id, user_id, event_id, body, nbytes, ?, created, ? "
                    "FROM events WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                    (reason, now, chosen),
                )
                gone = conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?)) RETURNING nbytes", (chosen,)
                ).fetchall()
                failed += len(gone)
                held_events -= len(gone)
                held_bytes -= sum(g[0] for g in gone)
            conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                [
                    (len(rows), "written"),
                    (sent, "sent"),
                    (dropped, "dropped"),
                    (failed, "failed"),
                    (held_events, "held_events"),
                    (held_bytes, "held_bytes"),
                ],
            )
            claimed = 0
            if housekeeping:
                claimed = self._housekeeping(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return first_id, claimed

    def _housekeeping(self, conn: sqlite3.Connection, now: float) -> int:
        claimed = 0
        if now >= self._next_lease or self._stop.is_set():
            renewed = conn.execute(
                "UPDATE owners SET expires = ? WHERE owner = ?", (now + self._lease, self._owner)
            ).rowcount
            if not renewed:  # another process thought us gone and took our rows; register again
                log.error(
                    "spool %s: this process's lease had expired and its events were taken over by another; "
                    "some may be sent twice (the service de-duplicates them by eventId)",
                    self._path,
                )
                conn.execute(
                    "INSERT OR REPLACE INTO owners (owner, host, pid, started, expires) VALUES (?, ?, ?, ?, ?)",
                    (self._owner, _HOST, os.getpid(), _proc_start(os.getpid()), now + self._lease),
                )
            self._next_lease = now + self._lease / 3
        if now >= self._next_claim and not self._stop.is_set():
            claimed = self._claim(conn, now)
            self._next_claim = now + min(2.0, self._lease / 3)
        return claimed

    def _round_failed(
        self,
        exc: BaseException,
        ops: list[tuple[Any, ...]],
        kept: list[tuple[Event, str, str | None, int]],
        result: _Round,
    ) -> None:
        """A round's transaction failed: retry when the file is busy; otherwise the new events are lost."""
        now = time.monotonic()
        if _is_busy(exc) and (self._busy_since is None or now - self._busy_since < 60):
            if self._busy_since is None:
                self._busy_since = now
                log.warning("spool %s is locked by another process; will retry: %s", self._path, exc)
            self._carry = ops  # everything again next round; nothing is lost yet, nothing counted yet
            return
        error = SpoolError(describe_sqlite_error(self._path, exc))
        if not self._failing:
            log.error("spool %s: %s; new events fail until writing works again", self._path, error)
        self._failing = True
        result.error = error
        result.lost.extend(k[0] for k in kept)
        # acknowledgements, failures and drops are tried again next round, a bounded number of times
        self._carry_rounds += 1
        give_up = self._carry_rounds > _GIVE_UP_ROUNDS
        if give_up:
            log.error("spool %s: giving up acknowledgements after %d failed rounds", self._path, _GIVE_UP_ROUNDS)
            self._carry_rounds = 0
        for op in ops:
            if op[0] == _APPEND or op[0] == _SYNC or give_up:
                self._tally(op, result)
                if op[0] not in (_APPEND, _SYNC):
                    self._in_memory -= len(op[1])
            else:
                self._carry.append(op)

    def _load_backlog(self, conn: sqlite3.Connection, result: _Round) -> None:
        """Hand rows of ours waiting on disk to the loop, in id order, as far as the window allows."""
        room = self._window - self._in_memory
        try:
            found = conn.execute(
                "SELECT id, session_id, user_id, body, nbytes FROM events WHERE owner = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (self._owner, self._handed_upto, room),
            ).fetchall()
        except sqlite3.Error as exc:
            log.error("spool %s: could not read waiting events: %s", self._path, exc)
            return
        unreadable: list[tuple[int, str]] = []
        for rowid, session_id, user_id, body, nbytes in found:
            self._handed_upto = rowid
            self._backlog -= 1
            try:
                event = row_event(body)
                if event.event_id is None:
                    raise ValidationError("eventId", "a stored event must carry its eventId")
            except (ValueError, PersonalizeEventsError) as exc:
                unreadable.append((rowid, f"unreadable in the spool: {exc}"))
                continue
            result.rows.append(_Row(rowid, event, session_id, user_id, nbytes))
            self._in_memory += 1
        if not found:
            self._backlog = 0  # they were taken or cleared meanwhile
        if unreadable:
            with contextlib.suppress(sqlite3.Error):
                self._move_dead(conn, unreadable)

    def _move_dead(self, conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> None:
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rowid, reason in rows:
                conn.execute(
                    "INSERT INTO dead (tracking_id, session_id, user_id, event_id, body, nbytes, reason, created, "
                    "failed_at) SELECT tracking_id, session_id, user_id, event_id, body, nbytes, ?, created, ? "
                    "FROM events WHERE id = ?",
                    (reason, now, rowid),
                )
                gone = conn.execute("DELETE FROM events WHERE id = ? RETURNING nbytes", (rowid,)).fetchall()
                if gone:
                    conn.executemany(
                        "UPDATE counters SET value = value + ? WHERE name = ?",
                        [(1, "failed"), (-1, "held_events"), (-gone[0][0], "held_bytes")],
                    )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        log.error("spool %s: %d stored event(s) could not be read; kept as dead letters", self._path, len(rows))

    def _read_totals(self, conn: sqlite3.Connection, result: _Round) -> None:
        try:
            values = dict(
                conn.execute("SELECT name, value FROM counters WHERE name IN ('held_events', 'held_bytes')").fetchall()
            )
        except sqlite3.Error:
            return
        result.held_events = max(0, int(values.get("held_events", 0)))
        result.held_bytes = max(0, int(values.get("held_bytes", 0)))

    def _shutdown_db(self) -> None:
        """Free the rows this process did not send, leave the owners table, close the file."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE events SET owner = NULL WHERE owner = ?", (self._owner,))
                conn.execute("DELETE FROM owners WHERE owner = ?", (self._owner,))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, OSError) as exc:
            log.error(
                "spool %s: could not free this process's events at close (%s); they are taken over later",
                self._path,
                exc,
            )
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- interpreter exit -------------------------------------------------------------------

    def _register_exit_hook(self) -> None:
        """At interpreter exit (a loop that ended without close()), write what is queued and free our rows."""

        def at_exit() -> None:
            self._stop.set()
            self._wake.set()
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)

        self._exit_hook = at_exit
        atexit.register(at_exit)

    def _unregister_exit_hook(self) -> None:
        hook, self._exit_hook = self._exit_hook, None
        if hook is not None:
            atexit.unregister(hook)


def iter_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """Rows of a query, one at a time (the command line reads dead letters with it)."""
    yield from conn.execute(sql, params)
