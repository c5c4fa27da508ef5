"""Stopping a run whose input never ends (``tail -f log | aiopersonalize-events ...``): intake stops at once.

Each test feeds the command through a pipe that the test keeps open, as
``tail -f`` does, so a run that waits for the end of its input never ends.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
from _cli_support import ARN, emulator_fixture, read_jsonl, shared_emulator_fixture  # noqa: F401 (the fixtures emulator and shared_emulator: imported, pytest finds them)

from aiopersonalize_events.emulator import Emulator

_TIMEOUT = 60.0
_PROMPTLY = 15.0  # seconds a stopped run may take to exit (it needs well under one)


def item_lines(start: int, count: int) -> bytes:
    return b"".join(
        json.dumps({"itemId": f"item-{i}", "properties": {"GENRE": "drama"}}).encode() + b"\n"
        for i in range(start, start + count)
    )


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[bytes], IO[bytes], Path]:
    """Start the command with a stdin pipe the test keeps open and stderr in a file (never a full pipe)."""
    err_path = cwd / "stderr.txt"
    err = err_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "aiopersonalize_events", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=cwd,
    )
    err.close()
    assert process.stdin is not None
    return process, process.stdin, err_path


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finish(process: subprocess.Popen[bytes], stdin: IO[bytes]) -> int:
    """Wait (briefly) for the process to exit with its input still open; then close everything."""
    try:
        return process.wait(timeout=_PROMPTLY)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("the command did not exit while its input stayed open")
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def not_read_from(stderr: str) -> int:
    found = re.search(r"input not read from line (\d+) on", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_a_signal_stops_reading_an_input_that_stays_open(
    emulator: Emulator, tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    """A signal stops intake at once while input keeps coming; exit 143/130; the summary says from which line."""
    args = ["put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--rate", "0"]
    process, stdin, err = start([*args, "--failed-out", "failed.jsonl", "-"], tmp_path)
    stdin.write(item_lines(0, 30))
    stdin.flush()
    wait_until(lambda: len(emulator.items(ARN)) == 30, "the first 30 items")
    process.send_signal(signum)
    for i in range(30, 2000, 10):  # the writer goes on writing, as tail -f does
        try:
            stdin.write(item_lines(i, 10))
            stdin.flush()
        except BrokenPipeError:
            break
        if process.poll() is not None:
            break
    assert finish(process, stdin) == status, err.read_text()
    stderr = err.read_text()
    unread = not_read_from(stderr)
    failed = read_jsonl(tmp_path / "failed.jsonl")
    stored = {item["itemId"] for item in emulator.items(ARN)}
    # every line before the first not read is stored or in --failed-out; none twice
    assert {entry["line"] for entry in failed} | {int(i.split("-")[1]) + 1 for i in stored} == set(range(1, unread))
    assert len(failed) + len(stored) == unread - 1
    assert all(entry["reason"].startswith("not sent: ") for entry in failed)
    assert "Fatal Python error" not in stderr
    assert "Traceback" not in stderr


def test_a_refusal_no_record_can_escape_stops_reading_an_input_that_stays_open(tmp_path: Path) -> None:
    """A 404 (--setup-wait 0) stops intake at once: exit 1 without waiting for the end of the input; lines kept."""
    with Emulator(tracking_ids=["known"]) as emulator:
        args = ["put-events", "--tracking-id", "unknown", "--endpoint-url", emulator.endpoint_url, "--setup-wait", "0"]
        process, stdin, err = start([*args, "--failed-out", "failed.jsonl", "-"], tmp_path)
        lines = [{"sessionId": "s", "eventType": "click", "sentAt": 1_700_000_000 + i} for i in range(25)]
        stdin.write(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        stdin.flush()
        status = finish(process, stdin)
    stderr = err.read_text()
    assert status == 1, stderr
    assert "stopped after ResourceNotFoundException" in stderr
    unread = not_read_from(stderr)
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert sorted(entry["line"] for entry in failed) == list(range(1, unread))
    assert any(entry["reason"].startswith("ResourceNotFoundException") for entry in failed)


class _HeldServer:
    """An HTTP server on 127.0.0.1 that takes each request and answers only when released."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                held.arrived.set()
                held.release.wait(_TIMEOUT)
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _HeldServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_second_signal_exits_promptly_with_a_call_in_flight(tmp_path: Path) -> None:
    """SIGTERM waits for a call in flight; a second SIGTERM exits at once with 143 (not an aborted interpreter)."""
    with _HeldServer() as server:
        args = ["put-items", "--dataset-arn", ARN, "--endpoint-url", server.url, "--rate", "0"]
        process, stdin, err = start([*args, "--failed-out", "failed.jsonl", "-"], tmp_path)
        stdin.write(item_lines(0, 10))  # one full call
        stdin.flush()
        assert server.arrived.wait(_TIMEOUT)
        process.send_signal(signal.SIGTERM)
        # the first signal was handled (two signals sent before that would arrive as one): the run says so, and
        # waits for the call in flight
        wait_until(lambda: "terminated" in err.read_text() or process.poll() is not None, "the first SIGTERM")
        assert process.poll() is None, err.read_text()
        process.send_signal(signal.SIGTERM)
        status = finish(process, stdin)
    stderr = err.read_text()
    assert status == 143, stderr
    assert "Fatal Python error" not in stderr
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert sorted(entry["line"] for entry in failed) == list(range(1, 11))
    assert all("interrupted while in flight" in entry["reason"] for entry in failed)
    assert not_read_from(stderr) == 11
