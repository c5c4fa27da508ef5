"""SqliteSpool: what the recorder accepted survives a restart, once; bounds, bad files, shared files, dead letters."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _recorder_support import (
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    emulator_client,
)
from _scripted_server import ScriptedServer

import aiopersonalize_events.spool.sqlite._file as spool_file
import aiopersonalize_events.spool.sqlite._segments as spool_segments
import aiopersonalize_events.spool.sqlite._writer as spool_writer
from aiopersonalize_events import (
    Credentials,
    Event,
    EventRecorder,
    MemorySpool,
    PersonalizeEventsClient,
    Spool,
    SpoolError,
    SqliteSpool,
    ValidationError,
)
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-spool"
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())

pytestmark = pytest.mark.usefixtures("collect_after")


client_fixture = emulator_client("AKIDSPOOL", "spool-secret")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def _event(i: int, **kw: Any) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", **kw)


def _check(recorder: EventRecorder) -> None:
    s = recorder.stats
    assert s.recorded == s.sent + s.failed + s.dropped + s.pending, s


def _rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _held_ids(path: Path) -> list[str]:
    ids: list[str] = []
    for (body,) in _rows(path, "SELECT body FROM segments ORDER BY id"):
        ids.extend(str(event.event_id) for event, _, _ in spool_segments.segment_events(bytes(body)) if event)
    return ids


def _counters(path: Path) -> dict[str, int]:
    return dict(_rows(path, "SELECT name, value FROM counters"))


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# -- the protocol and the basics -------------------------------------------------------------------


def test_both_spools_keep_the_protocol(db: Path) -> None:
    """MemorySpool and SqliteSpool are Spools (the runtime-checkable protocol)."""
    assert isinstance(MemorySpool(), Spool)
    assert isinstance(SqliteSpool(db), Spool)
    assert SqliteSpool(db).durable
    assert not MemorySpool().durable


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"commit_interval": 0}, "commit_interval"),
        ({"commit_interval": True}, "commit_interval"),
        ({"max_events": 0}, "max_events"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"synchronous": "off"}, "synchronous"),
        ({"lease": 0.5}, "lease"),
        ({"window": 0}, "window"),
    ],
)
def test_bad_options_are_refused_before_anything_opens(db: Path, kwargs: dict[str, Any], path: str) -> None:
    """Each option is checked when the spool is made, naming the option."""
    with pytest.raises(ValidationError) as info:
        SqliteSpool(db, **kwargs)
    assert info.value.path == path
    assert not db.exists()


async def test_every_event_is_sent_and_leaves_the_file(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path
) -> None:
    """Recorded events reach the service once each; afterwards the file holds nothing and its counters add up."""
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.05) as recorder:
        for i in range(500):
            recorder.record(_event(i), session_id=f"s{i % 7}", user_id=None if i % 2 else "u")
        await recorder.flush()
        _check(recorder)
    stats = recorder.stats
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (500, 500, 0, 0, 0)
    ids = Counter(e["eventId"] for e in emulator.events(TRACKER))
    assert len(ids) == 500
    assert set(ids.values()) == {1}
    assert emulator.duplicates == 0
    assert _held_ids(db) == []
    counters = _counters(db)
    assert counters["written"] == counters["deleted"] + counters["held_events"]
    assert counters["held_events"] == 0
    assert _rows(db, "SELECT count(*) FROM owners") == [(0,)]
    assert _rows(db, "PRAGMA journal_mode") == [("wal",)]


async def test_a_path_is_short_for_an_sqlite_spool(client: PersonalizeEventsClient, db: Path) -> None:
    """spool="path" makes an SqliteSpool on that path."""
    recorder = client.event_recorder(tracking_id=TRACKER, spool=str(db))
    assert isinstance(recorder.spool, SqliteSpool)
    async with recorder:
        recorder.record(_event(1), session_id="s")
    assert recorder.stats.sent == 1


class _HeldAnswers:
    """The emulator's latency as a wait the test ends: its answers go out only after ``release()``."""

    def __init__(self) -> None:
        self._released: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()  # made in the test's loop, at first use
        return self._released

    async def sleep(self, latency: float) -> None:
        await self._event().wait()

    def release(self) -> None:
        self._event().set()


_LATE_ID = _HeldAnswers()
_LATE_PUT = _HeldAnswers()


