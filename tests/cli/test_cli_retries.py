"""The command line's retries: throttling and faults retried, --max-attempts and --deadline, an
unreachable endpoint stopping the run, and a signal ending the retries at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _cli_support import (  # noqa: F401 (the fixtures emulator and shared_emulator: imported, pytest finds them)
    _TIMEOUT,
    ARN,
    cli,
    emulator_fixture,
    item_lines,
    read_jsonl,
    shared_emulator_fixture,
    write_lines,
)

from aiopersonalize_events import PersonalizeEventsClient
from aiopersonalize_events import _operations as ops
from aiopersonalize_events.cli import build_parser, main
from aiopersonalize_events.cli.console import Console
from aiopersonalize_events.cli.failed import FailedOut
from aiopersonalize_events.cli.feed import LineFeed
from aiopersonalize_events.cli.run import Run
from aiopersonalize_events.emulator import Emulator, Faults
from aiopersonalize_events.errors import EndpointConnectionError

CLOSED = "http://127.0.0.1:9"  # nothing listens there: connection refused


def event_lines(count: int, sessions: int = 7) -> list[str]:
    return [
        json.dumps({"sessionId": f"s{i % sessions}", "eventType": "click", "sentAt": 1700000000, "itemId": f"i{i}"})
        for i in range(count)
    ]


# --- retries: --max-attempts, and the command line's own retry of retryable failures within --deadline --------------


def test_throttled_events_are_retried_not_failed(emulator: Emulator, tmp_path: Path) -> None:
    """The issue's run: --throttle 0.1 used to put good events in --failed-out; now all are stored, retries said."""
    emulator.faults = Faults(throttle=0.1, seed=7)
    source = write_lines(tmp_path / "events.jsonl", event_lines(200))
    failed = tmp_path / "failed.jsonl"
    result = cli(
        "put-events", "--tracking-id", "t", "--endpoint-url", emulator.endpoint_url, "--failed-out", str(failed),
        "--max-attempts", "1", str(source), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert failed.read_text() == ""
    assert len(emulator.events("t")) == 200
    throttled = emulator.calls[("PutEvents", 400)]
    assert throttled > 0  # the seed throttles some: each came back
    assert re.search(rf"sent 200, failed 0, \d+ calls, {throttled} retried", result.stderr), result.stderr


def test_a_third_of_calls_faulted_still_stores_every_event(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], personalize_no_retry_waits: None
) -> None:
    """35% faults (throttling, 5xx, dropped connections): 0 events in --failed-out, each stored once."""
    emulator.faults = Faults(throttle=0.15, server_error=0.1, disconnect=0.1, seed=11)
    source = write_lines(tmp_path / "events.jsonl", event_lines(3000, sessions=50))
    failed = tmp_path / "failed.jsonl"
    args = ["put-events", "--tracking-id", "t", "--endpoint-url", emulator.endpoint_url, "--no-progress"]
    status = main([*args, "--failed-out", str(failed), str(source)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert failed.read_text() == ""
    assert len({e["eventId"] for e in emulator.events("t")}) == 3000
    assert len(emulator.events("t")) == 3000
    assert "retried" in err.splitlines()[-1]


def test_max_attempts_sets_the_clients_attempts_and_deadline_gives_up(emulator: Emulator, tmp_path: Path) -> None:
    """--max-attempts 4 makes 4 attempts per call; past --deadline a still-throttled batch goes out, retryable."""
    emulator.faults = Faults(throttle=1.0, seed=1)
    source = write_lines(tmp_path / "items.jsonl", item_lines(7))
    failed = tmp_path / "failed.jsonl"
    result = cli(
        "put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--failed-out", str(failed),
        "--max-attempts", "4", "--deadline", "0.001", str(source), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert emulator.calls == {("PutItems", 400): 4}
    entries = read_jsonl(failed)
    assert len(entries) == 7
    assert all(e["retryable"] is True and e["reason"].startswith("ThrottlingException") for e in entries)
    assert "3 retried" in result.stderr


def test_aws_max_attempts_is_the_default_of_max_attempts(emulator: Emulator, tmp_path: Path) -> None:
    """Without --max-attempts the client takes AWS_MAX_ATTEMPTS, as boto3 does; a bad value is a usage error."""
    emulator.faults = Faults(throttle=1.0, seed=1)
    source = write_lines(tmp_path / "items.jsonl", item_lines(3))
    args = ("put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--deadline", "0.001")
    result = cli(*args, str(source), cwd=tmp_path, env={"AWS_MAX_ATTEMPTS": "2"})
    assert result.returncode == 1, result.stderr
    assert emulator.calls == {("PutItems", 400): 2}
    bad = cli(*args, str(source), cwd=tmp_path, env={"AWS_MAX_ATTEMPTS": "zero"})
    assert bad.returncode == 2
    assert "AWS_MAX_ATTEMPTS: must be a whole number" in bad.stderr


def test_retry_options_are_checked() -> None:
    """--max-attempts and --deadline take positive numbers only."""
    parser = build_parser()
    for bad in (["--max-attempts", "0"], ["--deadline", "0"], ["--deadline", "soon"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["put-items", "--dataset-arn", ARN, *bad])
    args = parser.parse_args(["put-items", "--dataset-arn", ARN, "--max-attempts", "5", "--deadline", "90"])
    assert (args.max_attempts, args.deadline) == (5, 90.0)


# --- an endpoint that cannot be reached stops the run like a 404 ----------------------------------------------------


def test_a_refused_connection_stops_the_run_after_a_few_attempts(tmp_path: Path) -> None:
    """Connection refused: the run stops after the calls in flight (not one failing call per batch, paced).

    Decided by the count of calls the run reports, not by how long it took (cli()'s timeout is the hang guard).
    """
    source = write_lines(tmp_path / "items.jsonl", item_lines(1000))
    failed = tmp_path / "failed.jsonl"
    result = cli(
        "put-items", "--dataset-arn", ARN, "--endpoint-url", CLOSED, "--failed-out", str(failed), str(source),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("stopped: the endpoint cannot be reached (EndpointConnectionError)"), summary
    calls = int(re.search(r"(\d+) calls", summary).group(1))  # type: ignore[union-attr]
    assert calls <= 4  # the calls in flight when the first failed; paced at 10/s, 100 calls would take 10 s
    entries = read_jsonl(failed)
    assert len(entries) == len({e["line"] for e in entries})
    assert all(e["retryable"] for e in entries)
    not_read = re.search(r"input not read from line (\d+) on", summary)
    unread = 1000 - int(not_read.group(1)) + 1 if not_read else 0
    assert len(entries) + unread == 1000


class _Scripted:
    """A client whose calls fail to connect (as a DNS failure does: ClientConnectorDNSError) when the script says so."""

    def __init__(self, script: Sequence[bool]) -> None:
        self.retry_policy = PersonalizeEventsClient(region="us-east-1").retry_policy
        self.script = list(script)  # True: connects; False: cannot; then connects for good
        self.calls = 0

    async def put_items(self, **request: Any) -> Any:
        self.calls += 1
        if self.script and not self.script.pop(0):
            error = EndpointConnectionError("could not connect (ClientConnectorDNSError: no such host nowhere.test)")
            error.attempts = 3
            raise error
        return None


async def _run_items(tmp_path: Path, client: _Scripted, count: int) -> tuple[Run, list[dict[str, Any]]]:
    source = write_lines(tmp_path / "items.jsonl", item_lines(count))
    fd = os.open(source, os.O_RDONLY)
    failed_path = tmp_path / "failed.jsonl"
    failed = FailedOut.open(str(failed_path))
    feed = LineFeed(fd, asyncio.get_running_loop())
    try:
        run = Run(
            ops.PUT_ITEMS, resource=ARN, feed=feed, console=Console(io.StringIO()), failed=failed, client=client,
            concurrency=1, rate=None,
        )  # fmt: skip
        await run.go()
    finally:
        feed.close()
        failed.close()
        os.close(fd)
    return run, read_jsonl(failed_path)


async def test_a_dns_failure_stops_the_run_too(tmp_path: Path) -> None:
    """An endpoint whose name does not resolve stops the run after the first failed call, records retryable."""
    client = _Scripted([False] * 100)
    run, entries = await _run_items(tmp_path, client, 95)
    assert client.calls == 1
    assert run.stop_reason == "stopped: the endpoint cannot be reached (EndpointConnectionError)"
    assert all(e["retryable"] for e in entries)
    assert len(entries) + (95 - run.feed.lines_read) == 95


async def test_an_endpoint_that_answered_once_is_retried_when_it_stops_answering(
    tmp_path: Path, personalize_no_retry_waits: None
) -> None:
    """Only an endpoint never reached stops the run: once a call was answered, connection failures are retried."""
    client = _Scripted([True, False, False, True])
    run, entries = await _run_items(tmp_path, client, 40)
    assert run.stop_reason is None
    assert entries == []
    assert run.sent == 40
    assert client.calls == 6  # 4 batches, one of them sent three times
    assert run.retries == 2 + 2 * 2  # two re-sends, each after the client's two retries


def test_records_a_404_held_are_kept_retryable(tmp_path: Path) -> None:
    """A 404 is the set-up's fault, not the records': the run stops after --setup-wait, every record retryable."""
    with Emulator(dataset_arns=["arn:aws:personalize:us-east-1:123456789012:dataset/cli/OTHER"]) as emu:
        source = write_lines(tmp_path / "items.jsonl", item_lines(40))
        failed = tmp_path / "failed.jsonl"
        result = cli(
            "put-items", "--dataset-arn", ARN, "--endpoint-url", emu.endpoint_url, "--failed-out", str(failed),
            "--concurrency", "1", "--setup-wait", "0", str(source), cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1
    assert "stopped after ResourceNotFoundException" in result.stderr
    entries = read_jsonl(failed)
    assert entries
    assert all(e["retryable"] for e in entries)  # was: none retryable (a 404 stopped the run as the records' fault)
    assert any(e["reason"].startswith("ResourceNotFoundException") and "to fix:" in e["reason"] for e in entries)


def test_a_signal_ends_the_retries_at_once_and_keeps_every_record(emulator: Emulator, tmp_path: Path) -> None:
    """Ctrl-C while batches wait to be sent again: they are not sent, all go to --failed-out retryable, exit 130."""
    import signal

    emulator.faults = Faults(throttle=1.0, seed=1)
    source = write_lines(tmp_path / "items.jsonl", item_lines(45))
    failed = tmp_path / "failed.jsonl"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none")})
    args = ["put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--rate", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "aiopersonalize_events", *args, "--failed-out", str(failed), str(source)],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        # each batch failed once; _TIMEOUT is only a hang guard, here and for communicate()
        hang_guard = time.monotonic() + _TIMEOUT
        while emulator.calls[("PutItems", 400)] < 15:
            assert process.poll() is None, "the run ended before its batches failed once"
            assert time.monotonic() < hang_guard, "the batches never failed once"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    entries = read_jsonl(failed)
    assert sorted(e["line"] for e in entries) == list(range(1, 46))
    assert all(e["retryable"] for e in entries)
    assert "interrupted: sent 0, failed 45" in err
