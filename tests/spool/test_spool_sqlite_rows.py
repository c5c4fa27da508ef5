"""Rows of an SQLite spool that were crafted or damaged, and rows written by the earlier release.

Each case puts rows straight into a real spool file (as another process, a
bad disk or an attacker with write access would leave them) beside good
ones, then opens a recorder on the file against the emulator: the good
events are sent, the bad row becomes a dead letter with its reason, the
counters add up, and the spool never stops. The earlier release wrote
segments as pickles of plain tuples (format 1); they are still read.
"""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from _recorder_support import (
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    emulator_client,
)

from aiopersonalize_events import EventRecorder, PersonalizeEventsClient, SqliteSpool
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-rows"

pytestmark = pytest.mark.usefixtures("collect_after")


client_fixture = emulator_client("AKIDROWS", "rows-secret")


def _members(event_id: str, sent_at: Any = 1_700_000_000.0, impression: Any = None) -> tuple[Any, ...]:
    return ("click", sent_at, event_id, None, "item-1", None, None, impression, None)


def _format_1(*members: tuple[Any, ...], session: str = "s") -> bytes:
    """A segment as the earlier release wrote it: ``(1, [((9 members), session_id, user_id), ...])`` pickled."""
    return pickle.dumps((1, [(m, session, None) for m in members]), protocol=5)


def _memo_graph() -> list[Any]:
    graph: list[Any] = ["x"]
    for _ in range(60):  # 2**60 paths through ~60 lists: a few hundred bytes pickled
        graph = [graph, graph]
    return graph


# 200,000 nested 1-tuples as sentAt, written opcode by opcode (pickle.dumps itself would recurse)
_DEEP = b"\x80\x05K\x01](\x8c\x05click\x94K\x01" + b"\x85" * 200_000 + b"\x8c\x04deepNNNNNNt\x8c\x01sN\x87a\x86."

CRAFTED: dict[str, tuple[bytes, str]] = {
    "a 5,000-digit integer": (_format_1(_members("big", sent_at=10**5000)), "sentAt"),
    "an exponential memo graph": (_format_1(_members("memo", impression=_memo_graph())), "impression"),
    "a 200,000-deep nesting": (_DEEP, "sentAt"),
    "JSON nested 200,000 deep": (b"J[2,[" + b"[" * 200_000 + b"]" * 200_000 + b"]]", "unreadable segment"),
    "JSON with a 5,000-digit number": (
        b'J[2,[[["click",' + b"9" * 5000 + b',"e",null,"i",null,null,null,null],"s",null]]]',
        "unreadable segment",
    ),
    "not a segment at all": (b"\x00garbage\xff" * 10, "unreadable segment"),
}


def _put_rows(db: Path, bodies: list[tuple[bytes, int]]) -> None:
    """Rows nobody owns (as a process leaves them at close), with the counters they would have."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for body, count in bodies:
            conn.execute(
                "INSERT INTO segments (tracking_id, count, body, nbytes, owner, created) VALUES (?, ?, ?, ?, NULL, 0)",
                (TRACKER, count, body, len(body) + 64),
            )
        total = sum(count for _, count in bodies)
        size = sum(len(body) + 64 for body, _ in bodies)
        conn.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            [(total, "written"), (total, "held_events"), (size, "held_bytes")],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _check(recorder: EventRecorder) -> None:
    s = recorder.stats
    assert s.recorded == s.sent + s.failed + s.dropped + s.pending, s


async def _make_spool_file(client: PersonalizeEventsClient, db: Path) -> None:
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
        pass


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    """Wait for a condition (the bound only stops a test that would hang; it decides nothing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("case", list(CRAFTED))
async def test_a_crafted_row_becomes_a_dead_letter_and_the_rest_is_sent(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path, case: str
) -> None:
    """One crafted row beside rows of the earlier release's format: the good events are sent, the crafted row
    is one dead letter whose reason names what is wrong, it is counted as failed (never as pending), and the
    spool goes on."""
    db = tmp_path / "events.db"
    await _make_spool_file(client, db)
    body, reason = CRAFTED[case]
    old = _format_1(_members("old-1"), _members("old-2"), _members("old-3"))
    _put_rows(db, [(old[:], 3), (body, 1), (_format_1(_members("old-4")), 1)])
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01)
    async with recorder:
        await _until(lambda: recorder.stats.sent == 4)
        recorder.record(_event_after(), session_id="s")
        await recorder.flush()
        _check(recorder)
    stats = recorder.stats
    assert (stats.recovered, stats.sent, stats.failed, stats.pending) == (4, 5, 1, 0)
    assert stats.recorded == 6  # the 4 recovered, the crafted one taken over with them, the one recorded here
    assert sorted(e["eventId"] for e in emulator.events(TRACKER) if e["eventId"].startswith("old")) == [
        "old-1",
        "old-2",
        "old-3",
        "old-4",
    ]
    ((line, why),) = _rows(db, "SELECT line, reason FROM dead")
    assert reason in why
    assert len(line) <= 2000
    assert _rows(db, "SELECT count(*) FROM segments") == [(0,)]
    counters = dict(_rows(db, "SELECT name, value FROM counters"))
    assert counters["held_events"] == 0
    assert counters["written"] == counters["deleted"] + counters["held_events"]
    assert counters["dead"] == 1


def _event_after(event_id: str = "after-1") -> Any:
    from aiopersonalize_events import Event

    return Event(event_type="click", sent_at=1_700_000_100, item_id="after", event_id=event_id)


