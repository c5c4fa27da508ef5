"""A server that trickles its answer's headers a byte at a time is cut off by the header bound
(connect_timeout + read_timeout), not only by the whole attempt's timeout: the call ends with ReadTimeoutError
long before the headers are complete, whatever the waits between bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from _redis_server import until
from _scripted_server import make_client

from aiopersonalize_events import ClientConfig, Event, ReadTimeoutError

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: trickled\r\n"
    + b"".join(b"x-padding-%03d: %s\r\n" % (i, b"p" * 20) for i in range(12))
    + b"Content-Length: 2\r\n\r\n{}"
)
"""About 450 bytes of an otherwise good answer."""


class Trickler:
    """A raw asyncio server on 127.0.0.1: reads a request, then sends ``HEAD`` one byte per ``gap`` seconds."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.sent = 0
        self.connections = 0
        self.finished = 0
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            for byte in HEAD:
                writer.write(bytes([byte]))
                await writer.drain()
                self.sent += 1
                await asyncio.sleep(self.gap)
            self.finished += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up and closed: what we want
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()


@pytest.fixture
async def trickler() -> AsyncIterator[Trickler]:
    trickle = Trickler(gap=0.02)
    server = await asyncio.start_server(trickle.handle, "127.0.0.1", 0)
    trickle.port = server.sockets[0].getsockname()[1]
    yield trickle
    server.close()
    for handler in trickle.handlers:  # a handler still trickling ends here, its writer closed, in this loop
        handler.cancel()
    await asyncio.gather(*trickle.handlers, return_exceptions=True)
    await server.wait_closed()


async def test_trickled_headers_end_the_call_at_the_header_bound(trickler: Trickler) -> None:
    """A byte every 0.02 s, each well within read_timeout (0.5 s), no attempt bound: the call still fails with
    ReadTimeoutError after a small part of the headers (the bound is 0.55 s; all of them take 9 s); one attempt,
    one connection, the answer never finished."""
    config = ClientConfig(connect_timeout=0.05, read_timeout=0.5, attempt_timeout=None, max_attempts=1)
    async with make_client(None, endpoint_url=f"http://127.0.0.1:{trickler.port}", config=config) as client:
        with pytest.raises(ReadTimeoutError):
            await client.put_events(
                tracking_id="t", session_id="s", event_list=[Event(event_type="click", sent_at=1_700_000_000)]
            )
    assert trickler.connections == 1
    assert trickler.finished == 0
    assert trickler.sent < len(HEAD) // 2, (trickler.sent, len(HEAD))  # cut off, not read to the end


async def test_headers_that_arrive_within_the_bound_are_read(trickler: Trickler) -> None:
    """The same server with a generous read_timeout: the trickled answer is read and the call succeeds."""
    config = ClientConfig(read_timeout=60.0, max_attempts=1)
    trickler.gap = 0.0
    async with make_client(None, endpoint_url=f"http://127.0.0.1:{trickler.port}", config=config) as client:
        meta = await client.put_events(
            tracking_id="t", session_id="s", event_list=[Event(event_type="click", sent_at=1_700_000_000)]
        )
    assert meta.request_id == "trickled"
    assert trickler.sent == len(HEAD)


async def test_a_call_cancelled_while_headers_trickle_is_cancelled_not_timed_out(trickler: Trickler) -> None:
    """The header bound never turns a caller's cancel into a ReadTimeoutError: the task ends cancelled."""
    config = ClientConfig(read_timeout=60.0, max_attempts=1)
    async with make_client(None, endpoint_url=f"http://127.0.0.1:{trickler.port}", config=config) as client:
        call = asyncio.ensure_future(
            client.put_events(
                tracking_id="t", session_id="s", event_list=[Event(event_type="click", sent_at=1_700_000_000)]
            )
        )
        await until(lambda: trickler.sent >= 3, what="the headers to begin")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert trickler.finished == 0
