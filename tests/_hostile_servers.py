"""A raw TCP server that runs a scripted misbehaviour on each connection, and a client for it (the
hostile-server tests of client and recorder).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    PersonalizeEventsClient,
)

HANG_GUARD = 20.0  # seconds; far above any expected duration, only there to turn a hang into a failure
READ_TIMEOUT = 0.3
LIMIT = 256 * 1024  # max_response_bytes for these tests
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


@pytest.fixture(autouse=True)
def _no_retry_waits(retry_testing: None) -> None:
    """Retries here happen at once (the package's testing switch), the worst case for load."""


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)


class RawServer:
    """A TCP server on 127.0.0.1 that reads each request and then runs ``behaviour`` on the connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._stop = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                while not self._stop.is_set():
                    await _read_request(reader)
                    await self._behaviour(reader, writer, self._stop)
        finally:
            writer.close()
            self._handlers.discard(task)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        if self._handlers:
            _, late = await asyncio.wait(set(self._handlers), timeout=2)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)


@contextlib.asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[RawServer]:
    server = RawServer(behaviour)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _client(url: str, **config: Any) -> PersonalizeEventsClient:
    options: dict[str, Any] = {"max_attempts": 2, "read_timeout": READ_TIMEOUT, "max_response_bytes": LIMIT}
    options.update(config)
    client = PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=url,
        credentials=Credentials("AKIDHOSTILE", "hostile-secret"),
        config=ClientConfig(**options),
    )
    return client


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    await stop.wait()
    raise ConnectionResetError
