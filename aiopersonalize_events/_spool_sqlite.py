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

Tables (schema version 1): ``schema_version``; ``segments`` (pending
events, many a row, with their tracking id, owner, count and size);
``dead`` (failed for good: one row per event, its ``put-events`` line and
the reason); ``owners``; ``counters`` (totals kept across restarts: events
``written`` in segments, ``deleted`` with their segment, ``held_events`` and
``held_bytes`` still there, with ``written == deleted + held_events`` at
every commit; ``dead`` letters ever kept; events ``recovered``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import io
import json
import logging
import operator
import os
import pickle
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
from ._shapes import Event, MetricAttribution
from ._spool import SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from ._validators import check_positive_int
from ._wire import to_wire
from .errors import ValidationError

__all__ = ["SCHEMA_VERSION", "SqliteSpool", "connect_spool", "describe_sqlite_error"]

log: Final = logging.getLogger("aiopersonalize_events.spool")

SCHEMA_VERSION: Final = 1
"""The schema this version writes and reads; a file with a higher version is refused."""

_ROW_OVERHEAD: Final = 64  # bytes counted per segment beyond its body (row header, ids)
_MAX_ROUND: Final = 50_000  # operations taken in one round at most
_CLAIM_CHUNK: Final = 10_000  # rows taken over from dead owners in one round at most
_BUSY_TIMEOUT: Final = 5.0
_GIVE_UP_ROUNDS: Final = 20  # failed rounds after which deletions and dead letters are given up
_STOP_ATTEMPTS: Final = 3  # failed rounds at close before what could not be written is given up

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tracking_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    body BLOB NOT NULL,
    nbytes INTEGER NOT NULL,
    owner TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tracking_id TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    event_id TEXT,
    line TEXT NOT NULL,
    reason TEXT NOT NULL,
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

COUNTERS: Final = ("written", "deleted", "held_events", "held_bytes", "dead", "recovered")
"""Totals kept in the file: events ``written`` in segments, ``deleted`` with their segment (every event in it
settled), ``held_events``/``held_bytes`` still on disk (``written == deleted + held_events`` at every commit),
``dead`` letters ever kept, events ``recovered`` (taken over from a process that was gone)."""

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


def connect_spool(
    path: str,
    *,
    synchronous: Synchronous = "normal",
    create: bool = True,
    _attempt: int = 0,
    _deadline: float | None = None,
) -> sqlite3.Connection:
    """Open the spool file (WAL mode, autocommit: transactions are explicit) and check its schema.

    Raises ``SpoolError`` with a clear message: a directory that does not
    exist or cannot be written, a read-only file, a file locked for longer
    than the busy timeout, a newer schema. A file that is not a database (or
    is malformed) raises ``sqlite3.DatabaseError`` for the caller to move
    aside. With ``create=False`` a missing file is an error (the command line
    inspects, never creates). A lock met while opening is waited out for
    up to three busy timeouts in all.
    """
    attempt = _attempt
    deadline = _deadline if _deadline is not None else time.monotonic() + 3 * _BUSY_TIMEOUT
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
            if version is None and not create:
                raise SpoolError(f"{path} is not a spool (no schema version)")
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
        if _is_busy(exc) and time.monotonic() < deadline:
            # switching a new file to WAL does not always wait for the busy timeout (two processes creating
            # the same spool at once): try again, briefly, until the deadline
            time.sleep(min(0.5, 0.02 * 2**attempt))
            return connect_spool(path, synchronous=synchronous, create=create, _attempt=attempt + 1, _deadline=deadline)
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


def event_line(event: Event, session_id: str, user_id: str | None) -> bytes:
    """One event as the spool keeps it: a ``put-events`` input line (wire form plus ``sessionId``, ``userId``)."""
    wire = to_wire(event)
    wire["sessionId"] = session_id
    if user_id is not None:
        wire["userId"] = user_id
    return dumps_wire(wire, float_agrees(event.sent_at) and float_agrees(event.event_value))


def line_event(line: str | bytes) -> tuple[Event, str, str | None]:
    """An event, its session and user from a stored line (checked again: the file is outside our process)."""
    from .serde import from_wire

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


class _Segment:
    """Events written (or to be written) as one row. ``left`` counts those not yet settled (loop side);
    when it reaches 0 the loop asks the writer to delete the row. ``rowid`` is set by the writer once
    the row is committed; ``lost`` when writing it failed for good."""

    __slots__ = ("count", "in_memory", "left", "lost", "nbytes", "rowid")

    def __init__(self, count: int, in_memory: bool, rowid: int | None = None, nbytes: int = 0) -> None:
        self.count = count
        self.left = count
        self.in_memory = in_memory
        self.rowid = rowid
        self.nbytes = nbytes
        self.lost = False


class _Entry:
    """One event the spool holds: in memory (grouped, to be sent) and, once due or needed, on disk.

    ``seg`` is the segment its line went into (None while not yet due);
    ``done`` marks one settled (sent, failed, dropped) before that, so it is
    never written. ``in_memory`` is False for an event that found the window
    full: it waits on disk only and is read back later. Loop side only.
    """

    __slots__ = ("born", "done", "event", "in_memory", "seg", "session_id", "user_id")

    def __init__(
        self,
        event: Event,
        session_id: str,
        user_id: str | None,
        born: float,
        in_memory: bool,
        seg: _Segment | None = None,
    ) -> None:
        self.event = event
        self.session_id = session_id
        self.user_id = user_id
        self.born = born
        self.in_memory = in_memory
        self.seg = seg
        self.done = False


class _Round:
    """What one writer round did, handed to the loop thread."""

    __slots__ = (
        "clear_memory",
        "deletes",
        "error",
        "held_bytes",
        "held_events",
        "lost",
        "recovered",
        "resolved",
        "rows",
        "sync_error",
        "syncs",
    )

    def __init__(self) -> None:
        self.resolved = 0  # queued events that were written, or lost
        self.deletes = 0  # settled events (queued ones) the writer has taken off the queue
        self.rows: list[_Entry] = []  # entries read back from disk, for the loop to send
        self.recovered = 0
        self.lost: list[_Entry] = []
        self.error: SpoolError | None = None
        self.syncs: list[asyncio.Future[None]] = []
        self.sync_error: SpoolError | None = None
        self.held_events: int | None = None
        self.held_bytes: int | None = None
        self.clear_memory = False  # the spool never opened: what memory holds is among ``lost``


# queue operations for the writer (first item is the kind)
_SEGMENT: Final = 0  # (kind, segment, body, entries): write these events as one row
_DELETE: Final = 1  # (kind, segment): every event in it is settled
_DEAD: Final = 2  # (kind, rows): dead letters
_SYNC: Final = 3  # (kind, future): resolve once everything before it is committed
_ACK: Final = 4  # kinds of settlement (loop side)
_FAIL: Final = 5
_DROP: Final = 6

_Key = tuple[str, "str | None"]


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
    the events held in memory (the rest wait on disk only). ``clock`` gives
    wall-clock seconds (leases, timestamps).

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
        self._hold = self._commit_interval / 2  # an event unsent this long is written
        self._pace = self._commit_interval / 4  # at most one transaction this often
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
        self._due: deque[_Entry] = deque()  # appended, not yet queued for the writer
        self._force = 0  # the first ``_force`` of ``_due`` go to the writer at the next tick (disk-only)
        self._tick: asyncio.TimerHandle | None = None
        self._last_tick = 0.0
        self._grouper: Grouper[_Key, _Entry] = Grouper(L.RECORDS_PER_CALL)
        self._ready: deque[tuple[_Key, list[_Entry]]] = deque()
        self._held = 0  # len(): held for this recorder
        self._in_memory = 0  # entries in the grouper or out in batches (read by the writer for its room)
        self._unwritten = 0  # appended, neither written nor settled yet
        self._deletes_queued = 0  # settled events the writer has yet to take off disk
        self._disk_events = 0  # pending rows in the file (all owners) at the last commit
        self._disk_bytes = 0
        self._avg_bytes = 300
        self._listener: SpoolListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracking_id: str | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._recovered_total = 0
        self._in_transit = False  # rows read back from disk on their way to the loop
        self._now = time.monotonic

        # writer side
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._owner = f"{_HOST}/{os.getpid()}/{secrets.token_hex(4)}"
        self._carry: list[tuple[Any, ...]] = []  # operations of a failed round, to try again
        self._carry_rounds = 0
        self._backlog = 0  # events of ours on disk not in memory
        self._cursor = 0  # segments of ours with an id up to this were read back, or are in memory
        self._memory_segments: set[int] = set()  # segments whose events are in memory
        self._unreadable_segments: list[int] = []  # read back with nothing readable: deleted next round
        self._next_lease = 0.0
        self._next_claim = 0.0
        self._failing_since: float | None = None
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
        """Open the file in the writer thread, take over what earlier processes left; see ``Spool.open``."""
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
        if self._due and self._tick is None:
            self._schedule(0.0)

    def full(self) -> bool:
        """True when one more event would exceed ``max_events`` or ``max_bytes``."""
        events = self._disk_events + self._unwritten - self._deletes_queued
        return events >= self._limit_events or (
            self._disk_bytes + (self._unwritten - self._deletes_queued) * self._avg_bytes >= self._limit_bytes
        )

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Keep one event: grouped in memory to be sent, and due on disk unless sent first (no I/O here)."""
        self._held += 1
        self._unwritten += 1
        if self._in_memory < self._window:
            self._in_memory += 1
            entry = _Entry(event, session_id, user_id, self._now(), True)
            self._due.append(entry)
            ready = self._grouper.add((session_id, user_id), entry)
            if ready:
                self._ready.extend(ready)
                if self._listener is not None:
                    self._listener.spool_ready()
            if self._tick is None and self._state == "open":
                self._schedule(self._hold)
        else:  # the window is full: this one waits on disk only, written at the next tick
            self._due.append(_Entry(event, session_id, user_id, self._now(), False))
            self._force = len(self._due)
            if self._state == "open":
                self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        """The next tick in ``delay`` seconds (sooner replaces later); not sooner than the pace allows."""
        assert self._loop is not None
        at = max(self._now() + delay, self._last_tick + self._pace)
        tick = self._tick
        if tick is not None:
            if tick.when() <= at + 0.001:
                return
            tick.cancel()
        self._tick = self._loop.call_at(at - self._now() + self._loop.time(), self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._last_tick = self._now()
        self._queue_due(force=False)
        if self._due:
            self._schedule(max(0.0, self._due[0].born + self._hold - self._now()))

    def _queue_due(self, *, force: bool) -> None:
        """Serialise the events that are due (all with ``force``) into segments for the writer, and wake it."""
        due = self._due
        horizon = self._now() - self._hold
        memory: list[_Entry] = []
        disk: list[_Entry] = []
        while due:
            entry = due[0]
            if entry.done:
                due.popleft()
                continue
            if not (force or self._force > 0 or entry.born <= horizon):
                break
            due.popleft()
            if self._force > 0:
                self._force -= 1
            (memory if entry.in_memory else disk).append(entry)
        self._force = min(self._force, len(due))
        for entries, in_memory in ((memory, True), (disk, False)):
            if entries:  # events held in memory and events on disk only never share a segment
                seg = _Segment(len(entries), in_memory)
                for entry in entries:
                    entry.seg = seg
                body = segment_body([(e.event, e.session_id, e.user_id) for e in entries])
                self._ops.append((_SEGMENT, seg, body, entries))
        if memory or disk:
            self._wake.set()

    def pop_oldest(self) -> Event | None:
        """Remove and return the oldest event waiting in memory (not out in a batch), or None."""
        oldest = self._grouper.pop_oldest()
        if oldest is None:
            return None
        entry = oldest[1]
        self._held -= 1
        self._in_memory -= 1
        self._settle(_DROP, (entry,), None)
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
        self._settle(_ACK, batch.handles, None)

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """``batch`` failed for good: its events become dead letters, with ``reason``."""
        self._settled(batch)
        self._settle(_FAIL, batch.handles, reason)

    def release(self, batch: SpoolBatch) -> None:
        """The recorder stops with ``batch`` unsent: it stays in the file for the next start."""
        self._settled(batch)

    def _settled(self, batch: SpoolBatch) -> None:
        n = len(batch.events)
        self._held -= n
        self._in_memory -= n

    def _settle(self, kind: int, handles: Sequence[Hashable], reason: str | None) -> None:
        """Events leave: one never written is simply not written; a segment all settled is deleted."""
        dead: list[tuple[Any, ...]] = []
        for entry in handles:
            assert isinstance(entry, _Entry)
            if kind == _FAIL:
                dead.append(self._dead_row(entry, reason or ""))
            seg = entry.seg
            if seg is None:
                entry.done = True
                self._unwritten -= 1
                continue
            entry.seg = None
            self._deletes_queued += 1
            seg.left -= 1
            if seg.left <= 0:
                self._ops.append((_DELETE, seg))
        if dead:
            self._ops.append((_DEAD, dead))

    def _dead_row(self, entry: _Entry, reason: str) -> tuple[Any, ...]:
        line = event_line(entry.event, entry.session_id, entry.user_id).decode()
        return (self._tracking_id, entry.session_id, entry.user_id, entry.event.event_id, line, reason)

    async def sync(self) -> None:
        """Return once every event appended before this call is on disk; ``SpoolError`` if writing fails."""
        if self._state in ("new", "closed", "failed"):
            if self._unwritten:
                raise SpoolError(f"the spool {self._path} is {self._state}: events could not be written")
            return
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue_due(force=True)
        self._ops.append((_SYNC, done))
        self._wake.set()
        await done

    async def close(self) -> None:
        """Write what is unsent, free it for a later process, close the file; idempotent."""
        if self._state in ("new", "closed", "failed"):
            if self._state == "new":
                self._state = "closed"
            return
        if self._closed is None:
            assert self._loop is not None
            self._closed = self._loop.create_future()
            self._state = "closing"
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None
            self._queue_due(force=True)
            self._stop.set()
            self._wake.set()
        await asyncio.shield(self._closed)
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            # the writer said it is done as its last act; wait (off the loop) for it to end, so that
            # close() returns with no thread of this spool left
            await asyncio.to_thread(thread.join, 10)

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
        self._unwritten -= result.resolved
        self._deletes_queued -= result.deletes
        if result.held_events is not None and result.held_bytes is not None:
            self._disk_events = result.held_events
            self._disk_bytes = result.held_bytes
            if result.held_events:
                self._avg_bytes = max(1, result.held_bytes // result.held_events)
        listener = self._listener
        if result.recovered:
            self._held += result.recovered
            self._recovered_total += result.recovered
            if listener is not None:
                listener.spool_recovered(result.recovered)
        if result.clear_memory:
            self._grouper.cut()
            self._ready.clear()
            self._due.clear()
            self._in_memory = 0
        if result.lost:
            self._held -= len(result.lost)
            if listener is not None:
                error = result.error or SpoolError(f"the spool {self._path} could not keep these events")
                listener.spool_lost([e.event for e in result.lost], error)
        ready = False
        for entry in result.rows:
            self._in_memory += 1
            groups = self._grouper.add((entry.session_id, entry.user_id), entry)
            if groups:
                self._ready.extend(groups)
                ready = True
        self._in_transit = False
        if ready and listener is not None:
            listener.spool_ready()
        for done in result.syncs:
            if done.done():
                continue
            if result.sync_error is not None:
                done.set_exception(result.sync_error)
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
            self._fail_queue(error, everything=True)
            self._to_loop(self._opened_result, error)
            self._to_loop(self._closed_result)
            return
        self._register_exit_hook()
        if recovered:
            log.warning("spool %s: %d event(s) left by earlier processes will be sent", self._path, recovered)
        try:
            self._round(recovered)  # the first rows read back reach the loop before open() returns
            self._to_loop(self._opened_result, None)
            self._writer_loop()
        except BaseException:  # never die silently: fail what is queued, loudly
            log.exception("spool %s: the writer thread failed", self._path)
            self._fail_queue(SpoolError(f"the spool {self._path} writer failed; see the log"), everything=False)
            self._to_loop(self._opened_result, SpoolError(f"the spool {self._path} writer failed; see the log"))
        finally:
            self._shutdown_db()
            self._unregister_exit_hook()
            self._to_loop(self._closed_result)

    def _fail_queue(self, error: SpoolError, *, everything: bool, memory_too: bool = False) -> None:
        """Nothing can be written: queued events on their way to disk only are lost (reported; with
        ``everything``, when the spool never opened, all it holds), every sync waiter fails."""
        result = _Round()
        result.error = result.sync_error = error
        result.clear_memory = everything
        for op in self._carry + self._drain():
            kind = op[0]
            if kind == _SEGMENT:
                seg, entries = op[1], op[3]
                if seg.lost:
                    continue
                seg.lost = True
                unsettled = [e for e in entries if e.seg is seg]
                result.resolved += seg.count
                result.deletes += seg.count - len(unsettled)
                if everything or memory_too or not seg.in_memory:
                    result.lost.extend(unsettled)
            elif kind == _SYNC:
                result.syncs.append(op[1])
        self._carry = []
        self._to_loop(self._round_done_failed if everything else self._round_done, result)

    def _round_done_failed(self, result: _Round) -> None:
        """The spool never opened: everything appended is lost, queued or not (on the loop thread)."""
        for entry in self._due:
            if not entry.done:
                result.lost.append(entry)
                result.resolved += 1
        self._due.clear()
        self._round_done(result)

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
        """Take over the segments of owners that are gone (and those nobody owns), up to a chunk; return events."""
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
        found = conn.execute(
            f"SELECT id, count FROM segments WHERE {orphan} ORDER BY id LIMIT ?", (self._tracking_id, _CLAIM_CHUNK)
        ).fetchall()
        if not found:
            return 0
        chosen = json.dumps([r[0] for r in found])
        events = int(sum(r[1] for r in found))
        # moved to new ids, above every segment read back so far: they are read back in id order
        conn.execute(
            "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) "
            "SELECT tracking_id, count, body, nbytes, ?, created FROM segments "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (self._owner, chosen),
        )
        conn.execute("DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?))", (chosen,))
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'recovered'", (events,))
        self._backlog += events
        return events

    def _writer_loop(self) -> None:
        failed_at_stop = 0
        while True:
            if not self._ops and not self._stop.is_set() and not self._backlog_ready():
                self._wake.wait(timeout=self._wait_time())
            self._wake.clear()
            stopping = self._stop.is_set()
            self._round(0)
            if stopping and not self._ops and not self._carry:
                return
            if self._carry:  # a failed round: try again after a pause
                if stopping:
                    failed_at_stop += 1
                    if failed_at_stop >= _STOP_ATTEMPTS:  # closing and the file does not take them: they are lost
                        error = SpoolError(f"the spool {self._path} could not be written at close")
                        log.error("spool %s: writing still fails at close; the events not written are lost", self._path)
                        self._fail_queue(error, everything=False, memory_too=True)
                        return
                self._stop.wait(self._commit_interval)

    def _backlog_ready(self) -> bool:
        return self._backlog > 0 and not self._in_transit and self._in_memory < self._window

    def _wait_time(self) -> float:
        """How long the idle writer may sleep: until the next lease renewal or claim."""
        return max(0.01, min(self._next_lease, self._next_claim) - self._clock())

    def _round(self, recovered: int) -> None:
        """One transaction: write the queued segments, delete the settled ones, keep dead letters, renew, take over.

        Nothing changes in memory until the transaction committed: a round
        that fails leaves everything as it was, to be tried again.
        """
        conn = self._conn
        assert conn is not None
        result = _Round()
        result.recovered = recovered
        ops = self._carry + self._drain()
        self._carry = []
        stopping = self._stop.is_set()
        inserts: list[tuple[_Segment, bytes]] = []
        deleted: list[_Segment] = []  # settled segments: their row goes, or they are never written
        dead_rows: list[tuple[Any, ...]] = []
        for op in ops:
            kind = op[0]
            if kind == _SEGMENT:
                if not op[1].lost:
                    inserts.append((op[1], op[2]))
            elif kind == _DELETE:
                if not op[1].lost:
                    deleted.append(op[1])
            elif kind == _SYNC:
                result.syncs.append(op[1])
            else:
                dead_rows.extend(op[1])
        gone = {id(seg) for seg in deleted}
        writes = [(seg, body) for seg, body in inserts if id(seg) not in gone]  # all settled first: never written
        rows = [seg.rowid for seg in deleted if seg.rowid is not None]
        rows.extend(self._unreadable_segments)
        now = self._clock()
        housekeeping = now >= self._next_lease or now >= self._next_claim or stopping
        try:
            ids, claimed = self._write(conn, writes, rows, dead_rows, housekeeping, now)
        except (sqlite3.Error, OSError) as exc:
            self._round_failed(exc, ops, result)
            self._to_loop(self._round_done, result)
            return
        if self._failing_since is not None:
            log.warning("spool %s: writing works again", self._path)
            self._failing_since = None
        self._carry_rounds = 0
        self._unreadable_segments = []
        # committed: now memory follows
        for (seg, body), rowid in zip(writes, ids, strict=True):
            seg.rowid = rowid
            seg.nbytes = len(body) + _ROW_OVERHEAD
            if seg.in_memory:
                self._memory_segments.add(rowid)
            else:
                self._backlog += seg.count
        for seg in deleted:
            if seg.rowid is not None:
                self._memory_segments.discard(seg.rowid)
            result.deletes += seg.count
        result.resolved = sum(seg.count for seg, _ in inserts)
        result.recovered += claimed
        if self._backlog_ready():
            self._load_backlog(conn, result)
        if writes or rows or dead_rows or claimed or recovered or result.rows:
            self._read_totals(conn, result)
        self._to_loop(self._round_done, result)

    def _write(
        self,
        conn: sqlite3.Connection,
        writes: list[tuple[_Segment, bytes]],
        rows: list[int],
        dead_rows: list[tuple[Any, ...]],
        housekeeping: bool,
        now: float,
    ) -> tuple[list[int], int]:
        """The round's transaction; returns the row ids of the new segments and the events taken over."""
        if not (writes or rows or dead_rows or housekeeping):
            return [], 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int] = []
            events_in = bytes_in = 0
            for seg, body in writes:
                nbytes = len(body) + _ROW_OVERHEAD
                cursor = conn.execute(
                    "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (self._tracking_id, seg.count, body, nbytes, self._owner, now),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
                events_in += seg.count
                bytes_in += nbytes
            deleted_events = deleted_bytes = 0
            if rows:
                gone = conn.execute(
                    "DELETE FROM segments WHERE id IN (SELECT value FROM json_each(?)) AND owner = ? "
                    "RETURNING count, nbytes",
                    (json.dumps(rows), self._owner),
                ).fetchall()
                deleted_events = sum(g[0] for g in gone)
                deleted_bytes = sum(g[1] for g in gone)
            if dead_rows:
                conn.executemany(
                    "INSERT INTO dead (tracking_id, session_id, user_id, event_id, line, reason, failed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(*row, now) for row in dead_rows],
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
            claimed = 0
            if housekeeping:
                claimed = self._housekeeping(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return ids, claimed

    def _housekeeping(self, conn: sqlite3.Connection, now: float) -> int:
        claimed = 0
        if now >= self._next_lease or self._stop.is_set():
            renewed = conn.execute(
                "UPDATE owners SET expires = ? WHERE owner = ?", (now + self._lease, self._owner)
            ).rowcount
            if not renewed:  # another process thought us gone and took our segments; register again
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

    def _round_failed(self, exc: BaseException, ops: list[tuple[Any, ...]], result: _Round) -> None:
        """The round's transaction failed (full disk, I/O error, locked): nothing of it was written.

        Everything is tried again next round, except the segments of events
        that were on their way to disk only: those are lost (reported, so the
        recorder fails them) unless the file was only locked, for less than a
        minute. Events held in memory are still sent meanwhile. ``put()``
        callers waiting on this round get the error.
        """
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        busy = _is_busy(exc) and now - self._failing_since < 60
        error = SpoolError(describe_sqlite_error(self._path, exc))
        if self._carry_rounds == 0:
            log.error("spool %s: %s; trying again each round", self._path, error)
        self._carry_rounds += 1
        result.error = result.sync_error = error
        carry: list[tuple[Any, ...]] = []
        for op in ops:
            kind = op[0]
            if kind == _SYNC:
                continue  # answered with the error now
            if kind == _SEGMENT and not op[1].in_memory and not busy and not op[1].lost:
                seg, entries = op[1], op[3]
                seg.lost = True
                unsettled = [e for e in entries if e.seg is seg]
                result.lost.extend(unsettled)
                result.resolved += seg.count
                result.deletes += seg.count - len(unsettled)
                continue
            carry.append(op)
        if self._carry_rounds > _GIVE_UP_ROUNDS and not busy:
            # a file that has not worked for this long: keep what still matters (events), give up the rest
            given_up = [op for op in carry if op[0] != _SEGMENT]
            if given_up:
                log.error(
                    "spool %s: gave up %d deletion(s) and dead letter(s) after %d failed rounds",
                    self._path,
                    len(given_up),
                    _GIVE_UP_ROUNDS,
                )
                result.deletes += sum(op[1].count for op in given_up if op[0] == _DELETE)
            carry = [op for op in carry if op[0] == _SEGMENT]
        self._carry = carry

    def _load_backlog(self, conn: sqlite3.Connection, result: _Round) -> None:
        """Read segments of ours waiting on disk back into memory, in id order, as far as the window allows."""
        room = self._window - self._in_memory
        try:
            found = conn.execute(
                "SELECT id, body, nbytes FROM segments WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
                (self._owner, self._cursor, 1 + room // 2 + len(self._memory_segments)),
            ).fetchall()
        except sqlite3.Error as exc:
            log.error("spool %s: could not read waiting events: %s", self._path, exc)
            return
        unreadable: list[tuple[str, str]] = []
        for segment, body, nbytes in found:
            if len(result.rows) >= room:
                break
            self._cursor = segment
            if segment in self._memory_segments:
                continue
            events = segment_events(bytes(body))
            self._backlog -= len(events)
            entries: list[_Entry] = []
            for event, session_id, user_id in events:
                if event is None:
                    assert user_id is not None
                    unreadable.append((session_id, user_id))  # (the text, the reason)
                    continue
                entries.append(_Entry(event, session_id, user_id, 0.0, True))
            if not entries:
                self._unreadable_segments.append(segment)
                continue
            seg = _Segment(len(entries), True, segment, nbytes)
            for entry in entries:
                entry.seg = seg
            self._memory_segments.add(segment)
            result.rows.extend(entries)
        if not found:
            self._backlog = 0  # taken or cleared meanwhile
        if result.rows:
            self._in_transit = True
        if unreadable:
            with contextlib.suppress(sqlite3.Error):
                self._keep_unreadable(conn, unreadable)

    def _keep_unreadable(self, conn: sqlite3.Connection, lines: list[tuple[str, str]]) -> None:
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO dead (tracking_id, line, reason, failed_at) VALUES (?, ?, ?, ?)",
                [(self._tracking_id, line, reason, now) for line, reason in lines],
            )
            conn.execute("UPDATE counters SET value = value + ? WHERE name = 'dead'", (len(lines),))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        log.error("spool %s: %d stored event(s) could not be read; kept as dead letters", self._path, len(lines))

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
                conn.execute("UPDATE segments SET owner = NULL WHERE owner = ?", (self._owner,))
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
            if self._state in ("open", "closing"):  # the loop has ended: its events due on disk go now
                with contextlib.suppress(Exception):
                    self._queue_due(force=True)
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
