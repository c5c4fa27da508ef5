"""The command line's runs on the delivery engine: one probe with the budget empty, set-up errors held, not failed.

Every test counts calls at a server (the emulator, or a small aiohttp server
on 127.0.0.1); none decides by elapsed time.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from aiopersonalize_events import ClientConfig, PersonalizeEventsClient
from aiopersonalize_events import _operations as ops
from aiopersonalize_events._credentials import Credentials
from aiopersonalize_events.cli import EXIT_INTERRUPTED
from aiopersonalize_events.cli.console import Console
from aiopersonalize_events.cli.failed import FailedOut
from aiopersonalize_events.cli.feed import LineFeed
from aiopersonalize_events.cli.run import Run
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.errors import NoCredentialsError

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/cli/ITEMS"
_TIMEOUT = 60.0


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def item_lines(count: int) -> list[str]:
    return [json.dumps({"itemId": f"item-{i}"}) for i in range(count)]


def event_lines(count: int) -> list[str]:
    return [json.dumps({"sessionId": "s", "eventType": "click", "sentAt": 1_700_000_000 + i}) for i in range(count)]


async def run_lines(
    tmp_path: Path,
    op: ops.Operation,
    resource: str,
    lines: Sequence[str],
    client: Any,
    *,
    concurrency: int = 4,
    meanwhile: Callable[[Run], Awaitable[None]] | None = None,
) -> tuple[Run, list[dict[str, Any]], str]:
    """One in-process run over ``lines`` (``meanwhile(run)`` beside it); the run, --failed-out, what was said."""
    source = write_lines(tmp_path / "input.jsonl", lines)
    fd = os.open(source, os.O_RDONLY)
    failed_path = tmp_path / "failed.jsonl"
    failed = FailedOut.open(str(failed_path))
    feed = LineFeed(fd, asyncio.get_running_loop())
    said = io.StringIO()
    try:
        run = Run(
            op, resource=resource, feed=feed, console=Console(said), failed=failed, client=client,
            concurrency=concurrency, rate=None,
        )  # fmt: skip
        beside = None if meanwhile is None else asyncio.create_task(meanwhile(run))
        await asyncio.wait_for(run.go(), _TIMEOUT)
        if beside is not None:
            await asyncio.wait_for(beside, _TIMEOUT)
    finally:
        feed.close()
        failed.close()
        os.close(fd)
    return run, read_jsonl(failed_path), said.getvalue()


class _DownServer:
    """503 to the first ``down`` calls, then 200; counts calls at once after the first ``wave`` (failing together)."""

    def __init__(self, down: int, wave: int) -> None:
        self.down = down
        self.wave = wave
        self.calls = 0
        self.flying = 0
        self.most_after_wave = 0
        self.gate = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        number = self.calls
        self.flying += 1
        try:
            if number <= self.wave:  # the first calls are held until all have come: they fail together
                if number == self.wave:
                    self.gate.set()
                await self.gate.wait()
            else:
                self.most_after_wave = max(self.most_after_wave, self.flying)
                await asyncio.sleep(0.01)  # room for a second call to overlap, if the engine let one go
        finally:
            self.flying -= 1
        if number <= self.down:
            return web.json_response({"__type": "ServiceUnavailable", "message": "down"}, status=503)
        return web.json_response({})


async def test_with_the_budget_empty_and_the_service_down_one_probe_is_in_flight(
    tmp_path: Path, personalize_no_retry_waits: None
) -> None:
    """Four batches fail at once, the budget cannot pay: from then on one call at a time, until the service is back."""
    server = _DownServer(down=4 + 12, wave=4)
    app = web.Application()
    app.router.add_post("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = ClientConfig(max_attempts=1, retry_budget=1)  # a 5xx retry costs more than the budget holds
    client = PersonalizeEventsClient(
        region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", credentials=Credentials("AKID", "SECRET"),
        config=config,
    )  # fmt: skip
    try:
        async with client:
            run, failed, _ = await run_lines(tmp_path, ops.PUT_ITEMS, ARN, item_lines(40), client, concurrency=4)
    finally:
        await runner.cleanup()
    assert server.calls == 4 + 12 + 4  # the wave, twelve failed probes, then each batch once more
    assert server.most_after_wave == 1
    assert failed == []
    assert run.sent == 40
    assert run.exit_status() == 0


async def test_an_unknown_tracking_id_holds_the_events_until_it_exists(
    tmp_path: Path, personalize_no_retry_waits: None
) -> None:
    """404 ResourceNotFoundException: held (not failed), one ERROR line with the fix; delivered once it exists."""
    with Emulator(tracking_ids=["known"]) as emulator:
        client = PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKID", "SECRET")
        )

        async def create_the_tracker() -> None:
            while emulator.calls[("PutEvents", 404)] < 5:  # noqa: ASYNC110 (counted in the emulator's thread)
                await asyncio.sleep(0.01)
            emulator.register(tracking_ids=["late"])

        async with client:
            creating = asyncio.create_task(create_the_tracker())
            run, failed, said = await run_lines(tmp_path, ops.PUT_EVENTS, "late", event_lines(25), client)
            await creating
        stored = emulator.events("late")
        refusals = emulator.calls[("PutEvents", 404)]
    assert failed == []
    assert len(stored) == 25
    assert run.sent == 25
    assert run.exit_status() == 0
    assert refusals >= 5
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, said
    assert "ResourceNotFoundException" in errors[0]
    assert "held (not failed)" in errors[0]
    assert "calls are accepted again" in said


async def test_a_signal_while_records_are_held_leaves_them_unsent_with_the_error_and_its_fix(
    tmp_path: Path, personalize_no_retry_waits: None
) -> None:
    """SIGINT during a set-up hold: every record in --failed-out, retryable, the held ones naming the error and fix."""
    with Emulator(tracking_ids=["known"]) as emulator:
        client = PersonalizeEventsClient(
            region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKID", "SECRET")
        )

        async def interrupt(run: Run) -> None:
            while emulator.calls[("PutEvents", 404)] < 3:  # noqa: ASYNC110 (counted in the emulator's thread)
                await asyncio.sleep(0.01)
            run.on_signal("interrupted", EXIT_INTERRUPTED)

        async with client:
            run, failed, said = await run_lines(
                tmp_path, ops.PUT_EVENTS, "missing", event_lines(25), client, meanwhile=interrupt
            )
        stored = emulator.events("missing")
    assert stored == []
    assert run.exit_status() == EXIT_INTERRUPTED
    unread = 25 - run.feed.lines_read
    assert sorted(e["line"] for e in failed) == list(range(1, 26 - unread))
    assert all(e["retryable"] for e in failed)
    held = [e for e in failed if e["reason"].startswith("ResourceNotFoundException")]
    assert held
    assert all("not sent: interrupted; to fix:" in e["reason"] for e in held)
    assert len([line for line in said.splitlines() if line.startswith("error:")]) == 1


class _LateProvider:
    """A credential provider with nothing to give for its first ``empty`` calls (as before a file is written)."""

    def __init__(self, empty: int) -> None:
        self.empty = empty
        self.asked = 0

    async def resolve(self) -> Credentials:
        self.asked += 1
        if self.asked <= self.empty:
            raise NoCredentialsError("no AWS credentials found", sources=("environment: not set",))
        return Credentials("AKID", "SECRET")


async def test_no_credentials_hold_the_records_until_a_provider_answers(
    tmp_path: Path, personalize_no_retry_waits: None
) -> None:
    """NoCredentialsError mid-run: nothing failed, one ERROR line naming the fix; sent once credentials come."""
    provider = _LateProvider(empty=6)
    with Emulator() as emulator:
        client = PersonalizeEventsClient(region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=provider)
        async with client:
            run, failed, said = await run_lines(tmp_path, ops.PUT_ITEMS, ARN, item_lines(35), client)
        stored = emulator.items(ARN)
        calls = dict(emulator.calls)
    assert failed == []
    assert len(stored) == 35
    assert run.sent == 35
    assert run.exit_status() == 0
    assert calls == {("PutItems", 200): 4}  # nothing reached the service without credentials
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, said
    assert "NoCredentialsError" in errors[0] or "no AWS credentials" in errors[0]
    assert "AWS_ACCESS_KEY_ID" in errors[0]  # the fix


def _environ(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        }
    )
    return environ


def test_a_rejected_token_holds_the_run_until_a_credentials_file_appears(tmp_path: Path) -> None:
    """The service rejects the keys (403): the run holds, prints one ERROR line; a credentials file written then
    makes it deliver every record and exit 0."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(30))
    err_path = tmp_path / "stderr.txt"
    with Emulator(credentials={"AKIDGOOD": "good-secret"}) as emulator, err_path.open("wb") as err:
        args = ["put-items", "--dataset-arn", ARN, "--endpoint-url", emulator.endpoint_url, "--rate", "0"]
        process = subprocess.Popen(
            [sys.executable, "-m", "aiopersonalize_events", *args, "--failed-out", "failed.jsonl", str(source)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env=_environ(tmp_path),
        )
        try:
            deadline = time.monotonic() + _TIMEOUT
            while "error:" not in err_path.read_text() and process.poll() is None:
                assert time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.02)
            assert process.poll() is None, err_path.read_text()
            (tmp_path / "credentials").write_text(
                "[default]\naws_access_key_id = AKIDGOOD\naws_secret_access_key = good-secret\n", encoding="utf-8"
            )
            status = process.wait(timeout=_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stored = emulator.items(ARN)
        rejected = emulator.calls[("PutItems", 403)]
    stderr = err_path.read_text()
    assert status == 0, stderr
    assert len(stored) == 30
    assert rejected >= 1
    assert read_jsonl(tmp_path / "failed.jsonl") == []
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "UnrecognizedClientException" in errors[0]
    assert "good-secret" not in stderr


def test_a_set_up_error_not_fixed_within_setup_wait_leaves_every_record_unsent_and_exits_1(tmp_path: Path) -> None:
    """An unknown tracking id never created: after --setup-wait the run stops; every line is in --failed-out,
    retryable, the held ones with the error and its fix as the reason; exit 1."""
    source = write_lines(tmp_path / "events.jsonl", event_lines(45))
    with Emulator(tracking_ids=["known"]) as emulator:
        args = ["put-events", "--tracking-id", "missing", "--endpoint-url", emulator.endpoint_url, "--rate", "0"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "aiopersonalize_events",
                *args,
                "--setup-wait",
                "0.5",
                "--failed-out",
                "f.jsonl",
                str(source),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_environ(tmp_path),
            timeout=_TIMEOUT,
        )
        refusals = emulator.calls[("PutEvents", 404)]
    assert result.returncode == 1, result.stderr
    assert "stopped after ResourceNotFoundException" in result.stderr
    assert refusals >= 1
    entries = read_jsonl(tmp_path / "f.jsonl")
    summary = result.stderr.strip().splitlines()[-1]
    unread = int(summary.rsplit("input not read from line ", 1)[1].split()[0]) if "not read from" in summary else 46
    assert sorted(e["line"] for e in entries) == list(range(1, unread))
    assert all(e["retryable"] for e in entries)
    held = [e for e in entries if e["reason"].startswith("ResourceNotFoundException")]
    assert held
    assert all("to fix:" in e["reason"] for e in held)
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
