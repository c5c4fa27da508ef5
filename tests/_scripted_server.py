"""A tiny aiohttp.web server on 127.0.0.1 that records every request and answers from a script.

Tests queue answers with ``server.reply(...)`` (or the special ``drop``,
``truncate`` and ``hang`` behaviours); once the script is empty the server
answers like the service does on success: HTTP 200, ``{}``, a request id.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Recorded", "Reply", "ScriptedServer"]


@attrs.frozen
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Reply:
    """One scripted answer; ``action`` is None (answer), ``drop``, ``truncate`` or ``hang``."""

    status: int = 200
    body: bytes = b"{}"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    action: str | None = None


def error_reply(
    code: str | None,
    status: int,
    message: str = "boom",
    *,
    request_id: str = "req-err",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An AWS JSON error answer with the code in ``x-amzn-ErrorType`` (like the real service)."""
    all_headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/x-amz-json-1.1", **(headers or {})}
    if code is not None:
        all_headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/com.amazonaws.personalize/"
    return Reply(status, json.dumps({"message": message}).encode(), all_headers)


class ScriptedServer:
    """Records requests in ``requests`` and answers each from the front of the script."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._counter = 0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Reply) -> None:
        """Queue answers, in order."""
        self._script.extend(replies)

    def error(
        self,
        code: str | None,
        status: int,
        message: str = "boom",
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue ``times`` AWS error answers (code None: no x-amzn-ErrorType header)."""
        for _ in range(times):
            self._counter += 1
            rid = f"req-err-{self._counter}"
            self._script.append(error_reply(code, status, message, request_id=rid, headers=headers))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(
                request.method, request.path, request.query_string, CIMultiDictProxy(CIMultiDict(request.headers)), body
            )
        )
        reply = self._script.popleft() if self._script else None
        if reply is None:
            self._counter += 1
            return web.Response(body=b"{}", headers={"x-amzn-RequestId": f"req-{self._counter}"})
        if reply.action == "hang":
            await self._release.wait()
            return web.Response(status=503)
        if reply.action == "drop":
            assert request.transport is not None
            request.transport.abort()
            await self._release.wait()
            return web.Response()
        if reply.action == "truncate":
            response = web.StreamResponse(status=200, headers={"Content-Length": "100", "x-amzn-RequestId": "req-t"})
            await response.prepare(request)
            await response.write(b'{"partial":')
            assert request.transport is not None
            request.transport.abort()
            await self._release.wait()
            return response
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))


ACCESS_KEY = "AKIDEXAMPLE0123456789"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE"


class Sleeps:
    """An injectable ``sleep`` that records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_client(server: ScriptedServer | None = None, *, token: bool = True, **kwargs: Any) -> Any:
    """A client for ``server`` with test credentials, retries that record their sleeps instead of waiting."""
    from aiopersonalize_events import Credentials, PersonalizeEventsClient

    kwargs.setdefault("region", "us-east-1")
    kwargs.setdefault("credentials", Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN if token else None))
    if server is not None:
        kwargs.setdefault("endpoint_url", server.url)
    client = PersonalizeEventsClient(**kwargs)
    client.retry_policy.sleep = Sleeps()
    return client
