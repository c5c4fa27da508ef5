"""python -m aiopersonalize_events.emulator: served from a shell, one log line per call, clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator.__main__ import main

_TIMEOUT = 30.0


async def test_shell_entry_serves_logs_and_stops() -> None:
    """The module prints its URL, serves a verified call, logs it on one line (no secret) and exits 0 on SIGTERM."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiopersonalize_events.emulator",
        "--port",
        "0",
        "--credentials",
        "AKIDTEST:shell-secret",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), _TIMEOUT)
        url = line.decode().strip()
        assert url.startswith("http://127.0.0.1:")
        credentials = Credentials("AKIDTEST", "shell-secret")
        async with PersonalizeEventsClient(region="us-east-1", endpoint_url=url, credentials=credentials) as client:
            meta = await client.put_events(
                tracking_id="t",
                session_id="s",
                event_list=[Event(event_type="e", sent_at=1), Event(event_type="f", sent_at=2)],
            )
        assert meta.http_status == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), _TIMEOUT)
    log = stderr.decode()
    assert process.returncode == 0
    assert "PutEvents 200 records=2" in log
    assert "signatures verified" in log
    assert "shell-secret" not in log


def test_main_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad option values are usage errors (exit status 2) and name the problem."""
    with pytest.raises(SystemExit) as info:
        main(["--throttle", "1.5"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--credentials", "no-colon"])
    assert main(["--throttle", "0.6", "--server-error", "0.6"]) == 2
    assert "must not exceed 1" in capsys.readouterr().err
