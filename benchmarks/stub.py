"""A stub of the Personalize Events endpoint: answers every request 200 ``{}``, checks nothing.

Two implementations of the same behaviour, so the harness can measure which
costs less server CPU per request and use that one:

``raw``
    an ``asyncio.Protocol`` speaking just enough HTTP/1.1: keep-alive,
    pipelined requests, ``Content-Length`` and chunked bodies, ``Expect:
    100-continue`` and ``Connection: close``.
``aiohttp``
    the same answers from ``aiohttp.web``.

Both count requests, body bytes and events (occurrences of ``"eventType"``
in the bodies, so the harness can check that what a client says it sent
arrived; in a chunked body a marker split across two chunks is missed, and
no client here sends chunked bodies), and answer ``GET /__stats`` with those counters and the server's
own CPU seconds as JSON (that request is not counted).

Run as ``python -m benchmarks.stub --kind raw --port 0``: it prints
``STUB <port>`` on stdout once listening, serves on 127.0.0.1 only, and exits
on SIGTERM/SIGINT, when its parent process goes away, or after
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

__all__ = ["Counters", "RawHttpStub", "main", "serve"]

HOST = "127.0.0.1"
_HEAD_END = b"\r\n\r\n"
_EVENT_MARK = b'"eventType"'
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nx-amzn-RequestId: "
_OK_TAIL = b"\r\n\r\n{}"
_CLOSE_TAIL = b"\r\nConnection: close\r\n\r\n{}"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Counters:
    """What the stub has received since it started."""

    __slots__ = ("body_bytes", "connections", "events", "reads", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.reads = 0
        self.body_bytes = 0
        self.events = 0
        self.connections = 0

    def snapshot(self) -> dict[str, Any]:
        """The counters and the server's CPU time, as the ``/__stats`` answer holds them."""
        return {
            "requests": self.requests,
            "body_bytes": self.body_bytes,
            "events": self.events,
            "connections": self.connections,
            "reads": self.reads,
            "cpu_s": time.process_time(),
            "pid": os.getpid(),
        }


def _request_id(n: int) -> bytes:
    # the shape of a real request id (a UUID); unique per request, cheap to make
    return b"%08x-0000-4000-8000-%012x" % (n & 0xFFFFFFFF, n)


def _stats_answer(counters: Counters) -> bytes:
    body = json.dumps(counters.snapshot()).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class RawHttpStub(asyncio.Protocol):
    """One connection: parse each request's head, consume its body, answer ``200 {}``.

    Several requests may arrive in one read (pipelining) and one request may
    span many reads; answers go out in order, batched into one write per read.
    """

    __slots__ = ("_buf", "_continued", "_counters", "_transport")

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._counters.connections += 1

    def data_received(self, data: bytes) -> None:
        self._counters.reads += 1
        buf = self._buf
        buf += data
        out: list[bytes] = []
        close = False
        while buf:
            end = buf.find(_HEAD_END)
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            body_start = end + 4
            if head.startswith(b"get /__stats "):
                del buf[:body_start]
                out.append(_stats_answer(self._counters))
                continue
            length, chunked = _body_framing(head)
            if length < 0:
                out.append(_BAD_REQUEST)
                close = True
                break
            if chunked:
                total = _chunked_end(buf, body_start)
                if total < 0:
                    self._maybe_continue(head, out)
                    break
                body_len = total - body_start  # with the chunk framing; close enough for a counter
            else:
                total = body_start + length
                if len(buf) < total:
                    self._maybe_continue(head, out)
                    break
                body_len = length
            counters = self._counters
            counters.requests += 1
            counters.body_bytes += body_len
            counters.events += buf.count(_EVENT_MARK, body_start, total)
            self._continued = False
            del buf[:total]
            if b"\r\nconnection: close" in head:
                out.append(_OK_HEAD + _request_id(counters.requests) + _CLOSE_TAIL)
                close = True
                break
            out.append(_OK_HEAD + _request_id(counters.requests) + _OK_TAIL)
        transport = self._transport
        if transport is None:
            return
        if out:
            transport.write(b"".join(out))
        if close:
            transport.close()

    def _maybe_continue(self, head: bytes, out: list[bytes]) -> None:
        if not self._continued and b"\r\nexpect: 100-continue" in head:
            self._continued = True
            out.append(_CONTINUE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._buf.clear()


def _body_framing(head: bytes) -> tuple[int, bool]:
    """(Content-Length, chunked?) of a lower-cased request head; (-1, False) when malformed."""
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        start = i + 17
        stop = head.find(b"\r\n", start)
        try:
            return int(head[start : stop if stop >= 0 else len(head)]), False
        except ValueError:
            return -1, False
    if b"\r\ntransfer-encoding:" in head and b"chunked" in head:
        return 0, True
    return 0, False


def _chunked_end(buf: bytearray, pos: int) -> int:
    """Index just past a complete chunked body starting at ``pos``, or -1 while incomplete."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return -1
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return -1
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if buf[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return -1 if trailer_end < 0 else trailer_end + 4
        pos = line_end + 2 + size + 2
        if len(buf) < pos:
            return -1


async def _serve_raw(port: int, counters: Counters) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RawHttpStub(counters), HOST, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    return server, bound


async def _serve_aiohttp(port: int, counters: Counters) -> tuple[Any, int]:  # (web.AppRunner, port)
    from aiohttp import web

    async def put(request: web.Request) -> web.Response:
        body = await request.read()
        counters.requests += 1
        counters.body_bytes += len(body)
        counters.events += body.count(_EVENT_MARK)
        return web.Response(
            body=b"{}",
            content_type="application/json",
            headers={"x-amzn-RequestId": _request_id(counters.requests).decode()},
        )

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(counters.snapshot())

    app = web.Application()
    app.router.add_get("/__stats", stats)
    app.router.add_route("*", "/{tail:.*}", put)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, backlog=1024)
    await site.start()
    bound = next(int(address[1]) for address in runner.addresses)
    return runner, bound


async def serve(kind: str, port: int, max_seconds: float) -> None:
    """Serve until cancelled, signalled, orphaned or ``max_seconds`` old; print ``STUB <port>`` when up."""
    counters = Counters()
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    parent = os.getppid()
    deadline = loop.time() + max_seconds

    def watchdog() -> None:
        if os.getppid() != parent or loop.time() > deadline:
            request_stop()
            return
        loop.call_later(0.5, watchdog)

    watchdog()
    if kind == "raw":
        server, bound = await _serve_raw(port, counters)
        try:
            print(f"STUB {bound}", flush=True)
            await stop
        finally:
            server.close()
    elif kind == "aiohttp":
        runner, bound = await _serve_aiohttp(port, counters)
        try:
            print(f"STUB {bound}", flush=True)
            await stop
        finally:
            await runner.cleanup()
    else:
        raise SystemExit(f"unknown stub kind {kind!r}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m benchmarks.stub [--kind raw|aiohttp] [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kind", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long whatever happens")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kind, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
