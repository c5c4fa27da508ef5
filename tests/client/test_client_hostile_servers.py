"""Slow and hostile servers: every misbehaviour gives the client a clear error, in bounded time and
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import tracemalloc
import zlib
from typing import Any

import attrs
import pytest
from _hostile_servers import (
    HANG_GUARD,
    LIMIT,
    READ_TIMEOUT,
    Behaviour,
    _client,
    _no_retry_waits,  # noqa: F401 (an autouse fixture: imported, it applies here)
    never_answers,
    serving,
)

from aiopersonalize_events import (
    ConnectionClosedError,
    InvalidResponseError,
    Item,
    PersonalizeEventsError,
    ReadTimeoutError,
    ServiceError,
    ThrottlingException,
    TransportError,
)

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
MEMORY_BOUND = 4 * LIMIT + 4 * 1024 * 1024  # what one call may hold at its peak, whatever the server sends


# -- the misbehaviours -----------------------------------------------------------------------------------------


async def _wait_forever(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    await writer.drain()
    await stop.wait()
    raise ConnectionResetError  # end the connection


async def _endless_chunks(writer: asyncio.StreamWriter, stop: asyncio.Event, chunk: bytes, pause: float) -> None:
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    while not stop.is_set():
        writer.write(framed)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    raise ConnectionResetError


def endless_body(status: int) -> Behaviour:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
        await _endless_chunks(writer, stop, b"{" * 16384, 0.0)

    return behave


async def trickled_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    await _endless_chunks(writer, stop, b" ", READ_TIMEOUT / 6)


async def huge_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
    block = b"[" * 65536
    while not stop.is_set():
        writer.write(block)
        await writer.drain()
    raise ConnectionResetError


_BOMB: list[bytes] = []


def _gzip_bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB of zeros (made once)."""
    if not _BOMB:
        deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        _BOMB.append(b"".join(deflate.compress(zeros) for _ in range(200)) + deflate.flush())
    return _BOMB[0]


async def gzip_bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    body = _gzip_bomb()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body))
    writer.write(body)
    await _wait_forever(writer, stop)


def answer(status: int, body: bytes, *headers: bytes) -> Behaviour:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nx-amzn-RequestId: hostile-1\r\n" % (status, len(body))
        writer.write(head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body)
        await writer.drain()

    return behave


async def short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
    await writer.drain()
    raise ConnectionResetError  # close after 2 of the 100 announced bytes


async def closes_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    raise ConnectionResetError


async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    raise ConnectionResetError


async def header_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while not stop.is_set():
        writer.write(b"X-Flood: yes\r\n" * 512)
        await writer.drain()
    raise ConnectionResetError


async def endless_header_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
    while not stop.is_set():
        writer.write(b"a" * 4096)
        await writer.drain()
    raise ConnectionResetError


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await _wait_forever(writer, stop)


@attrs.frozen
class Case:
    name: str
    behaviour: Behaviour
    error: type[PersonalizeEventsError]
    attempts: int  # attempts the client makes before giving up (max_attempts is 2)
    status: int | None = None  # the HTTP status a ServiceError must carry