@pytest.mark.parametrize("personalize_emulator_options", [{"faults": Faults(latency=0.5), "sleep": _LATE_ID.sleep}])
async def test_the_event_id_is_given_at_record_and_kept_on_disk(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path, personalize_emulator_options: dict[str, Any]
) -> None:
    """With a durable spool an event gets its eventId at record(); the file and the service see that same id."""
    # answers come late (held until released, however slow the machine): the event is due on disk first
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01) as recorder:
        recorder.record(_event(1), session_id="s")
        await recorder.spool.sync()
        (on_disk,) = _held_ids(db)
        assert len(on_disk) == 32
        _LATE_ID.release()
    (sent,) = emulator.events(TRACKER)
    assert sent["eventId"] == on_disk


@pytest.mark.parametrize("personalize_emulator_options", [{"faults": Faults(latency=1.0), "sleep": _LATE_PUT.sleep}])
async def test_put_returns_once_the_event_is_on_disk(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path, personalize_emulator_options: dict[str, Any]
) -> None:
    """await put() returns only when its event is in the file (while the service has not answered yet)."""
    # the service's answer is held until released, however slow the machine
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01) as recorder:
        await recorder.put(_event(1, event_id="put-1"), session_id="s")
        assert _held_ids(db) == ["put-1"]
        assert recorder.stats.sent == 0
        _LATE_PUT.release()
    assert recorder.stats.sent == 1


async def test_events_acknowledged_quickly_are_never_written(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path
) -> None:
    """Write-behind: full groups the service accepts within commit_interval/4 cost no row in the file."""
    spool = SqliteSpool(db, commit_interval=2.0)
    async with client.event_recorder(tracking_id=TRACKER, spool=spool, flush_interval=60) as recorder:
        for i in range(100):
            recorder.record(_event(i), session_id="s")
        await _until(lambda: recorder.stats.sent == 100)
    assert _counters(db)["written"] == 0
    assert len(emulator.events(TRACKER)) == 100


# -- restarts ----------------------------------------------------------------------------------------


async def test_what_a_closed_recorder_could_not_send_is_sent_by_the_next_one(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path
) -> None:
    """Events unsent at close stay in the file; the next recorder on it recovers and sends them, once each."""
    emulator.faults = Faults(server_error=1.0)
    failures: list[Any] = []
    first = client.event_recorder(
        tracking_id=TRACKER,
        spool=SqliteSpool(db),
        flush_interval=0.01,
        close_timeout=0.2,
        on_failure=lambda events, error: failures.append(events),
    )
    async with first:
        for i in range(50):
            first.record(_event(i, event_id=f"e{i}"), session_id=f"s{i % 3}")
    assert failures == []
    assert first.stats.pending == 50
    assert first.stats.sent == 0
    _check(first)
    assert sorted(_held_ids(db)) == sorted(f"e{i}" for i in range(50))

    emulator.faults = Faults()
    second = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), flush_interval=0.01)
    async with second:
        await second.flush()
        assert second.stats.recovered == 50
        _check(second)
    stats = second.stats
    assert (stats.recorded, stats.recovered, stats.sent, stats.pending) == (50, 50, 50, 0)
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == sorted(f"e{i}" for i in range(50))
    assert _held_ids(db) == []
    assert _counters(db)["recovered"] == 50


async def test_a_spool_of_another_tracker_is_left_alone(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path
) -> None:
    """A recorder takes over only the events of its own tracking id."""
    emulator.faults = Faults(server_error=1.0)
    async with client.event_recorder(tracking_id="other", spool=SqliteSpool(db), close_timeout=0.05) as recorder:
        recorder.record(_event(1, event_id="theirs"), session_id="s")
    emulator.faults = Faults()
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)) as recorder:
        await recorder.flush()
    assert recorder.stats.recovered == 0
    assert _held_ids(db) == ["theirs"]


