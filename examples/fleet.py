"""A fleet on one machine, without docker: a redis-server, two app processes recording, two forwarders, the emulator.

    python examples/fleet.py                         # everything local: needs redis-server on PATH (Redis 7)
    python examples/fleet.py --events 20000          # more events per app
    python examples/fleet.py --redis redis://127.0.0.1:6379/0   # a Redis already running
    python examples/fleet.py --endpoint-url http://127.0.0.1:4566  # an emulator started elsewhere

What runs, each in its own process:

1. ``redis-server`` on a free loopback port, its files in a temporary
   directory (unless ``--redis`` names one);
2. the emulator, ``python -m aiopersonalize_events.emulator`` (unless
   ``--endpoint-url``, default ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, else
   ``AWS_ENDPOINT_URL``, names one);
3. two forwarders, ``aiopersonalize-events forward --redis URL --stream S
   --group fleet --tracking-id T --consumer forwarder-N --endpoint-url URL``;
4. two apps, ``examples/fleet_app.py``, each recording ``--events`` events
   through ``client.event_recorder(spool=RedisStreamSpool(URL, stream=S))``.

When every event is in the emulator (``GET /_emulator/records/events``), the
forwarders get SIGTERM (they finish their calls and exit 0), and the script
prints what each part did. Against AWS, run the forwarders without
``--endpoint-url`` and with your tracker's id: the apps do not change.

Exit status 0 when every recorded event reached the emulator exactly once, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACKING_ID = "fleet-tracker"
STREAM = "pe:{events:fleet-tracker}"  # the hash tag keeps the stream and its dead letters in one cluster slot


def configured_endpoint() -> str | None:
    """The endpoint the environment names for Personalize Events, as the AWS SDKs read it, or None."""
    return os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS") or os.environ.get("AWS_ENDPOINT_URL") or None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_redis(directory: str) -> tuple[asyncio.subprocess.Process, str]:
    """``redis-server`` on a free loopback port, append-only file on, files in ``directory``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server (or pass --redis URL)")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        directory,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--logfile",
        str(Path(directory) / "redis.log"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return process, f"redis://127.0.0.1:{port}/0"
    process.kill()
    raise SystemExit("redis-server did not start")


async def start_emulator() -> tuple[asyncio.subprocess.Process, str]:
    """The emulator on a free loopback port; its URL is the first line it prints."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiopersonalize_events.emulator",
        "--port",
        "0",
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    return process, url


async def start_forwarder(redis_url: str, endpoint: str, name: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiopersonalize_events",
        "forward",
        "--redis",
        redis_url,
        "--stream",
        STREAM,
        "--group",
        "fleet",
        "--tracking-id",
        TRACKING_ID,
        "--consumer",
        name,
        "--endpoint-url",
        endpoint,
        "--quiet",
        stderr=asyncio.subprocess.PIPE,
    )


async def run_app(redis_url: str, events: int, name: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fleet_app.py"),
        "--redis",
        redis_url,
        "--stream",
        STREAM,
        "--tracking-id",
        TRACKING_ID,
        "--events",
        str(events),
        "--name",
        name,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # the emulator, on loopback
        return json.loads(answer.read())


async def emulator_state(endpoint: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    events = await asyncio.to_thread(_get, f"{endpoint}/_emulator/records/events?trackingId={TRACKING_ID}")
    calls = await asyncio.to_thread(_get, f"{endpoint}/_emulator/calls")
    return events, calls


async def fleet(events: int, redis_url: str | None, endpoint: str | None, timeout: float) -> int:
    started: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="fleet-redis-") as directory:
        try:
            if redis_url is None:
                redis, redis_url = await start_redis(directory)
                started.append(redis)
            if endpoint is None:
                emulator, endpoint = await start_emulator()
                started.append(emulator)
            print(f"redis {redis_url}, emulator {endpoint}, stream {STREAM}", flush=True)
            forwarders = [await start_forwarder(redis_url, endpoint, f"forwarder-{n}") for n in (1, 2)]
            began = time.perf_counter()
            apps = await asyncio.gather(*(run_app(redis_url, events, f"app-{n}") for n in (1, 2)))
            for app in apps:
                print(json.dumps(app), flush=True)
            total = sum(app["in_redis"] for app in apps)
            stored: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                stored, calls = await emulator_state(endpoint)
                if len(stored) >= total:
                    break
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - began
            for process in forwarders:
                process.send_signal(signal.SIGTERM)
            for n, process in enumerate(forwarders, 1):
                assert process.stderr is not None
                log = (await process.stderr.read()).decode().strip().splitlines()
                status = await process.wait()
                print(f"forwarder-{n}: exit {status}; {log[-1] if log else ''}", flush=True)
            stored, calls = await emulator_state(endpoint)
            ids = [event["eventId"] for event in stored]
            print(
                f"{total} events recorded, {len(stored)} stored by the emulator ({len(set(ids))} distinct) in "
                f"{seconds:.1f}s; {calls['duplicates']} resent; calls: "
                + ", ".join(f"{c['operation']} {c['status']} x{c['count']}" for c in calls["calls"]),
                flush=True,
            )
            return 0 if len(stored) == len(set(ids)) == total else 1
        finally:
            for process in started:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                await process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Two apps record into Redis, two forwarders send to the emulator: a fleet on one machine."
    )
    parser.add_argument("--events", type=int, default=5000, help="events each app records (default: 5000)")
    parser.add_argument("--redis", metavar="URL", help="use this Redis instead of starting redis-server")
    parser.add_argument(
        "--endpoint-url",
        default=configured_endpoint(),
        metavar="URL",
        help="send to this emulator instead of starting one (default: AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, "
        "else AWS_ENDPOINT_URL)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every event (default: 120)")
    args = parser.parse_args(argv)
    return asyncio.run(fleet(args.events, args.redis, args.endpoint_url, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
