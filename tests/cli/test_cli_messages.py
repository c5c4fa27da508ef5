"""What the command line tells its user: --failed-out's retryable, errors that read well, the
progress bar and the console, and help listing every exit status.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _cli_support import (  # noqa: F401 (the fixtures emulator and shared_emulator: imported, pytest finds them)
    _TIMEOUT,
    ARN,
    _Terminal,
    cli,
    emulator_fixture,
    item_lines,
    read_jsonl,
    shared_emulator_fixture,
    write_lines,
)

from aiopersonalize_events import Event, Item, PersonalizeEventsClient, User, ValidationError
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.cli import EXIT_STATUSES, main
from aiopersonalize_events.cli.console import Console
from aiopersonalize_events.cli.failed import FailedOut
from aiopersonalize_events.cli.feed import Input, LineCounter, LineFeed
from aiopersonalize_events.cli.run import Run
from aiopersonalize_events.emulator import Emulator, Faults

# --- --failed-out's retryable --------------------------------------------------------------------------------------


def test_failed_out_says_which_records_may_succeed_if_resent(emulator: Emulator, tmp_path: Path) -> None:
    """Invalid lines: retryable false; throttled past the deadline: true; resending the retryable ones works."""
    emulator.faults = Faults(throttle=1.0, seed=1)
    lines = item_lines(12)
    lines.insert(3, '{"itemId": ""}')
    lines.insert(5, '{"itemId": "x" "y"}')
    source = write_lines(tmp_path / "items.jsonl", lines)
    failed = tmp_path / "failed.jsonl"
    result = cli(
        "put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--failed-out", str(failed),
        "--max-attempts", "1", "--deadline", "0.001", str(source), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    entries = read_jsonl(failed)
    assert {e["line"]: e["retryable"] for e in entries if not e["retryable"]} == {4: False, 6: False}
    assert sum(e["retryable"] for e in entries) == 12
    assert list(entries[0]) == ["line", "reason", "retryable", "record"]
    # the README's recipe: resend what may succeed (jq -c 'select(.retryable) | .record')
    emulator.faults = None
    resend = write_lines(tmp_path / "resend.jsonl", [json.dumps(e["record"]) for e in entries if e["retryable"]])
    again = cli("put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, str(resend), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(emulator.items(ARN)) == 12


# --- messages ----------------------------------------------------------------------------------------------------


def test_no_mention_of_failed_out_when_it_was_not_given(emulator: Emulator, tmp_path: Path) -> None:
    """Without --failed-out, nothing printed speaks of it (the summary counts the failures)."""
    emulator.faults = Faults(throttle=1.0, seed=1)
    lines = [*item_lines(5), "not json"]
    source = write_lines(tmp_path / "items.jsonl", lines)
    result = cli(
        "put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--deadline", "0.001",
        "--max-attempts", "1", str(source), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "failed-out" not in result.stderr
    assert "sent 0, failed 6, 1 calls" in result.stderr


def test_signal_message_without_failed_out_does_not_name_it() -> None:
    """The Ctrl-C message says what happens to unsent records without naming an option that was not given."""
    said = io.StringIO()

    async def stop_one() -> None:
        loop = asyncio.get_running_loop()
        read, write = os.pipe()
        feed = LineFeed(read, loop)
        try:
            run = Run(
                ops.PUT_ITEMS, resource=ARN, feed=feed, console=Console(said), failed=FailedOut(), client=None,
                concurrency=1, rate=None,
            )  # fmt: skip
            run.on_signal("interrupted", 130)
        finally:
            feed.close()
            os.close(read)
            os.close(write)

    asyncio.run(stop_one())
    assert "failed-out" not in said.getvalue()
    assert "counted in the summary" in said.getvalue()


BAD_JSON = [
    '{"itemId": "abc',  # Unterminated string starting at
    '{"itemId": "a\tb"}',  # Invalid control character at
    '{"itemId": "a"} x',  # Extra data
    '{"itemId": "a",}',  # Expecting property name enclosed in double quotes
    '{"itemId": "\\x"}',  # Invalid \escape
]


def test_json_errors_read_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every kind of JSON error is said once, with its column, and never 'at at'."""
    source = write_lines(tmp_path / "bad.jsonl", BAD_JSON)
    failed = tmp_path / "failed.jsonl"
    assert main(["put-items", "--dataset-arn", ARN, "--dry-run", "--failed-out", str(failed), str(source)]) == 1
    err = capsys.readouterr().err
    reasons = [e["reason"] for e in read_jsonl(failed)]
    assert "not valid JSON (Unterminated string starting at column 12)" in reasons
    assert "not valid JSON (Invalid control character at column 14)" in reasons
    for text in [err, *reasons]:
        assert " at at " not in text
        assert all(re.search(r"column \d+\)", r) for r in reasons)


async def test_wrong_records_are_named_with_the_right_article() -> None:
    """'must be an Event', 'an Item', 'a User': in put_* and in the batched helpers."""
    client = PersonalizeEventsClient(region="us-east-1")
    with pytest.raises(ValidationError, match=r"must be an Event, not Item"):
        await client.put_events(tracking_id="t", session_id="s", event_list=[Item(item_id="i")])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=r"must be an Item, not User"):
        await client.put_items(dataset_arn=ARN, items=[User(user_id="u")])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match=r"must be a User, not Item"):
        await client.put_users(dataset_arn=ARN, users=[Item(item_id="i")])  # type: ignore[list-item]
    result = await client.put_items_batched(
        dataset_arn=ARN,
        items=iter([Event(event_type="click", sent_at=1)]),  # type: ignore[list-item]
        requests_per_second=None,
    )
    assert "must be an Item, not Event" in str(result.failures[0].error)
    await client.close()


