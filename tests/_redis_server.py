"""A real ``redis-server`` for tests, and the worker processes the fleet tests start.

``RedisServer(directory)`` runs Debian's ``redis-server`` (Redis 7) on a free
loopback port with its files in ``directory``: ``start()``, ``stop()``,
``kill()`` (SIGKILL), ``pause()``/``resume()`` (SIGSTOP/SIGCONT) and
``restart()`` on the same port (with ``appendonly=True`` the data comes back
from the append-only file, fsynced on every write). ``find_redis_server()``
finds the binary; when it is missing, the ``redis_server`` fixture (in
``conftest.py``) fails, saying how to install it (never skips: the README's
test command and ``.ci/run`` install it). ``until`` waits for a condition
(bounded), ``windows`` counts the busiest one-second window.

Run as a script, this module is a worker process of the fleet tests:

    python tests/_redis_server.py items EMULATOR_URL DATASET_ARN CALLS [REDIS_URL KEY]

sends CALLS PutItems calls of ten items through ``put_items_batched``, paced
by a ``RedisRateLimiter`` on REDIS_URL/KEY (10 calls/s) or, without them, by
the client's own default (10 calls/s in this process), one attempt per call,
and prints one JSON object: each call's local time and Redis slot time, and
the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RedisServer", "find_redis_server", "free_port", "until", "windows"]

STARTUP_TIMEOUT = 15.0


def find_redis_server() -> str | None:
    """The path of ``redis-server``, or None."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int, pid: int, timeout: float = 0.5) -> bool:
    """The redis-server with process id ``pid`` answers on ``port`` (not another test session's, started on a port
    both found free at once: CI runs two suites side by side)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"INFO server\r\n")
            answer = b""
            while b"process_id:" not in answer or not answer.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return f"process_id:{pid}\r\n".encode() in answer
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 with its files in ``directory``."""

    def __init__(self, directory: Path, *, appendonly: bool = False, binary: str | None = None) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server")
        self.binary = found
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING (a port taken meanwhile: another free port)."""
        for _ in range(3):
            args = [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                "--logfile",
                str(self.directory / "redis.log"),
            ]
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if _ping(self.port, self.process.pid):
                    return
                time.sleep(0.02)
            self._reap()
            if self.process is not None and self.process.returncode not in (None, 0):
                self.port = free_port()  # most likely the port was taken meanwhile
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")

    def _reap(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM (Redis writes what it must and exits), SIGKILL after 10 s."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        if self.paused:
            self.resume()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def kill(self) -> None:
        """SIGKILL: nothing written that was not already."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, *, kill: bool = True) -> None:
        """Kill (or stop) and start again on the same port, with the same files."""
        self.kill() if kill else self.stop()
        self.start()

    def command(self, *args: str) -> bytes:
        """One command through a plain socket (inline protocol), answer unparsed: for checks without a client."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            return sock.recv(65536)


async def until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait for ``predicate()`` (a value or an awaitable) to hold, polled every 20 ms; fail after ``timeout``."""
    import pytest

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def windows(times: list[float], width: float = 1.0) -> int:
    """The largest number of ``times`` in any half-open window ``[t, t + width)``."""
    ordered = sorted(times)
    best = 0
    end = 0
    for start, t in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] < t + width:
            end += 1
        best = max(best, end - start)
    return best


# -- worker processes -----------------------------------------------------------------------------------


async def _items(endpoint: str, dataset_arn: str, calls: int, redis_url: str | None, key: str | None) -> dict[str, Any]:
    from aiopersonalize_events import ClientConfig, Credentials, Item, PersonalizeEventsClient
    from aiopersonalize_events._batching import RateLimiter

    stamps: list[tuple[float, float | None]] = []
    inner: Any
    if redis_url is not None and key is not None:
        from aiopersonalize_events.redis import RedisRateLimiter

        inner = RedisRateLimiter(redis_url, key=key, rate=10)
    else:
        inner = RateLimiter(10)

    class Stamped:
        async def acquire(self) -> None:
            await inner.acquire()
            stamps.append((time.time(), getattr(inner, "last_slot", None)))

    items = [Item(item_id=f"{os.getpid()}-{i}", properties={"n": i}) for i in range(10 * calls)]
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=endpoint,
        credentials=Credentials("AKIDFLEETTEST", "fleet-test-secret"),
        config=ClientConfig(max_attempts=1),  # a throttled call fails at once: counted, not hidden
    )
    async with client:
        result = await client.put_items_batched(
            dataset_arn=dataset_arn, items=items, requests_per_second=Stamped(), max_concurrency=2
        )
    if hasattr(inner, "close"):
        await inner.close()
    return {"stamps": stamps, "sent": result.sent, "failed": result.failed, "calls": result.calls}


def main(argv: list[str]) -> int:
    role = argv[0]
    if role == "items":
        endpoint, dataset_arn, calls = argv[1], argv[2], int(argv[3])
        redis_url = argv[4] if len(argv) > 4 else None
        key = argv[5] if len(argv) > 5 else None
        print(json.dumps(asyncio.run(_items(endpoint, dataset_arn, calls, redis_url, key))), flush=True)
        return 0
    print(f"unknown role {role!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