async def test_the_memory_window_bounds_what_is_held_in_memory(
    client: PersonalizeEventsClient, emulator: Emulator, db: Path
) -> None:
    """Beyond `window` events wait on disk only and are read back as room frees up; all arrive once."""
    async with client.event_recorder(
        tracking_id=TRACKER, spool=SqliteSpool(db, window=20), flush_interval=0.01
    ) as recorder:
        for i in range(300):
            recorder.record(_event(i, event_id=f"w{i}"), session_id=f"s{i % 4}")
        assert recorder.spool._in_memory <= 20  # type: ignore[attr-defined]
        await _until(lambda: recorder.stats.sent == 300)
        _check(recorder)
    ids = Counter(e["eventId"] for e in emulator.events(TRACKER))
    assert len(ids) == 300
    assert _held_ids(db) == []


# -- failures for good: dead letters -----------------------------------------------------------------


async def test_a_batch_refused_for_good_becomes_dead_letters_with_its_reason(server: ScriptedServer, db: Path) -> None:
    """A refusal of the records (InvalidInput) hands the events to on_failure and keeps them as dead letters."""
    server.error("InvalidInputException", 400, "bad events")
    failures: list[tuple[list[Event], Exception]] = []
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=server.url, credentials=Credentials("AKIDSPOOL", "s")
    ) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER,
            spool=SqliteSpool(db),
            on_failure=lambda events, error: failures.append((events, error)),
        )
        async with recorder:
            for i in range(3):
                recorder.record(_event(i, event_id=f"d{i}"), session_id="s", user_id="u")
    assert recorder.stats.failed == 3
    assert sum(len(events) for events, _ in failures) == 3
    dead = _rows(db, "SELECT tracking_id, session_id, user_id, event_id, line, reason FROM dead ORDER BY id")
    assert [row[3] for row in dead] == ["d0", "d1", "d2"]
    tracking, session, user, _, line, reason = dead[0]
    assert (tracking, session, user) == (TRACKER, "s", "u")
    assert reason.startswith("InvalidInputException")
    record = json.loads(line)
    assert (record["sessionId"], record["userId"], record["eventId"], record["itemId"]) == ("s", "u", "d0", "item-0")
    assert _counters(db)["dead"] == 3


# -- bounds and a full disk -------------------------------------------------------------------------


async def test_max_events_applies_the_overflow_policy(emulator: Emulator, client: Any, db: Path) -> None:
    """With the service down, max_events bounds the file; the rest is dropped, counted and reported."""
    emulator.faults = Faults(server_error=1.0)
    dropped: list[str] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=SqliteSpool(db, max_events=20),
        close_timeout=0.05,
        on_drop=lambda event, reason: dropped.append(reason),
    )
    async with recorder:
        results = [recorder.record(_event(i), session_id=f"s{i}") for i in range(30)]
        assert results == [True] * 20 + [False] * 10
        _check(recorder)
    assert recorder.stats.dropped == 10
    assert dropped == ["queue full"] * 10
    assert len(_held_ids(db)) == 20


async def test_a_tiny_max_bytes_drops_instead_of_filling_the_disk(emulator: Emulator, client: Any, db: Path) -> None:
    """max_bytes counts the file's pending bytes (estimated until written): beyond it, events are dropped."""
    emulator.faults = Faults(server_error=1.0)
    spool = SqliteSpool(db, max_bytes=2_000)
    recorder = client.event_recorder(tracking_id=TRACKER, spool=spool, close_timeout=0.05, flush_interval=0.01)
    async with recorder:
        for i in range(100):
            await recorder.put(_event(i), session_id="s") if i < 3 else recorder.record(_event(i), session_id="s")
        _check(recorder)
        assert recorder.stats.dropped > 50
    assert spool.nbytes <= 2_000 + 1_000  # one estimate's worth of slack at most
    assert recorder.stats.recorded == 100


