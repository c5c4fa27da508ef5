"""What an SQLite spool counts: ``len()`` and ``full()`` follow from what happened, through the memory window.

``len()`` is derived (the events in memory, plus ours waiting on disk as the
writer last said, plus those on their way there), so it agrees with the
events appended and settled at every step: while the window is full and
events wait on disk only, as they are read back, and when a row of ours is
found unreadable on the way back (it leaves ``len()`` by itself). Each step
waits on the spool's own ``sync()`` or on the file, never on time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiopersonalize_events import Event, PersonalizeEventsError, SqliteSpool

TRACKER = "tracker-counts"


class Listener:
    def __init__(self) -> None:
        self.lost: list[Event] = []
        self.ready = 0

    def spool_ready(self) -> None:
        self.ready += 1

    def spool_recovered(self, count: int) -> None:
        pass

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        self.lost.extend(events)


def _event(i: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", event_id=f"e{i}")


def _rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition (the bound only stops a test that would hang; it decides nothing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _ack_all(spool: SqliteSpool) -> int:
    acked = 0
    for batch in spool.take(flush=True):
        spool.ack(batch)
        acked += len(batch.events)
    return acked


async def test_len_follows_the_events_through_the_window_and_back_from_disk(tmp_path: Path) -> None:
    """Window of 10, 35 appended: 25 wait on disk only; len() is 35 throughout, falls by what is acknowledged
    as the rest is read back, and is 0 once every event was sent; the file is empty then."""
    db = tmp_path / "counts.db"
    listener = Listener()
    spool = SqliteSpool(db, window=10)
    await spool.open(listener, tracking_id=TRACKER)
    try:
        for i in range(35):
            spool.append(_event(i), "s", None)
            assert len(spool) == i + 1
        await spool.sync()
        assert len(spool) == 35
        assert _rows(db, "SELECT coalesce(sum(count), 0) FROM segments") == [(35,)]
        sent = 0
        for _ in range(20):  # a bound: each round acknowledges what memory holds, the rest is read back
            sent += _ack_all(spool)
            await spool.sync()  # answered by a round after the read-back: its count has reached the loop
            assert len(spool) == 35 - sent
            if sent == 35:
                break
        assert sent == 35
        assert not spool.full()
    finally:
        await spool.close()
    assert len(spool) == 0
    assert listener.lost == []
    assert _rows(db, "SELECT coalesce(sum(count), 0) FROM segments") == [(0,)]


async def test_a_row_of_ours_found_unreadable_on_the_way_back_leaves_len(tmp_path: Path) -> None:
    """20 events wait on disk only, then their row is damaged: once it is read back (a dead letter, deleted),
    len() no longer counts its events, and the 10 sent leave it at 0, as the file says."""
    db = tmp_path / "damaged.db"
    listener = Listener()
    spool = SqliteSpool(db, window=10)
    await spool.open(listener, tracking_id=TRACKER)
    try:
        for i in range(30):
            spool.append(_event(i), "s", None)
        await spool.sync()
        assert len(spool) == 30
        disk_only = _rows(db, "SELECT id FROM segments WHERE count = 20")
        assert len(disk_only) == 1  # the window was full: the 20 after it went to one row of their own
        _rows(db, "UPDATE segments SET body = ? WHERE id = ?", (b"\x00garbage\xff" * 10, disk_only[0][0]))
        assert _ack_all(spool) == 10  # room in memory: the damaged row is read back
        await _until(lambda: not _rows(db, "SELECT id FROM segments WHERE id = ?", (disk_only[0][0],)))
        await spool.sync()  # a round after the one that deleted it
        assert len(spool) == 0
        assert _rows(db, "SELECT count(*) FROM dead WHERE reason LIKE 'unreadable segment%'") == [(1,)]
    finally:
        await spool.close()


async def test_sync_while_the_spool_opens_waits_for_its_events_on_disk(tmp_path: Path) -> None:
    """An event appended while the file is still being opened, then sync() (what put() awaits): once sync()
    returns, the event is in the file, and len() counts it."""
    db = tmp_path / "opening.db"
    spool = SqliteSpool(db)
    opening = asyncio.ensure_future(spool.open(Listener(), tracking_id=TRACKER))
    await asyncio.sleep(0)  # open() has started: its writer thread is opening the file
    try:
        spool.append(_event(1), "s", None)
        await spool.sync()
        assert _rows(db, "SELECT coalesce(sum(count), 0) FROM segments") == [(1,)]
        assert len(spool) == 1
        await opening
    finally:
        await spool.close()
