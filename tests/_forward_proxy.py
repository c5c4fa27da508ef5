"""A small forwarding HTTP proxy on 127.0.0.1 that counts what passes (asyncio streams, no dependency).

It serves both ways a client uses a proxy: ``CONNECT host:port`` (a tunnel,
for https targets) and absolute-URI requests (``POST http://host:port/path``,
for http targets, forwarded with ``Connection: close`` so each request is seen
and counted). ``routes`` maps the ``host:port`` a client asks for to the
``host:port`` actually connected to: a test points the client at a port where
nothing listens and lets only the proxy reach the real server, so a request
that bypassed the proxy fails instead of passing unnoticed. ``auth`` (user,
password) makes it answer 407 to requests without that ``Proxy-Authorization``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from urllib.parse import urlsplit

import attrs

__all__ = ["ForwardProxy", "Passed"]


@attrs.frozen
class Passed:
    """One request the proxy handled: ``CONNECT`` and its ``host:port``, or a method and an absolute URL."""

    method: str
    target: str
    proxy_authorization: str | None
    status: int


class ForwardProxy:
    """The proxy; ``await start()``, ``url``, ``passed`` (every request handled), ``await stop()``."""

    def __init__(self, *, routes: dict[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
        self.routes = dict(routes or {})
        self.auth = auth
        self.passed: list[Passed] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _authorized(self, value: str | None) -> bool:
        if self.auth is None:
            return True
        expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return value == expected

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        found = {name.lower(): value for name, value in headers}
        auth = found.get("proxy-authorization")
        if not self._authorized(auth):
            self.passed.append(Passed(method, target, auth, 407))
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=test\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            upstream = self.routes.get(target, target)
            host, _, port = upstream.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            self.passed.append(Passed(method, target, auth, 200))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
            return
        parts = urlsplit(target)
        upstream = self.routes.get(parts.netloc, parts.netloc)
        host, _, port = upstream.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.passed.append(Passed(method, target, auth, 200))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        out = [f"{method} {path or '/'} {version}"]
        for name, value in headers:
            if name.lower() in ("proxy-authorization", "proxy-connection", "connection", "keep-alive"):
                continue
            out.append(f"{name}: {value}")
        out.append("Connection: close")
        up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        length = int(found.get("content-length", "0"))
        if length:
            up_writer.write(await reader.readexactly(length))
        await up_writer.drain()
        try:
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