async def test_an_injected_disk_error_fails_disk_only_events_and_put_says_so(
    emulator: Emulator, client: Any, db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An OSError while writing: put() raises SpoolError, events waiting on disk only fail (counted, on_failure),
    events held in memory are still sent; writing resumes when the disk works again."""
    emulator.faults = Faults(server_error=1.0)
    failures: list[Event] = []
    spool = SqliteSpool(db, window=5)
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=spool,
        flush_interval=0.01,
        close_timeout=5,
        on_failure=lambda events, error: failures.extend(events),
    )
    original = spool_writer.Writer._write
    broken = True

    def write(self: spool_writer.Writer, *args: Any) -> Any:
        if broken and (args[1] or args[2]):  # a round with events to write
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args)

    with caplog.at_level(logging.ERROR, logger="aiopersonalize_events.spool"):
        async with recorder:
            monkeypatch.setattr(spool_writer.Writer, "_write", write)
            for i in range(12):
                recorder.record(_event(i, event_id=f"f{i}"), session_id="s")
            with pytest.raises(SpoolError, match="full"):
                await recorder.spool.sync()
            await _until(lambda: recorder.stats.failed == 7)  # the 7 beyond the window could only go to disk
            assert sorted(e.event_id for e in failures) == sorted(f"f{i}" for i in range(5, 12))
            _check(recorder)
            broken = False
            emulator.faults = Faults()
            await recorder.put(_event(99, event_id="after"), session_id="s")
            await _until(lambda: recorder.stats.sent == 6)
            _check(recorder)
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == sorted([*(f"f{i}" for i in range(5)), "after"])


async def test_a_really_full_database_fails_cleanly(
    emulator: Emulator, client: Any, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own 'database or disk is full' (a page limit): put() raises a SpoolError saying the disk is full;
    at close, what could not be written is failed and counted, and the writer thread ends."""
    original = spool_file.connect_spool

    def small(path: str, **kwargs: Any) -> sqlite3.Connection:
        conn = original(path, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return conn

    monkeypatch.setattr(spool_writer, "connect_spool", small)
    emulator.faults = Faults(server_error=1.0)
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db), close_timeout=0.05)
    async with recorder:
        big = {"text": "x" * 900}

        async def fill() -> None:
            for i in range(200):
                await recorder.put(_event(i, properties=big), session_id=f"s{i}")

        with pytest.raises(SpoolError, match="full"):
            await fill()
        _check(recorder)
    # closing with the file still full: what could not be written is failed and counted, what was written
    # stays for the next start, and the writer thread ends
    _check(recorder)
    stats = recorder.stats
    assert stats.failed > 0
    assert stats.failed + stats.pending == stats.recorded
    assert len(_held_ids(db)) == stats.pending
    assert not recorder.spool._writer.is_alive()  # type: ignore[attr-defined]


# -- bad files at open ---------------------------------------------------------------------------------


async def test_a_directory_that_does_not_exist_is_a_clear_error_at_open(client: Any, tmp_path: Path) -> None:
    """Opening a spool in a missing directory raises SpoolError naming it; the recorder does not start."""
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(tmp_path / "nope" / "events.db"))
    with pytest.raises(SpoolError, match="does not exist"):
        async with recorder:
            pass
    assert recorder.closed


async def test_a_read_only_directory_is_a_clear_error_at_open(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory we may not write in is refused at open with a SpoolError that says read-only.

    Root writes through permissions, so as root (CI) ``os.access`` answers for the
    directory as it does for any other user: not writable.
    """
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, **kw: False if str(p) == str(directory) else real_access(p, mode, **kw)
        )
    try:
        with pytest.raises(SpoolError, match="read-only"):
            async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(directory / "events.db")):
                pass
    finally:
        directory.chmod(0o755)


async def test_a_read_only_file_is_a_clear_error_at_open(
    client: Any, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool file we may not write is refused at open (os.access says so, as for a non-root user)."""
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
        pass
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(db) else real_access(p, mode))
    with pytest.raises(SpoolError, match=r"read-only"):
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
            pass


async def test_an_unwritable_place_is_a_clear_error_at_open(client: Any) -> None:
    """A path where no file can be made (sysfs) gives a SpoolError at open, not a crash later."""
    with pytest.raises(SpoolError, match=r"/sys/events\.db"):
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool("/sys/events.db")):
            pass


async def test_a_newer_schema_is_refused_with_a_clear_message(client: Any, db: Path) -> None:
    """A file written by a newer version (schema version 2) is refused, and left as it is."""
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
        pass
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version (version) VALUES (2)")
    conn.commit()
    conn.close()
    with pytest.raises(SpoolError, match=r"newer aiopersonalize-events \(schema version 2"):
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
            pass
    assert _rows(db, "SELECT max(version) FROM schema_version") == [(2,)]


