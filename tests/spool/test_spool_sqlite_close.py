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
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from aiopersonalize_events import Event, PersonalizeEventsError, SpoolError, SqliteSpool

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


def _writer_waits_for_the_lock() -> bool:
    """True while the spool's writer thread is inside a transaction's start (waiting for the write lock)."""
    frames = sys._current_frames()
    for thread in _spool_threads():
        frame = frames.get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "transaction":
                return True
            frame = frame.f_back
    return False


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition (the bound only stops a test that would hang; it decides nothing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_round_already_waiting_for_the_lock_ends_by_the_close_deadline(tmp_path: Path) -> None:
    """Another program locks the file before the events come: the writer's round is already waiting for the
    lock when close(timeout=1) begins. That wait ends by the deadline, so before close() returns the spool has
    reported the 100 events it could not write (none left counted as kept), while the lock is still held."""
    db = tmp_path / "events.db"
    listener = Listener()
    spool = SqliteSpool(db)
    await spool.open(listener, tracking_id=TRACKER)
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(100):
            spool.append(_event(i), "s", None)
        synced = asyncio.ensure_future(spool.sync())  # a round starts at once, and waits for the lock
        await _until(_writer_waits_for_the_lock)
        await asyncio.wait_for(spool.close(timeout=1), 30)  # the bound only stops a close that would hang
        lost = sorted(str(e.event_id) for e in listener.lost)
        kept = len(spool)
        assert not _spool_threads()
        with pytest.raises(SpoolError):
            await synced
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert lost == sorted(f"e{i}" for i in range(100))
    assert kept == 0
    assert _held(db) == 0


RECORDER_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    sys.path.insert(0, {root!r})
    from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient, SqliteSpool

    async def main():
        client = PersonalizeEventsClient(  # nothing answers there: every call fails, and is tried again
            region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDLOCK", "s"),
            config=ClientConfig(max_attempts=1, retry_budget=1_000_000),
        )
        async with client:
            spool = SqliteSpool(sys.argv[1])
            recorder = client.event_recorder(tracking_id="tracker-close", spool=spool, flush_interval=0.02)
            async with recorder:
                for i in range(100):
                    await recorder.put(Event(event_type="c", sent_at=1, event_id=f"kept-{{i}}"), session_id="s")
                print("STORED", flush=True)
                sys.stdin.readline()  # the parent holds the file's write lock from now on
                for i in range(100):
                    recorder.record(Event(event_type="c", sent_at=1, event_id=f"late-{{i}}"), session_id="s")
                started = time.monotonic()
                await recorder.close(timeout=1)
            s = recorder.stats
            given = spool._writer._deadline - started
            print("STATS", s.recorded, s.sent, s.failed, s.dropped, s.pending, flush=True)
            print("WRITER", "deadline-within-close" if given <= 1.05 else f"deadline-after-{{given:.2f}}s", flush=True)

    asyncio.run(main())
    """
)


def _held_ids(db: Path) -> list[str]:
    from aiopersonalize_events.spool.sqlite._segments import segment_events

    conn = sqlite3.connect(db, timeout=30)
    try:
        bodies = conn.execute("SELECT body FROM segments").fetchall()
    finally:
        conn.close()
    return sorted(str(e.event_id) for (body,) in bodies for e, _, _ in segment_events(bytes(body)) if e is not None)


def test_a_recorder_closing_on_a_locked_file_keeps_only_what_it_says_and_is_gone_by_its_deadline(
    tmp_path: Path,
) -> None:
    """A recorder whose calls all fail has 100 events on disk; then another program locks the file and 100
    more are recorded. close(timeout=1) gives the spool's writer what is left of that deadline (no floor past
    it), and the process exits while the lock is still held. What the recorder counts pending (kept for the
    next start) is exactly what the file holds afterwards; the 100 it could not write are counted failed."""
    db = tmp_path / "events.db"
    child = subprocess.Popen(
        [sys.executable, "-c", RECORDER_CHILD.format(root=str(ROOT)), str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    holder: sqlite3.Connection | None = None
    try:
        assert child.stdout.readline().strip() == "STORED", child.stderr.read() if child.stderr else ""
        holder = sqlite3.connect(db, isolation_level=None, timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=120)  # the bound only stops a child that would hang on the lock
        assert child.returncode == 0, err[-3000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if holder is not None:  # released only once the child is gone
            holder.execute("ROLLBACK")
            holder.close()
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    recorded, sent, failed, dropped, pending = (int(n) for n in lines["STATS"].split())
    assert lines["WRITER"] == "deadline-within-close"
    assert (recorded, sent, dropped) == (200, 0, 0)
    assert (failed, pending) == (100, 100)
    assert _held_ids(db) == sorted(f"kept-{i}" for i in range(100))