async def test_rows_of_the_earlier_format_are_read_and_sent_in_order(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A file left by the earlier release (format-1 segments, with impressions, values, users): every event is
    sent as it was recorded, and nothing is kept as a dead letter."""
    db = tmp_path / "events.db"
    await _make_spool_file(client, db)
    rows = [
        (("view", 1_700_000_000.5, f"e{i}", 1.5, f"item-{i}", '{"a": 1}', "rec-1", ("i1", "i2"), None), "s", "u")
        for i in range(25)
    ]
    _put_rows(db, [(pickle.dumps((1, rows[:20]), protocol=5), 20), (pickle.dumps((1, rows[20:]), protocol=5), 5)])
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01)
    async with recorder:
        await _until(lambda: recorder.stats.sent == 25)
    sent = emulator.events(TRACKER)
    assert sorted(e["eventId"] for e in sent) == sorted(f"e{i}" for i in range(25))
    first = next(e for e in sent if e["eventId"] == "e0")
    assert (first["eventValue"], first["impression"], first["recommendationId"]) == (1.5, ["i1", "i2"], "rec-1")
    assert _rows(db, "SELECT count(*) FROM dead") == [(0,)]


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "stdlib json"])
def test_segments_round_trip_and_refuse_crafted_json_with_either_encoder(
    monkeypatch: pytest.MonkeyPatch, orjson: bool
) -> None:
    """With orjson (the fast extra) or without it, a segment reads back as written, and crafted JSON rows
    (deep nesting, long numbers, NaN) come back unreadable with a reason instead of raising."""
    from aiopersonalize_events import Event
    from aiopersonalize_events.spool.sqlite import _segments

    if not orjson:
        monkeypatch.setattr(_segments, "_orjson", None)
    events = [
        (Event(event_type="t", sent_at=1.5, event_id=f"e{i}", event_value=1e-05, impression=["aé✓"]), "s", "u")
        for i in range(3)
    ]
    back = _segments.segment_events(_segments.segment_body(events))
    assert [(e, s, u) for e, s, u in back] == events
    for crafted in (
        b"J[2,[" + b"[" * 200_000 + b"]" * 200_000 + b"]]",
        b'J[2,[[["t",' + b"9" * 5000 + b',"e",null,null,null,null,null,null],"s",null]]]',
        b'J[2,[[["t",NaN,"e",null,null,null,null,null,null],"s",null]]]',
    ):
        ((event, _text, reason),) = _segments.segment_events(crafted)
        assert event is None
        assert reason.startswith("unreadable")


async def test_counters_that_cannot_be_read_are_counted_again_and_nothing_stays_pending(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A file whose counters table is gone (dropped, damaged) with events waiting and dead letters kept: the
    recorder starts, sends every waiting event, counts the dead letters as what they are, not as pending,
    and the counters add up again afterwards."""
    db = tmp_path / "events.db"
    await _make_spool_file(client, db)
    _put_rows(db, [(_format_1(_members("c-1"), _members("c-2")), 2), (b"\x00broken", 1)])
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE counters")
    conn.close()
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01)
    async with recorder:
        await _until(lambda: recorder.stats.sent == 2)
    stats = recorder.stats
    assert (stats.recovered, stats.sent, stats.pending) == (2, 2, 0)
    assert (stats.recorded, stats.failed) == (3, 1)  # the broken row, taken over, is a dead letter: failed
    _check(recorder)
    counters = dict(_rows(db, "SELECT name, value FROM counters"))
    assert counters["held_events"] == 0
    assert counters["written"] == counters["deleted"] + counters["held_events"]
    assert counters["dead"] == len(_rows(db, "SELECT id FROM dead")) == 1


async def test_a_segment_whose_count_lies_is_counted_by_what_it_holds(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A row that says it holds 10 events but holds 3: 3 are recovered and sent, none stays pending for ever."""
    db = tmp_path / "events.db"
    await _make_spool_file(client, db)
    _put_rows(db, [(_format_1(_members("l-1"), _members("l-2"), _members("l-3")), 10)])
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01)
    async with recorder:
        await _until(lambda: recorder.stats.sent == 3)
    stats = recorder.stats
    assert (stats.recovered, stats.sent, stats.pending) == (3, 3, 0)
    counters = dict(_rows(db, "SELECT name, value FROM counters"))
    assert counters["held_events"] == 0
    assert counters["written"] == counters["deleted"] + counters["held_events"]


async def test_rows_of_its_own_damaged_on_disk_count_as_failed_not_pending(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path
) -> None:
    """A recorder's own events waiting on disk (beyond the memory window) whose row is damaged before it is read
    back: when it is, those 20 events are dead letters counted in stats.failed, and none stays pending after
    close (the invariant holds because they moved from pending to failed, not because nothing was counted)."""
    db = tmp_path / "events.db"
    emulator.faults = Faults(server_error=1.0)  # nothing is sent (nor read back) until the row is damaged
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db, window=10), flush_interval=0.01)
    async with recorder:
        for i in range(30):  # 10 in memory, 20 on disk only: two segments, of 10 and of 20
            recorder.record(_event_after(f"own-{i}"), session_id=f"s{i % 10}")
        await recorder.spool.sync()
        assert _rows(db, "SELECT count FROM segments ORDER BY id") == [(10,), (20,)]
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("UPDATE segments SET body = ? WHERE count = 20", (b"\x00damaged\xff",))
        conn.close()
        emulator.faults = Faults()
        # the 10 in memory are sent, room frees, the damaged row is read back and kept as a dead letter
        await _until(lambda: recorder.stats.sent == 10 and _rows(db, "SELECT count(*) FROM dead") == [(1,)])
        _check(recorder)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (30, 10, 20, 0, 0)
    assert len(recorder.spool) == 0
    ((reason,),) = _rows(db, "SELECT reason FROM dead")
    assert "unreadable segment" in reason
    assert _rows(db, "SELECT count(*) FROM segments") == [(0,)]