async def test_a_corrupted_file_is_moved_aside_not_deleted(
    client: Any, emulator: Emulator, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not a database is renamed PATH.corrupt-..., logged, and a fresh spool works."""
    garbage = b"this is not an sqlite database, " * 100
    await asyncio.to_thread(db.write_bytes, garbage)
    with caplog.at_level(logging.ERROR, logger="aiopersonalize_events.spool"):
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)) as recorder:
            recorder.record(_event(1), session_id="s")
    assert recorder.stats.sent == 1
    (aside,) = [p for p in db.parent.iterdir() if p.name.startswith("events.db.corrupt-")]
    assert aside.read_bytes() == garbage
    assert any(str(aside) in r.getMessage() for r in caplog.records)


async def test_a_file_locked_by_another_program_is_a_clear_error_at_open(
    client: Any, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file held in an exclusive transaction longer than the busy timeout: SpoolError saying it is locked."""
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
        pass
    monkeypatch.setattr(spool_file, "_BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SpoolError, match="locked"):
            async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)):
                pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_failed_open_on_first_record_drops_later_events_loudly(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Started by record() (no async with), a spool that cannot open fails what it held and the rest is dropped."""
    failures: list[Event] = []
    recorder = client.event_recorder(
        tracking_id=TRACKER,
        spool=SqliteSpool(tmp_path / "nope" / "events.db"),
        on_failure=lambda events, error: failures.extend(events),
    )
    with caplog.at_level(logging.ERROR, logger="aiopersonalize_events.recorder"):
        assert recorder.record(_event(1), session_id="s") is True
        await _until(lambda: recorder.closed)
        assert recorder.record(_event(2), session_id="s") is False
    await recorder.close()
    stats = recorder.stats
    assert (stats.recorded, stats.failed, stats.dropped, stats.pending) == (2, 1, 1, 0)
    assert any("does not exist" in r.getMessage() for r in caplog.records)


# -- several processes on one file ---------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient, SqliteSpool

    url, path, prefix, count, hold = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "hold"

    async def main():
        config = ClientConfig(max_attempts=1, retry_budget=1_000_000, backoff_max=0.2)
        async with PersonalizeEventsClient(
            region="us-east-1", endpoint_url=url, credentials=Credentials("AKIDCHILD", "s"), config=config
        ) as client:
            recorder = client.event_recorder(tracking_id="tracker-spool", spool=SqliteSpool(path), flush_interval=0.02)
            async with recorder:
                for i in range(count):
                    await recorder.put(Event(event_type="v", sent_at=1, event_id=f"{prefix}-{i}"), session_id=prefix)
                print("STORED", flush=True)
                if hold:
                    await asyncio.sleep(3600)
                await recorder.flush()
            s = recorder.stats
            print("STATS", s.recorded, s.sent, s.recovered, s.pending, flush=True)

    asyncio.run(main())
    """
)


def _child(url: str, path: Path, prefix: str, count: int, hold: bool) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-c", _CHILD, url, str(path), prefix, str(count), "hold" if hold else "go"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


async def _read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    assert line, proc.stderr.read() if proc.stderr else ""
    return line.strip()


async def test_processes_sharing_a_file_send_each_event_once_and_take_over_from_a_killed_one(
    emulator: Emulator, db: Path
) -> None:
    """Two live processes on one file: each sends only its own (no duplicates). One is killed with SIGKILL
    holding unsent events: the other takes them over and every event is stored once.

    The one killed talks to a closed port, so none of its events can reach the emulator but through the
    other (a request of its own in flight at the kill could otherwise land, and be resent: a duplicate the
    service would drop, but not what this test is about)."""
    emulator.faults = Faults(server_error=1.0)  # nothing gets through while the first two run
    holder = _child("http://127.0.0.1:9", db, "a", 30, hold=True)
    other = _child(emulator.endpoint_url, db, "b", 30, hold=True)
    try:
        assert await _read_line(holder) == "STORED"
        assert await _read_line(other) == "STORED"
        assert len(_held_ids(db)) == 60
        owners = {row[0] for row in _rows(db, "SELECT owner FROM segments")}
        assert len(owners) == 2  # each process's events are its own
        holder.kill()
        await asyncio.to_thread(holder.wait, 10)
        emulator.faults = Faults()
        # the survivor takes over the dead one's events at its next claim (every 2 s at most)
        await _until(lambda: len(emulator.events(TRACKER)) == 60, timeout=20)
    finally:
        for proc in (holder, other):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    ids = Counter(e["eventId"] for e in emulator.events(TRACKER))
    assert set(ids) == {f"{p}-{i}" for p in "ab" for i in range(30)}
    assert emulator.duplicates == 0  # the live owner's events were never sent by another


