"""close(timeout=) of an SQLite spool with the file locked by another program, and the interpreter's exit.

Another connection holds the file's write lock (``BEGIN EXCLUSIVE``) for
longer than the close deadline. ``close(timeout=1)`` must return while the
lock is still held (the test releases it only afterwards: a close that
waited for it would never return), report what it could not write through
``spool_lost``, and leave in the file exactly what it did not report. At
interpreter exit the same holds for a loop that ended without close().
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from pathlib import Path

from aiopersonalize_events import Event, PersonalizeEventsError, SqliteSpool

TRACKER = "tracker-close"
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


class Listener:
    def __init__(self) -> None:
        self.lost: list[Event] = []

    def spool_ready(self) -> None:
        pass

    def spool_recovered(self, count: int) -> None:
        pass

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        self.lost.extend(events)


def _event(i: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", event_id=f"e{i}")


def _held(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT coalesce(sum(count), 0) FROM segments").fetchone()[0])
    finally:
        conn.close()


def _spool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aiopersonalize_events-spool"]


async def test_close_returns_within_its_deadline_with_the_file_locked_and_keeps_what_it_reports(
    tmp_path: Path,
) -> None:
    """100 events on disk, 100 more not yet written, then another program locks the file: close(timeout=1)
    returns while the lock is held, the 100 it could not write are reported lost, and after the lock is gone
    the file holds the other 100: what the spool still counted, and nothing else."""
    db = tmp_path / "events.db"
    listener = Listener()
    spool = SqliteSpool(db)
    await spool.open(listener, tracking_id=TRACKER)
    for i in range(100):
        spool.append(_event(i), "s", None)
    await spool.sync()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(100, 200):
            spool.append(_event(i), "s", None)
        # returning at all proves the deadline (the lock is released only after); the bound, ten times the
        # deadline, only stops a close that would wait for the lock
        await asyncio.wait_for(spool.close(timeout=1), 10)
        assert not _spool_threads()
        kept = len(spool)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sorted(e.event_id for e in listener.lost) == sorted(f"e{i}" for i in range(100, 200))  # type: ignore[type-var]
    assert kept == 100
    assert _held(db) == kept


EXIT = textwrap.dedent(
    """
    import asyncio, sqlite3, sys, threading, time
    sys.path.insert(0, {root!r})
    from aiopersonalize_events import Event, SqliteSpool

    class Listener:
        def spool_ready(self): pass
        def spool_recovered(self, count): pass
        def spool_lost(self, events, error): pass

    db = sys.argv[1]
    spool = SqliteSpool(db, commit_interval=5)  # nothing is due before the loop ends

    def hold(locked):
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(12)  # held past the spool's close time and past any join: the process ends first
        conn.execute("ROLLBACK")

    async def main():
        await spool.open(Listener(), tracking_id="t")
        for i in range(100):
            spool.append(Event(event_type="c", sent_at=1_700_000_000, event_id=f"e{{i}}"), "s", None)
        await spool.sync()
        for i in range(100, 200):
            spool.append(Event(event_type="c", sent_at=1_700_000_000, event_id=f"e{{i}}"), "s", None)
        locked = threading.Event()
        threading.Thread(target=hold, args=(locked,), daemon=True).start()
        locked.wait()
        print("HELD", len(spool), flush=True)

    asyncio.run(main())  # the loop ends without close(): the exit hook writes, or says what it could not
    """
)


def test_at_interpreter_exit_the_writer_is_waited_for_and_says_what_it_could_not_keep(tmp_path: Path) -> None:
    """A loop that ends without close() while another connection locks the file past the close time: the
    interpreter waits for the writer, which ends by its deadline and logs the events it could not write as
    lost; the file then holds exactly the events written before, never a half-done round."""
    db = tmp_path / "events.db"
    done = subprocess.run(
        [sys.executable, "-c", EXIT.format(root=str(ROOT)), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "HELD 200" in done.stdout
    assert "the events not written are lost" in done.stderr
    assert _held(db) == 100
