"""Bad spool files: damaged mid-file, half made, another program's database, read-only to the operator.

Each test makes a real file (a recorder's spool, or another program's SQLite
database) and then damages or restricts it as a disk, a crash or an
operator would, and checks what the recorder and the ``spool`` commands do:
a damaged spool is moved aside and a fresh one started; another program's
database is refused and left exactly as it was (no WAL switch, no table);
the commands exit 2 with one clear line (no traceback) on files they
cannot read, and read a spool the operator may only read.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, SpoolError, SqliteSpool
from aiopersonalize_events.cli import main
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-files"
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())

pytestmark = pytest.mark.usefixtures("collect_after")


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """No backoff waits."""


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[PersonalizeEventsClient]:
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDFILES", "files-secret")
    ) as c:
        yield c


def _event(i: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", event_id=f"e{i}")


async def _spool_with_pending(
    client: PersonalizeEventsClient, emulator: Emulator, path: Path, n: int = 300, dead: int = 3
) -> None:
    """A spool left with ``n`` pending events in many small segments (the service down), and ``dead`` dead letters."""
    emulator.faults = Faults(server_error=1.0)
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path), close_timeout=0.05)
    async with recorder:
        for i in range(n):
            recorder.record(_event(i), session_id=f"s{i % 20}")
            if i % 5 == 4:
                await recorder.spool.sync()
    emulator.faults = Faults()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executemany(
            "INSERT INTO dead (tracking_id, event_id, line, reason, failed_at) VALUES (?, ?, ?, 'refused', 0)",
            [
                (TRACKER, f"d{i}", f'{{"eventType": "click", "sentAt": 1, "eventId": "d{i}", "sessionId": "s"}}')
                for i in range(dead)
            ],
        )
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'dead'", (dead,))
    finally:
        conn.close()


def _damage_middle(path: Path) -> bytes:
    """Overwrite the middle third of the file's pages with garbage; return the damaged bytes."""
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    for n in range(pages // 3, 2 * pages // 3):
        data[n * page : (n + 1) * page] = b"\xde\xad\xbe\xef" * (page // 4)
    path.write_bytes(bytes(data))
    return bytes(data)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    finally:
        conn.close()


def _state(path: Path) -> tuple[str, list[str], bytes]:
    """A database's journal mode, its tables, and its bytes: what 'left as it was' means."""
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        conn.close()
    return mode, tables, path.read_bytes()


# -- damaged mid-file ------------------------------------------------------------------------------------------


async def test_a_spool_damaged_mid_file_is_moved_aside_and_a_fresh_one_started(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages in the middle of a real spool overwritten: the recorder starts anyway, on a fresh file; the damaged
    one is kept beside it (renamed, byte for byte), an ERROR names it, and new events are sent."""
    path = tmp_path / "events.db"
    await _spool_with_pending(client, emulator, path)
    damaged = _damage_middle(path)
    recorder = client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path), flush_interval=0.01)
    async with recorder:
        await recorder.put(_event(1000), session_id="after")
        await recorder.flush()
    assert recorder.stats.sent == 1
    assert [e["eventId"] for e in emulator.events(TRACKER)] == ["e1000"]
    (aside,) = [p for p in os.scandir(tmp_path) if p.name.startswith("events.db.corrupt-")]
    assert Path(aside.path).read_bytes() == damaged  # noqa: ASYNC240
    assert any(str(aside.name) in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.parametrize("command", ["stats", "export-failed"])
async def test_commands_on_a_damaged_spool_exit_2_with_one_line(
    client: PersonalizeEventsClient,
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """stats and export-failed on a spool damaged mid-file: exit 2, a line saying it is corrupted, no traceback."""
    path = tmp_path / "events.db"
    await _spool_with_pending(client, emulator, path, dead=1500)  # the letters' pages are in the middle too
    _damage_middle(path)
    status, _out, err = await asyncio.to_thread(_run, ["spool", command, str(path)], capsys)
    assert status == 2, err
    assert "corrupted" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["stats", "export-failed", "retry-failed", "clear"])
def test_commands_on_a_half_made_spool_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A file with the spool's version table but none of the others (cut short): exit 2, one line, no traceback."""
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.close()
    status, _out, err = _run(["spool", command, str(path)], capsys)
    assert status == 2, err
    assert "not a whole spool" in err
    assert "Traceback" not in err


# -- another program's database ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["retry-failed", "clear", "stats", "export-failed"])
def test_commands_refuse_another_programs_database_and_leave_it_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Another program's SQLite database: every command exits 2 saying it is not a spool, and the file is
    byte for byte as it was (still in its own journal mode: no switch to WAL before refusing)."""
    path = tmp_path / "app.db"
    _foreign_database(path)
    before = _state(path)
    status, _out, err = _run(["spool", command, str(path)], capsys)
    assert status == 2, err
    assert "not a spool" in err
    assert _state(path) == before
    assert before[0] == "delete"
    assert not Path(f"{path}-wal").exists()


async def test_a_spool_path_at_another_programs_database_is_refused_not_adopted(
    client: PersonalizeEventsClient, tmp_path: Path
) -> None:
    """SqliteSpool on another program's non-empty database: the recorder does not start (SpoolError saying so),
    and no table is created in the file, nor its journal mode changed."""
    path = tmp_path / "app.db"
    _foreign_database(path)
    before = _state(path)
    with pytest.raises(SpoolError, match="another program"):
        async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path)):
            pass
    assert _state(path) == before


async def test_an_empty_database_file_is_taken_as_a_new_spool(
    client: PersonalizeEventsClient, emulator: Emulator, tmp_path: Path
) -> None:
    """An empty file (touched, or an SQLite database with no table) is not another program's: it becomes the spool."""
    path = tmp_path / "events.db"
    path.touch()
    async with client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path)) as recorder:
        await recorder.put(_event(1), session_id="s")
    assert [e["eventId"] for e in emulator.events(TRACKER)] == ["e1"]


# -- an operator who may only read ---------------------------------------------------------------------------------


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A directory anyone may read and enter (pytest's own tmp dirs are private to their user)."""
    path = Path(tempfile.mkdtemp(prefix="spool-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _drop_capabilities() -> None:
    """In the child, before exec: leave root's capability bounding set empty, so that after exec file modes
    bind root as they bind anyone (no CAP_DAC_OVERRIDE)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; past the last capability it fails, harmlessly


def _as_reader(path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user who may read the spool and its directory, not write them (their write
    bits are off; under root, which ignores file modes, with the capabilities that let it dropped)."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from aiopersonalize_events.cli import main
        sys.exit(main({argv!r}))
        """
    )
    kwargs: dict[str, Any] = {"preexec_fn": _drop_capabilities} if os.geteuid() == 0 else {}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


async def test_an_operator_with_read_access_only_can_run_stats_and_export(
    client: PersonalizeEventsClient, emulator: Emulator, readable_dir: Path
) -> None:
    """The spool and its directory readable but not writable by the operator: stats and export-failed work
    (read as it stands on disk) and say what the file holds."""
    path = readable_dir / "events.db"
    await _spool_with_pending(client, emulator, path, n=40)
    os.chmod(path, 0o444)
    os.chmod(readable_dir, 0o555)
    try:
        stats = await asyncio.to_thread(_as_reader, path, ["spool", "stats", str(path)])
        assert stats.returncode == 0, stats.stderr
        assert "pending: 40 event(s)" in stats.stdout
        assert "dead letters: 3" in stats.stdout
        export = await asyncio.to_thread(_as_reader, path, ["spool", "export-failed", str(path)])
        assert export.returncode == 0, export.stderr
        assert len(export.stdout.strip().splitlines()) == 3
    finally:
        os.chmod(readable_dir, 0o755)


def test_export_out_to_a_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """export-failed --out DIR: exit 2 saying --out is a directory, before anything is read or written."""
    path = tmp_path / "events.db"
    status, _out, err = _run(["spool", "export-failed", str(path), "--out", str(tmp_path)], capsys)
    assert status == 2
    assert "--out" in err
    assert "is a directory" in err