async def test_a_worker_that_dies_leaves_its_events_to_the_next_start(emulator: Emulator, db: Path) -> None:
    """A process killed with unsent events: a later process on the file recovers and sends them once."""
    emulator.faults = Faults(server_error=1.0)
    first = _child(emulator.endpoint_url, db, "k", 40, hold=True)
    try:
        assert await _read_line(first) == "STORED"
    finally:
        first.kill()
        await asyncio.to_thread(first.wait, 10)
        for stream in (first.stdout, first.stderr):
            if stream is not None:
                stream.close()
    emulator.faults = Faults()
    second = _child(emulator.endpoint_url, db, "n", 5, hold=False)
    try:
        assert await _read_line(second) == "STORED"
        recorded, sent, recovered, pending = map(int, (await _read_line(second)).split()[1:])
    finally:
        second.wait(30)
        for stream in (second.stdout, second.stderr):
            if stream is not None:
                stream.close()
    assert (recorded, sent, recovered, pending) == (45, 45, 40, 0)
    ids = Counter(e["eventId"] for e in emulator.events(TRACKER))
    assert len(ids) == 45
    assert set(ids.values()) == {1}
    assert _held_ids(db) == []


# -- what a segment may hold; the end of a loop without close() -------------------------------------------


def test_a_segment_that_names_a_class_is_never_unpickled(tmp_path: Path) -> None:
    """A segment is plain data: one naming a callable (a forged file) comes back unreadable, nothing runs."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> Any:
            return (os.mkdir, (str(marker),))

    forged = pickle.dumps((1, [Evil()]), protocol=5)
    ((event, _text, reason),) = spool_segments.segment_events(forged)
    assert event is None
    assert "plain data only" in reason
    assert not marker.exists()
    good = spool_segments.segment_body([(_event(1, event_id="x"), "s", None)])
    assert [(e.event_id, s, u) for e, s, u in spool_segments.segment_events(good)] == [("x", "s", None)]  # type: ignore[union-attr]


async def test_events_due_on_disk_are_written_when_the_loop_ends_without_close(emulator: Emulator, db: Path) -> None:
    """asyncio.run() returning with the recorder open: the events are written at interpreter exit and the
    next recorder on the file sends them."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, SqliteSpool

        async def main():
            client = PersonalizeEventsClient(
                region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDEXIT", "s")
            )
            recorder = client.event_recorder(tracking_id="tracker-spool", spool=SqliteSpool(sys.argv[1]))
            await recorder.__aenter__()
            for i in range(20):
                recorder.record(Event(event_type="v", sent_at=1, event_id=f"x{i}"), session_id="s")
            # returns with the recorder and the client open

        asyncio.run(main())
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-W", "ignore", "-c", script, str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(_held_ids(db)) == sorted(f"x{i}" for i in range(20))
    async with (
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDEXIT", "s")
        ) as client,
        client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(db)) as recorder,
    ):
        await recorder.flush()
    assert recorder.stats.recovered == 20
    assert len(emulator.events(TRACKER)) == 20


def test_the_spool_benchmark_runs_for_both_spools() -> None:
    """benchmarks/spool.py measures each spool (briefly here) against the stub, and loses nothing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import spool as bench
    from benchmarks.procs import Stub

    with Stub("raw") as stub:
        for kind in ("memory", "sqlite"):
            result = bench._run_one(stub.url, kind, 0.3)
            assert result["kind"] == kind
            assert result["sent"] > 0
            assert (result["failed"], result["dropped"], result["pending"]) == (0, 0, 0)
            assert result["record_p50_ns"] > 0


def test_a_lock_met_while_opening_is_waited_out_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the new file briefly (longer than one busy timeout): opening waits and succeeds.

    Two processes creating one spool at once met "database is locked" from ``PRAGMA journal_mode=WAL``,
    which does not always wait for the busy timeout; opening now tries again until three busy timeouts.
    """
    import threading

    monkeypatch.setattr(spool_file, "_BUSY_TIMEOUT", 0.1)
    path = tmp_path / "events.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.2, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        conn = spool_file.connect_spool(str(path))
    finally:
        release.join()
        holder.close()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
