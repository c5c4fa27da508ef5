"""The spool file: opening it (WAL mode, schema checked), the one transaction helper, moving a bad file aside.

Tables (schema version 1): ``schema_version``; ``segments`` (pending
events, many a row, with their tracking id, owner, count and size);
``dead`` (failed for good: one row per event, its ``put-events`` line and
the reason); ``owners`` (with ``beat``, a heartbeat counter each owner
raises as it renews, added to files of earlier releases when opened); ``counters`` (totals kept across restarts: events
``written`` in segments, ``deleted`` with their segment, ``held_events`` and
``held_bytes`` still there, with ``written == deleted + held_events`` at
every commit; ``dead`` letters ever kept; events ``recovered``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Literal

from .._protocol import SpoolError

__all__ = [
    "BUSY_SLICE",
    "COUNTERS",
    "SCHEMA_VERSION",
    "Synchronous",
    "connect_spool",
    "describe_sqlite_error",
    "is_busy",
    "is_corrupt",
    "iter_rows",
    "move_aside",
    "transaction",
]

SCHEMA_VERSION: Final = 1
"""The schema this version writes and reads; a file with a higher version is refused."""

_BUSY_TIMEOUT: Final = 5.0
BUSY_SLICE: Final = 0.1
"""Seconds one wait for another connection's write lock lasts on the writer's connection: between two,
``transaction(until=...)`` looks again at its deadline (``close()`` may have set one meanwhile)."""

log: Final = logging.getLogger("aiopersonalize_events.spool")

Synchronous = Literal["normal", "full"]

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
    expires REAL NOT NULL,
    beat INTEGER NOT NULL DEFAULT 0
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


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "busy": another connection holds the write lock."""
    low = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in low or "busy" in low)


def is_corrupt(exc: BaseException) -> bool:
    """True for a file that is not a database, or is malformed."""
    low = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("not a database" in low or "malformed" in low)


@contextlib.contextmanager
def transaction(
    conn: sqlite3.Connection, *, until: Callable[[], float | None] | None = None
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises (the one place they are spelled).

    Without ``until``, another connection's write lock is waited for once, for
    the connection's busy timeout. With it, the wait is made of the
    connection's busy timeouts (``BUSY_SLICE`` on the writer's), tried again
    up to ``_BUSY_TIMEOUT`` in all, or only until the ``time.monotonic()``
    that ``until()`` returns after each (None: no deadline): a close deadline
    set while a round waits ends that wait by the deadline.
    """
    _begin(conn, until)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _begin(conn: sqlite3.Connection, until: Callable[[], float | None] | None) -> None:
    if until is None:
        conn.execute("BEGIN IMMEDIATE")
        return
    give_up = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            deadline = until()
            if not is_busy(exc) or time.monotonic() >= (give_up if deadline is None else min(give_up, deadline)):
                raise


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
        if exists:
            _refuse_foreign(conn, path, create=create)  # before WAL: another program's file is left as it is
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise SpoolError(f"the spool {path} cannot use WAL mode (journal_mode={mode}); is it on a network disk?")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        with transaction(conn):
            _check_schema(conn, path, create=create)
    except SpoolError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_corrupt(exc):
            raise
        if is_busy(exc) and time.monotonic() < deadline:
            # switching a new file to WAL does not always wait for the busy timeout (two processes creating
            # the same spool at once): try again, briefly, until the deadline
            time.sleep(min(0.5, 0.02 * 2**attempt))
            return connect_spool(path, synchronous=synchronous, create=create, _attempt=attempt + 1, _deadline=deadline)
        raise SpoolError(describe_sqlite_error(path, exc)) from exc
    except OSError as exc:
        conn.close()
        raise SpoolError(describe_sqlite_error(path, exc)) from exc
    return conn


def _refuse_foreign(conn: sqlite3.Connection, path: str, *, create: bool) -> None:
    """Refuse a database that has tables but is not a spool (another program's), and changes nothing in it."""
    names = sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if "schema_version" in names:
        return
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise SpoolError(
            f"{path} is an SQLite database of another program (tables: {shown}), not a spool: refused, and left "
            "as it is; give the spool a path of its own"
        )
    if not create:
        raise SpoolError(f"{path} is not a spool (no schema version)")


def _mend_counters(conn: sqlite3.Connection, path: str) -> None:
    """Counters that cannot be read (their table or rows gone) are counted again from the rows they follow."""
    try:
        known = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    except sqlite3.OperationalError:
        known = {}
    if set(known) >= set(COUNTERS):
        return
    held, size = conn.execute("SELECT coalesce(sum(count), 0), coalesce(sum(nbytes), 0) FROM segments").fetchone()
    (dead,) = conn.execute("SELECT count(*) FROM dead").fetchone()
    deleted = int(known.get("deleted", 0))
    values = {
        "written": deleted + held,  # written == deleted + held_events, as at every commit
        "deleted": deleted,
        "held_events": held,
        "held_bytes": size,
        "dead": max(int(known.get("dead", 0)), dead),
        "recovered": int(known.get("recovered", 0)),
    }
    conn.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    conn.executemany("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", list(values.items()))
    log.error("spool %s: its counters could not be read; counted again from its rows", path)


def _check_schema(conn: sqlite3.Connection, path: str, *, create: bool) -> None:
    """Inside the opening transaction: create the tables in a new file, refuse a newer schema."""
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
    elif version <= SCHEMA_VERSION:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(owners)")}
        if columns and "beat" not in columns:
            # a file of an earlier release: add the heartbeat (an additive column, which that release ignores)
            conn.execute("ALTER TABLE owners ADD COLUMN beat INTEGER NOT NULL DEFAULT 0")
        if create and columns:
            _mend_counters(conn, path)
    if version is not None and version > SCHEMA_VERSION:
        raise SpoolError(
            f"the spool {path} was written by a newer aiopersonalize-events (schema version {version}; "
            f"this version reads up to {SCHEMA_VERSION}): upgrade aiopersonalize-events, or use another path"
        )


def move_aside(path: str) -> str:
    """Rename a corrupted spool (and its -wal and -shm files) to ``PATH.corrupt-TIMESTAMP``; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = f"{path}.corrupt-{stamp}-{os.getpid()}"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, target + suffix)
    return target


def iter_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
    """Rows of a query, one at a time (the command line reads dead letters with it)."""
    yield from conn.execute(sql, params)
