"""examples/fleet.py runs as written: its own redis-server and emulator, or ones started elsewhere."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from _redis_server import RedisServer

from aiopersonalize_events.emulator import Emulator

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
FLEET = ROOT / "examples" / "fleet.py"


def test_the_fleet_example_starts_everything_itself(redis_server: RedisServer) -> None:
    """Redis, the emulator, two apps and two forwarders: every event stored once, both forwarders exit 0."""
    del redis_server  # only for the check that redis-server is installed (the example starts its own)
    result = subprocess.run(
        [sys.executable, str(FLEET), "--events", "400"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    apps = [json.loads(line) for line in lines if line.startswith("{")]
    assert [app["in_redis"] for app in apps] == [400, 400]
    assert sum(line.startswith("forwarder-") and "exit 0" in line for line in lines) == 2
    assert "800 events recorded, 800 stored by the emulator (800 distinct)" in lines[-1]


async def test_the_fleet_example_uses_a_redis_and_an_emulator_started_elsewhere(redis_server: RedisServer) -> None:
    """--redis and --endpoint-url: the example sends there, and the emulator holds the events afterwards."""
    async with Emulator() as emulator:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FLEET),
            "--events",
            "150",
            "--redis",
            redis_server.url,
            "--endpoint-url",
            emulator.endpoint_url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, out.decode() + err.decode()
        assert len(emulator.events("fleet-tracker")) == 300
        assert emulator.duplicates == 0


def test_the_fleet_benchmark_runs_at_a_tiny_size(redis_server: RedisServer) -> None:
    """python -m benchmarks.fleet, 2 producers x 300 events and 1 forwarder: both set-ups deliver every event."""
    del redis_server  # only for the check that redis-server is installed (the benchmark starts its own)
    tiny = ["--events", "300", "--reps", "1", "--producers", "2", "--forwarders", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.fleet", *tiny],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| end-to-end events/s (into the emulator) |" in result.stdout
    assert "| events sent twice (duplicates) | 0 | 0 |" in result.stdout
