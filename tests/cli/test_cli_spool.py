"""``aiopersonalize-events spool stats|export-failed|retry-failed|clear PATH`` on a real spool file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _scripted_server import ScriptedServer

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient, SqliteSpool
from aiopersonalize_events.cli import main
from aiopersonalize_events.emulator import Emulator, Faults

TRACKER = "tracker-cli"

pytestmark = pytest.mark.usefixtures("collect_after")


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """No backoff waits in these tests."""


def _event(i: int) -> Event:
    return Event(event_type="click", sent_at=1_700_000_000 + i, item_id=f"item-{i}", event_id=f"e{i}")


async def _spool_with_dead_letters(emulator: Emulator, path: Path, count: int = 3, pending: int = 0) -> None:
    """A spool holding ``count`` dead letters (refused: InvalidInput) and ``pending`` events left unsent."""
    refusing = ScriptedServer()  # the service refusing the records for good (an unknown tracker is held instead)
    await refusing.start()
    refusing.error("InvalidInputException", 400, "the events were refused", times=count)
    try:
        async with (
            PersonalizeEventsClient(
                region="us-east-1", endpoint_url=refusing.url, credentials=Credentials("AKIDCLI", "cli-secret")
            ) as client,
            client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path)) as recorder,
        ):
            for i in range(count):
                recorder.record(_event(i), session_id="s1", user_id="u1")
    finally:
        await refusing.stop()
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDCLI", "cli-secret")
    ) as client:
        if pending:
            emulator.faults = Faults(server_error=1.0)
            emulator.register(tracking_ids=[TRACKER])
            async with client.event_recorder(
                tracking_id=TRACKER, spool=SqliteSpool(path), close_timeout=0.05
            ) as recorder:
                for i in range(pending):
                    recorder.record(_event(100 + i), session_id="s2")
            emulator.faults = Faults()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


async def test_stats_says_what_the_file_holds(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stats: pending events by tracker, who holds them, dead letters, lifetime totals; --json for programs."""
    path = tmp_path / "events.db"
    await _spool_with_dead_letters(emulator, path, count=3, pending=4)
    status, out, _ = await asyncio.to_thread(_run, ["spool", "stats", str(path)], capsys)
    assert status == 0
    assert "pending: 4 event(s) (tracker-cli: 4)" in out
    assert "waiting for the next recorder (no live owner): 4" in out
    assert "dead letters: 3 (tracker-cli: 3)" in out
    status, out, _ = await asyncio.to_thread(_run, ["spool", "stats", str(path), "--json"], capsys)
    report = json.loads(out)
    assert (report["pending_events"], report["dead_letter_count"], report["schema_version"]) == (4, 3, 1)
    assert report["totals"]["written"] == report["totals"]["deleted"] + report["totals"]["held_events"]