CASES = [
    Case("never answers", never_answers, ReadTimeoutError, 2),
    Case("body trickles a byte at a time", trickled_body, ReadTimeoutError, 2),
    Case("endless chunked 200 body", endless_body(200), InvalidResponseError, 1),
    Case("endless chunked 500 body", endless_body(500), InvalidResponseError, 1),
    Case("10 GB content-length", huge_body, InvalidResponseError, 1),
    Case("gzip bomb (200 MB inflated)", gzip_bomb, InvalidResponseError, 1),
    Case("invalid JSON error body", answer(400, b'{"message": "unterminated'), ServiceError, 1, 400),
    Case(
        "invalid JSON throttling body",
        answer(400, b"{{{", b"x-amzn-ErrorType: ThrottlingException:"),
        ThrottlingException,
        2,
        400,
    ),
    Case("HTML 502 page", answer(502, b"<html><body>Bad Gateway</body></html>"), ServiceError, 2, 502),
    Case("HTML 404 page", answer(404, b"<!DOCTYPE html><title>404</title>"), ServiceError, 1, 404),
    Case("200 with garbage", answer(200, b"\x00\xff garbage \xfe"), InvalidResponseError, 1),
    Case("200 with a JSON array", answer(200, b"[1, 2, 3]"), InvalidResponseError, 1),
    Case("200 with HTML", answer(200, b"<html>captive portal</html>"), InvalidResponseError, 1),
    Case("content-length longer than the body", short_body, ConnectionClosedError, 2),
    Case("closes without a byte", closes_at_once, ConnectionClosedError, 2),
    Case("resets the connection", resets, ConnectionClosedError, 2),
    Case("header flood", header_flood, InvalidResponseError, 1),
    Case("endless header line", endless_header_line, InvalidResponseError, 1),
    Case("not HTTP at all", not_http, InvalidResponseError, 1),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_hostile_server_gives_a_clear_error_in_bounded_time_and_memory(case: Case) -> None:
    """Each misbehaving server yields its one documented error class, after the expected attempts, bounded in memory."""
    async with serving(case.behaviour) as server, _client(server.url) as client:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            base, _ = tracemalloc.get_traced_memory()
            with pytest.raises(PersonalizeEventsError) as caught:
                await asyncio.wait_for(client.put_items(dataset_arn=ARN, items=[Item(item_id="i")]), HANG_GUARD)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        took = time.perf_counter() - started
    error = caught.value
    held = (peak - base) >> 10
    print(f"{case.name}: {type(error).__name__} after {error.attempts} attempt(s), {took:.2f}s, peak {held} KiB")
    assert type(error) is case.error, repr(error)
    assert error.attempts == case.attempts
    assert server.connections >= 1
    assert peak - base < MEMORY_BOUND, f"peak {peak - base} bytes"
    if case.status is not None:
        assert isinstance(error, ServiceError)
        assert error.http_status == case.status
        assert error.request_id == "hostile-1"
    assert isinstance(error, (TransportError, ServiceError))
    assert str(error)


async def test_a_server_that_never_answers_does_not_block_other_calls() -> None:
    """While calls hang on a silent server until read_timeout, the loop keeps serving other work.

    Decided by what the other work saw, not by how many ticks fit in the read timeout: a ticker that takes
    every turn of the loop finds all 20 calls connected at the server and none answered (a loop blocked by a
    call could never run it then, with 20 connections open).
    """
    ticks = 0  # turns of the ticker while all 20 calls hung at the server

    async def ticker(calls: list[asyncio.Task[Any]]) -> None:
        nonlocal ticks
        while True:
            if server.connections == 20 and not any(call.done() for call in calls):
                ticks += 1
            await asyncio.sleep(0)  # every turn of the loop

    async with serving(never_answers) as server, _client(server.url, max_attempts=1) as client:
        calls = [
            asyncio.create_task(client.put_items(dataset_arn=ARN, items=[Item(item_id=f"i{n}")])) for n in range(20)
        ]
        beat = asyncio.create_task(ticker(calls))
        try:
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), HANG_GUARD)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
    assert all(isinstance(r, ReadTimeoutError) for r in results)
    assert ticks >= 1  # the ticker ran while every call hung
    assert server.connections == 20


async def trickled_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.is_set():
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(READ_TIMEOUT / 6)
    raise ConnectionResetError


async def test_headers_trickled_a_byte_at_a_time_end_at_the_attempt_timeout() -> None:
    """A server that trickles its headers (each byte within read_timeout) is cut off by attempt_timeout.

    Decided by what the client reports (a ReadTimeoutError after both attempts), not by how long it took; the
    wait_for is only a hang guard (HANG_GUARD, 10x the two attempts' timeouts), not the property.
    """
    async with serving(trickled_headers) as server, _client(server.url, attempt_timeout=1.0) as client:
        with pytest.raises(ReadTimeoutError) as caught:
            await asyncio.wait_for(client.put_items(dataset_arn=ARN, items=[Item(item_id="i")]), HANG_GUARD)
    assert caught.value.attempts == 2
