"""Owners of one SQLite spool file: leases that wall-clock jumps do not bend, and processes made by fork().

Two spools on one real file, driven directly through the ``Spool`` protocol
(a listener records what each is told), each on a ``ManualClock`` the test
moves: whether the other owner is gone is decided by its heartbeat in the
file, measured on the watching spool's own clock, never by wall-clock times
written in the file. The fork tests run in a child interpreter (forking
pytest itself, with its threads, is not safe) and count rows in the file.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aiopersonalize_events import Event, ManualClock, PersonalizeEventsError, SqliteSpool

TRACKER = "tracker-owners"
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
LEASE = 30.0


class Listener:
    """What a spool tells its recorder, written down."""

    def __init__(self) -> None:
        self.recovered = 0
        self.lost: list[Event] = []

    def spool_ready(self) -> None:
        pass

    def spool_recovered(self, count: int) -> None:
        self.recovered += count

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        self.lost.extend(events)


def _event(i: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", event_id=f"e{i}")


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def _holder(db: Path, clock: ManualClock, n: int = 20) -> tuple[SqliteSpool, Listener]:
    """A spool holding ``n`` events on disk, none sent."""
    spool, listener = SqliteSpool(db, lease=LEASE, clock=clock), Listener()
    await spool.open(listener, tracking_id=TRACKER)
    for i in range(n):
        spool.append(_event(i), "s", None)
    await spool.sync()
    return spool, listener


def _owned(db: Path) -> dict[str | None, int]:
    return {owner: int(n) for owner, n in _rows(db, "SELECT owner, sum(count) FROM segments GROUP BY owner")}


async def test_a_live_owner_keeps_its_rows_when_its_lease_looks_expired_by_the_wall_clock(tmp_path: Path) -> None:
    """The wall clock jumps forward (or the owner's is far behind): its ``expires`` in the file lies in the past.
    It keeps renewing, so another spool watching for ten leases takes none of its rows."""
    db = tmp_path / "events.db"
    clock = ManualClock()
    holder, _ = await _holder(db, clock)
    _rows(db, "UPDATE owners SET expires = 0")  # as its clock, or ours, says: long expired
    watcher, seen = SqliteSpool(db, lease=LEASE, clock=clock), Listener()
    await watcher.open(seen, tracking_id=TRACKER)
    try:
        for _ in range(30):  # 300 s: ten leases
            clock.advance(LEASE / 3)
            await holder.sync()  # the holder's round: its renewal moves its heartbeat
            _rows(db, "UPDATE owners SET expires = 0")
            await watcher.sync()  # the watcher's round: it looks for owners that are gone
        assert seen.recovered == 0
        assert len(_owned(db)) == 1
        assert sum(_owned(db).values()) == 20
    finally:
        await watcher.close()
        await holder.close()
    assert _owned(db) == {None: 20}  # freed at close, for the next start


async def test_a_hung_owner_is_taken_over_after_its_lease_even_when_its_expiry_is_far_ahead(tmp_path: Path) -> None:
    """The wall clock jumps back (or the owner's is far ahead): its ``expires`` lies years away. It has stopped
    renewing (hung), so another spool takes its rows once its heartbeat has not moved for one lease, by the
    watcher's clock, and not before."""
    db = tmp_path / "events.db"
    holder, _ = await _holder(db, ManualClock())  # its clock never moves: it never renews
    _rows(db, "UPDATE owners SET expires = ?", (time.time() + 10 * 365 * 86400,))
    clock = ManualClock()
    watcher, seen = SqliteSpool(db, lease=LEASE, clock=clock), Listener()
    await watcher.open(seen, tracking_id=TRACKER)
    try:
        for _ in range(2):  # 20 s: within the lease
            clock.advance(LEASE / 3)
            await watcher.sync()
        assert seen.recovered == 0
        for _ in range(2):  # 40 s: past it
            clock.advance(LEASE / 3)
            await watcher.sync()
        assert seen.recovered == 20
        assert len(watcher) == 20
    finally:
        await watcher.close()
        await holder.close()
    assert _owned(db) == {None: 20}


FORKED = textwrap.dedent(
    """
    import asyncio, json, os, sqlite3, sys
    sys.path.insert(0, {root!r})
    from aiopersonalize_events import Event, SqliteSpool

    class Listener:
        def spool_ready(self): pass
        def spool_recovered(self, count): pass
        def spool_lost(self, events, error): raise SystemExit("lost")

    db, opened_before = sys.argv[1], sys.argv[2] == "opened"
    spool = SqliteSpool(db, window=8)  # made before the fork; a small window: most events wait on disk only

    async def use(tag, barrier_r, barrier_w):
        await spool.open(Listener(), tracking_id="t")
        for i in range(100):
            spool.append(Event(event_type="click", sent_at=1_700_000_000, item_id="i", event_id=f"{{tag}}-{{i}}"),
                         tag, None)
        await spool.sync()
        os.write(barrier_w, b"x")  # both processes hold their events now
        os.read(barrier_r, 1)
        owners = sqlite3.connect(db).execute("SELECT count(*) FROM owners").fetchone()[0]
        sent = []
        for _ in range(30):  # send what this process may send, as a recorder would
            for batch in spool.take(flush=True):
                sent.extend(e.event_id for e in batch.events)
                spool.ack(batch)
            await spool.sync()
            await asyncio.sleep(0.01)
        await spool.close()
        return {{"tag": tag, "sent": sent, "owners": owners}}

    async def refuse():
        await spool.open(Listener(), tracking_id="t")
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(spool.open(Listener(), tracking_id="t"))
            except Exception as exc:
                print("CHILD", json.dumps({{"refused": f"{{type(exc).__name__}}: {{exc}}"}}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        await spool.close()

    if opened_before:
        asyncio.run(refuse())
        sys.exit(0)
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        out = asyncio.run(use("child", to_child_r, to_parent_w))
        print("CHILD", json.dumps(out), flush=True)
        os._exit(0)
    out = asyncio.run(use("parent", to_parent_r, to_child_w))
    os.waitpid(pid, 0)
    print("PARENT", json.dumps(out), flush=True)
    """
)


def _forked(db: Path, mode: str) -> dict[str, dict[str, Any]]:
    script = FORKED.format(root=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, str(db), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
        for line in done.stdout.splitlines()
        if line.startswith(("CHILD ", "PARENT "))
    }


def test_a_spool_made_before_fork_gives_each_process_its_own_owner(tmp_path: Path) -> None:
    """One SqliteSpool made before fork() and opened in parent and child: two owners in the file, each process
    sends only the events it recorded, and every event is sent or still in the file (nothing lost)."""
    db = tmp_path / "events.db"
    result = _forked(db, "made")
    parent, child = result["PARENT"], result["CHILD"]
    assert parent["owners"] == 2
    assert child["owners"] == 2
    assert all(e.startswith("parent-") for e in parent["sent"])
    assert all(e.startswith("child-") for e in child["sent"])
    left = []
    conn = sqlite3.connect(db)
    try:
        from aiopersonalize_events.spool.sqlite._segments import segment_events

        for (body,) in conn.execute("SELECT body FROM segments"):
            left.extend(str(e.event_id) for e, _, _ in segment_events(bytes(body)) if e is not None)
    finally:
        conn.close()
    everything = parent["sent"] + child["sent"] + left
    assert sorted(everything) == sorted([f"parent-{i}" for i in range(100)] + [f"child-{i}" for i in range(100)])


def test_a_spool_opened_before_fork_is_refused_in_the_child(tmp_path: Path) -> None:
    """An SqliteSpool already open when the process forks cannot be used by the child: opening it there raises
    SpoolStateError saying it belongs to the parent process (the parent goes on as before)."""
    db = tmp_path / "events.db"
    result = _forked(db, "opened")
    refused = result["CHILD"]["refused"]
    assert refused.startswith("SpoolStateError")
    assert "fork" in refused


pytestmark = pytest.mark.usefixtures("collect_after")