async def test_export_failed_writes_the_failed_out_form_and_put_events_takes_the_records(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export-failed: one {"line", "reason", "record"} per dead letter, as --failed-out; each record is a
    put-events input line, which put-events sends."""
    path, out_file = tmp_path / "events.db", tmp_path / "failed.jsonl"
    await _spool_with_dead_letters(emulator, path, count=3)
    status, _, err = await asyncio.to_thread(
        _run, ["spool", "export-failed", str(path), "--out", str(out_file)], capsys
    )
    assert status == 0
    assert "3 dead letter(s) exported" in err
    entries = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [e["record"]["eventId"] for e in entries] == ["e0", "e1", "e2"]
    first = entries[0]
    assert {"line", "reason", "record"} <= set(first)
    assert first["reason"].startswith("InvalidInputException")
    assert (first["record"]["sessionId"], first["record"]["userId"], first["record"]["itemId"]) == (
        "s1",
        "u1",
        "item-0",
    )
    # the records go back through put-events as they are
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(e["record"]) + "\n" for e in entries))
    emulator.register(tracking_ids=[TRACKER])
    status, _, _ = await asyncio.to_thread(
        _run,
        [
            "put-events",
            "--tracking-id",
            TRACKER,
            "--endpoint-url",
            emulator.endpoint_url,
            "--region",
            "us-east-1",
            "--no-progress",
            str(records),
        ],
        capsys,
    )
    assert status == 0
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == ["e0", "e1", "e2"]


async def test_export_failed_to_standard_output_and_clear(emulator: Emulator, tmp_path: Path, capfdbinary: Any) -> None:
    """Without --out the letters go to standard output; --clear removes what was exported."""
    path = tmp_path / "events.db"
    await _spool_with_dead_letters(emulator, path, count=2)
    status = await asyncio.to_thread(main, ["spool", "export-failed", str(path), "--clear"])
    out, err = capfdbinary.readouterr()
    assert status == 0
    assert [json.loads(line)["record"]["eventId"] for line in out.splitlines()] == ["e0", "e1"]
    assert b"2 dead letter(s) exported and cleared" in err
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM dead").fetchone() == (0,)
    conn.close()


async def test_retry_failed_queues_dead_letters_for_the_next_recorder(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """retry-failed moves dead letters back as pending events; the next recorder of the tracker sends them."""
    path = tmp_path / "events.db"
    await _spool_with_dead_letters(emulator, path, count=3)
    status, _, err = await asyncio.to_thread(
        _run, ["spool", "retry-failed", str(path), "--tracking-id", TRACKER], capsys
    )
    assert status == 0
    assert "3 dead letter(s) queued again" in err
    emulator.register(tracking_ids=[TRACKER])
    async with (
        PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDCLI", "cli-secret")
        ) as client,
        client.event_recorder(tracking_id=TRACKER, spool=SqliteSpool(path)) as recorder,
    ):
        await recorder.flush()
    assert recorder.stats.recovered == 3
    assert sorted(e["eventId"] for e in emulator.events(TRACKER)) == ["e0", "e1", "e2"]


async def test_clear_deletes_dead_letters_of_one_tracker_or_all(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """clear --tracking-id deletes that tracker's letters only; clear deletes them all."""
    path = tmp_path / "events.db"
    await _spool_with_dead_letters(emulator, path, count=2)
    status, _, err = await asyncio.to_thread(_run, ["spool", "clear", str(path), "--tracking-id", "other"], capsys)
    assert (status, "0 dead letter(s) deleted" in err) == (0, True)
    status, _, err = await asyncio.to_thread(_run, ["spool", "clear", str(path)], capsys)
    assert (status, "2 dead letter(s) deleted" in err) == (0, True)


@pytest.mark.parametrize("action", ["stats", "export-failed", "retry-failed", "clear"])
def test_no_spool_there_is_a_usage_error_and_nothing_is_created(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every action on a path with no spool exits 2 saying so, and creates no file."""
    path = tmp_path / "missing.db"
    status, _, err = _run(["spool", action, str(path)], capsys)
    assert status == 2
    assert f"no spool at {path}" in err
    assert not path.exists()


@pytest.mark.parametrize("action", ["stats", "retry-failed"])
def test_a_file_that_is_not_a_spool_or_newer_is_refused(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is not a spool, or one of a newer schema, exits 2 with a clear message (and is not changed)."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 50)
    status, _, err = _run(["spool", action, str(junk)], capsys)
    assert status == 2
    assert "is not a spool" in err
    assert junk.read_bytes() == b"not a database at all" * 50
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (7)")
    conn.commit()
    conn.close()
    status, _, err = _run(["spool", action, str(newer)], capsys)
    assert status == 2
    assert "newer aiopersonalize-events (schema version 7" in err


def test_the_spool_command_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """aiopersonalize-events --help lists spool; spool --help lists its four actions."""
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "spool" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["spool", "--help"])
    out = capsys.readouterr().out
    for action in ("stats", "export-failed", "retry-failed", "clear"):
        assert action in out
