"""The command line never loses input to its own output: --failed-out, standard error and standard input failing.

Its promise is that every input line is stored by the service or in
``--failed-out``. When ``--failed-out`` cannot be written the run stops
reading, still sends what it read, says so and exits 1; when standard error
cannot be written the run goes on as if it could; ``--failed-out`` is always
strict JSON, and never the input file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli_support import ARN, emulator_fixture, read_jsonl, shared_emulator_fixture, write_lines  # noqa: F401 (the fixtures emulator and shared_emulator: imported, pytest finds them)
from test_cli_run import item_lines

from aiopersonalize_events.cli import main
from aiopersonalize_events.cli.console import Console
from aiopersonalize_events.cli.failed import FailedOut
from aiopersonalize_events.emulator import Emulator

_TIMEOUT = 60.0


def run(args: list[str], *, cwd: Path, shell_redirect: str = "", **popen: Any) -> subprocess.CompletedProcess[bytes]:
    """``python -m aiopersonalize_events ARGS``, through ``sh`` when ``shell_redirect`` (e.g. ``<&-``) is given."""
    command = [sys.executable, "-m", "aiopersonalize_events", *args]
    if shell_redirect:
        command = ["sh", "-c", f'exec "$@" {shell_redirect}', "sh", *command]
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(command, cwd=cwd, timeout=_TIMEOUT, check=False, **popen)


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as every other JSON reader (jq, JavaScript) does."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in --failed-out")

    return json.loads(text, parse_constant=refuse)


def put_items(emulator: Emulator, *more: str) -> list[str]:
    return ["put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--rate", "0", *more]


# -- a lone surrogate ----------------------------------------------------------------------------------------------


def test_a_lone_surrogate_escape_is_written_escaped_and_the_good_lines_sent(emulator: Emulator, tmp_path: Path) -> None:
    """A line with a \\ud800 escape goes to --failed-out, still escaped; the 20 good lines are sent; exit 1."""
    lines = item_lines(20)
    lines.insert(4, '{"itemId": "\\ud800", "properties": {"GENRE": "drama"}}')
    source = write_lines(tmp_path / "items.jsonl", lines)
    result = run(put_items(emulator, "--failed-out", "failed.jsonl", str(source)), cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert len(emulator.items(ARN)) == 20
    raw = (tmp_path / "failed.jsonl").read_bytes()
    assert b"\\ud800" in raw
    [entry] = [strict_loads(line) for line in raw.decode("utf-8").splitlines()]
    assert entry["line"] == 5
    assert entry["record"] == {"itemId": "\ud800", "properties": {"GENRE": "drama"}}
    assert "lone surrogate" in entry["reason"]
    assert "Traceback" not in stderr


# -- --failed-out that cannot be written ------------------------------------------------------------------------


def test_failed_out_on_a_full_disk_stops_reading_sends_what_was_read_and_exits_1(
    emulator: Emulator, tmp_path: Path
) -> None:
    """--failed-out /dev/full: the error is said once, the lines read are still sent, the summary says not kept."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(250, broken_at=102))
    result = run(put_items(emulator, "--failed-out", "/dev/full", str(source)), cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert len(emulator.items(ARN)) == 250  # the small file was read whole before line 102 failed to be kept
    assert "error: cannot write --failed-out /dev/full: No space left on device" in stderr
    assert "line 102: not kept (--failed-out failed)" in stderr
    assert "failed 1 (not kept: cannot write /dev/full: No space left on device)" in stderr
    assert "Traceback" not in stderr


def test_failed_out_that_breaks_is_reported_once_and_counted() -> None:
    """A --failed-out pipe whose reader went away: the write fails, on_error is told once, later records are lost."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    failed = FailedOut("pipe", write_end)
    told: list[str] = []
    failed.on_error = told.append
    try:
        assert not failed.write(1, "invalid", {"itemId": "a"})
        assert not failed.write(2, "invalid", {"itemId": "b"})
    finally:
        failed.close()
    assert told == ["Broken pipe"]
    assert (failed.count, failed.lost, failed.error) == (2, 2, "Broken pipe")


# -- standard error that cannot be written ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["full", "broken-pipe", "closed"])
def test_standard_error_failing_does_not_stop_the_run(emulator: Emulator, tmp_path: Path, how: str) -> None:
    """stderr full, a broken pipe, or closed: every good line is still sent, the bad one kept; exit 1, not 120."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(30, broken_at=7))
    args = put_items(emulator, "--failed-out", "failed.jsonl", str(source))
    if how == "full":
        with open("/dev/full", "wb") as full:
            result = run(args, cwd=tmp_path, stderr=full)
    elif how == "broken-pipe":
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = run(args, cwd=tmp_path, stderr=write_end)
        finally:
            os.close(write_end)
    else:
        result = run(args, cwd=tmp_path, shell_redirect="2>&-")
    assert result.returncode == 1, result.stderr
    assert result.stdout == b""  # no message went to standard output instead
    assert len(emulator.items(ARN)) == 30
    [entry] = read_jsonl(tmp_path / "failed.jsonl")
    assert entry["line"] == 7


class _FailingTerminal(io.StringIO):
    """A terminal that goes away after ``writes`` writes."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.writes = writes

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.writes -= 1
        if self.writes < 0:
            raise OSError(5, "Input/output error")
        return super().write(text)


@pytest.mark.parametrize("writes", [0, 1, 3, 10])
def test_console_and_progress_bar_stop_writing_when_the_terminal_fails(writes: int) -> None:
    """Messages, the progress bar and its removal never raise when the terminal fails, whenever it fails."""
    pytest.importorskip("tqdm")
    terminal = _FailingTerminal(writes)
    console = Console(terminal, progress=True, total_bytes=2000, unit="records")
    for i in range(5):
        console.advance(10, 100)
        console.say(f"line {i}: a problem")
        console.problem("invalid lines", "line 9: bad")
    console.close()
    console.say("summary")
    assert console.broken


def test_console_without_standard_error_says_nothing() -> None:
    """With no standard error at all (started with it closed) the console is off, and says nothing anywhere."""
    console = Console(None, progress=True)
    console.say("nothing")
    console.advance(1, 1)
    console.close()
    assert console.broken


# -- --failed-out naming the input -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same-path", "symlink", "stdin"])
def test_failed_out_naming_the_input_is_a_usage_error(emulator: Emulator, tmp_path: Path, how: str) -> None:
    """--failed-out that is the input (by path, through a symlink, or as stdin) exits 2 and leaves the input whole."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(12))
    before = source.read_bytes()
    if how == "same-path":
        result = run(put_items(emulator, "--failed-out", "items.jsonl", "items.jsonl"), cwd=tmp_path)
    elif how == "symlink":
        (tmp_path / "link.jsonl").symlink_to(source)
        result = run(put_items(emulator, "--failed-out", "link.jsonl", str(source)), cwd=tmp_path)
    else:
        with source.open("rb") as stdin:
            result = run(put_items(emulator, "--failed-out", str(source), "-"), cwd=tmp_path, stdin=stdin)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "is the input itself" in stderr
    assert source.read_bytes() == before
    assert not emulator.calls


# -- standard input closed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_args", [["-"], []], ids=["dash", "default"])
def test_closed_standard_input_is_input_that_cannot_be_read(tmp_path: Path, file_args: list[str]) -> None:
    """Started with stdin closed (``<&-``): exit 2 saying standard input cannot be read; no traceback."""
    args = ["put-items", "--dataset-arn", ARN, "--dry-run", "--failed-out", "failed.jsonl", *file_args]
    result = run(args, cwd=tmp_path, shell_redirect="<&-")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "cannot read standard input" in stderr
    assert "Traceback" not in stderr


# -- strict JSON in --failed-out -------------------------------------------------------------------------------


def test_failed_out_is_strict_json_with_non_finite_numbers_kept_as_the_line_text(tmp_path: Path) -> None:
    """NaN, Infinity and 1e400 lines are refused and kept as their text (jq's object filter skips them); exit 1."""
    bad = [
        '{"itemId": "a", "properties": {"PRICE": NaN}}',
        '{"itemId": "b", "properties": {"PRICE": -Infinity}}',
        '{"itemId": "c", "properties": {"PRICE": 1e400}}',
    ]
    source = write_lines(tmp_path / "items.jsonl", [*item_lines(3), *bad])
    failed = tmp_path / "failed.jsonl"
    status = main(["put-items", "--dataset-arn", ARN, "--dry-run", "--failed-out", str(failed), str(source)])
    assert status == 1
    entries = [strict_loads(line) for line in failed.read_text(encoding="utf-8").splitlines()]
    assert [entry["line"] for entry in entries] == [4, 5, 6]
    assert [entry["record"] for entry in entries] == bad
    assert entries[0]["reason"] == "not valid JSON (NaN is not JSON)"
    assert entries[1]["reason"] == "not valid JSON (-Infinity is not JSON)"
    assert entries[2]["reason"].startswith("properties: cannot be encoded as JSON")