# --- the progress bar ---------------------------------------------------------------------------------------------


def test_line_counter_counts_a_file_exactly(tmp_path: Path) -> None:
    """The counter counts lines from where reading starts, the last line without a newline included."""
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"skipped\n" + b'{"a": 1}\n' * 2500 + b"\n" + b'{"last": true}')
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, len(b"skipped\n"), os.SEEK_SET)  # standard input already read from
        source = Input(fd, os.fstat(fd), owned=False)
        assert source.countable
        counted: list[int] = []

        async def count() -> None:
            done = asyncio.Event()
            LineCounter(source, asyncio.get_running_loop(), lambda n: (counted.append(n), done.set())).start()
            await asyncio.wait_for(done.wait(), 30)

        asyncio.run(count())
    finally:
        os.close(fd)
    assert counted == [2502]


def test_the_bar_total_is_the_counted_records_not_an_estimate() -> None:
    """Once counted, the bar's total is exact from the start, blank lines taken off as they come."""
    pytest.importorskip("tqdm")
    console = Console(_Terminal(), progress=True, total_bytes=10_000, unit="records")
    console.advance(10, 100)  # short lines first: the byte estimate says 1,000 records
    assert console.total == 1000
    console.set_total_lines(203)
    assert console.total == 203
    console.advance(0, 1)  # a blank line
    assert console.total == 202
    console.advance(192, 9000)
    assert console.total == 202
    console.close()


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        into += chunk


def _in_a_terminal(args: list[str], cwd: Path, columns: int = 80) -> str:
    """Run the command line with standard error on a pseudo-terminal of ``columns``; return what it drew there."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    drawn = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, drawn), daemon=True)
    reader.start()
    try:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environ.update({"COLUMNS": str(columns), "AWS_EC2_METADATA_DISABLED": "true"})
        environ.pop("NO_COLOR", None)
        process = subprocess.run(
            [sys.executable, "-m", "aiopersonalize_events", *args],
            stderr=slave,
            stdout=subprocess.DEVNULL,
            cwd=cwd,
            env=environ,
            timeout=_TIMEOUT,
            check=False,
        )
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    assert process.returncode in (0, 1), drawn.decode("utf-8", "replace")
    return drawn.decode("utf-8", "replace")


def test_progress_on_a_terminal_counts_the_file_and_cuts_long_messages(tmp_path: Path) -> None:
    """On a terminal: the bar's total is the file's record count, and long failure lines fit the width."""
    pytest.importorskip("tqdm")
    lines = [json.dumps({"itemId": f"i{i}"}) for i in range(30_000)]  # short lines first ...
    lines += [json.dumps({"itemId": f"i{i}", "properties": {"GENRE": "x" * 300}}) for i in range(30_000)]  # long
    lines[10] = json.dumps({"itemId": "bad", "y" * 300: 1})  # a failure line longer than the terminal
    lines[20] = ""  # a blank line: not a record
    source = write_lines(tmp_path / "items.jsonl", lines)
    drawn = _in_a_terminal(["put-items", "--dataset-arn", ARN, "--dry-run", str(source)], tmp_path)
    totals = [int(t.replace(",", "")) for t in re.findall(r"\d+/(\d[\d,]*)", drawn)]
    # the file's 60,000 lines, counted; its one blank line comes off the total when it is met: never an estimate
    assert set(totals) <= {60_000, 59_999}, sorted(set(totals))[:10]
    assert totals == sorted(totals, reverse=True)
    assert totals[-1] == 59_999
    pieces = [piece for row in drawn.split("\n") for piece in row.split("\r")]
    problem = [p for p in pieces if "line 11:" in p]
    assert problem, drawn[:2000]
    assert all(len(p.strip()) <= 79 for p in problem), problem
    assert problem[0].rstrip().endswith("...")


def test_without_a_terminal_failure_lines_are_written_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Piped (no bar), a long failure line is written whole, on one line (control characters escaped)."""
    long_key = "k" * 300
    source = write_lines(tmp_path / "items.jsonl", [json.dumps({"itemId": "x", long_key: 1})])
    main(["put-items", "--dataset-arn", ARN, "--dry-run", str(source)])
    err = capsys.readouterr().err
    assert f"line 1: {long_key}: is not a member of Item" in err


def test_console_keeps_a_message_on_one_line() -> None:
    """Newlines, carriage returns and escape sequences in a message are shown escaped, never acted on."""
    said = io.StringIO()
    Console(said).say("line 3: bad\r\x1b[2Jvalue\nnext")
    assert said.getvalue() == "line 3: bad\\r\\x1b[2Jvalue\\nnext\n"


# --- help -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *[[op.cli_name] for op in ops.OPERATIONS]])
def test_help_lists_every_exit_status(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--help, at the top and for each put-*, lists 0, 1, 2, 130 and 143."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert EXIT_STATUSES in out
    for status in ("0", "1", "2", "130", "143"):
        assert re.search(rf"^  {status}\s+\S", out, flags=re.M), status
    if command:
        assert "--max-attempts N" in out
        assert "--deadline SECONDS" in out
