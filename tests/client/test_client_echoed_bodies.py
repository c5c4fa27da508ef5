"""An answer that is not the service's JSON (a proxy echoing what it received) is never quoted: not in the
exception, its repr, the log lines, a recorder's on_failure error, or a forwarder's dead-letter reasons. Only its
length and content type are said."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import ClassVar

import pytest
import redis.asyncio
from _redis_server import RedisServer, until
from _scripted_server import make_client
from aiohttp import web

from aiopersonalize_events import (
    ClientConfig,
    Event,
    InvalidResponseError,
    PersonalizeEventsError,
    ServiceError,
)
from aiopersonalize_events.redis import Forwarder, add_records, dead_letter_key

MARK = "MARKecho"
SENT_AT = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def marked_event(i: int) -> Event:
    return Event(
        event_type="click",
        sent_at=SENT_AT,
        item_id=f"{MARK}-item-{i}",
        event_id=f"{MARK}-id-{i}",
        properties={"note": f"{MARK}-property"},
    )


class Echo:
    """A server that answers every request with its own body, as ``mode`` says, with ``status``."""

    TYPES: ClassVar[dict[str, str]] = {
        "text": "text/plain",
        "html": "text/html; charset=utf-8",
        "json": "application/json",
    }

    def __init__(self, status: int, mode: str) -> None:
        self.status = status
        self.mode = mode
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.mode == "text":  # what a debugging proxy says back
            body = b"received: " + body
        elif self.mode == "html":  # an error page quoting the request, its title too
            title = f"<html><head><title>{MARK}-item-1 refused</title></head>".encode()
            body = title + b"<body><pre>" + body + b"</pre></body></html>"
        elif self.mode == "message":  # JSON whose "message" is the request, not text
            body = json.dumps({"message": json.loads(body)}).encode()
        kind = self.TYPES.get(self.mode, "application/json")
        return web.Response(status=self.status, body=body, headers={"Content-Type": kind})


async def serve(echo: Echo) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


ECHOES = [
    pytest.param(400, "text", ServiceError, id="400-text"),
    pytest.param(502, "html", ServiceError, id="502-html"),
    pytest.param(400, "json", ServiceError, id="400-json-echo"),
    pytest.param(403, "message", ServiceError, id="403-json-message-not-text"),
    pytest.param(200, "text", InvalidResponseError, id="200-text"),
    pytest.param(200, "html", InvalidResponseError, id="200-html"),
]


@pytest.mark.parametrize(("status", "mode", "kind"), ECHOES)
async def test_an_echoed_body_is_never_quoted_in_the_error_or_the_logs(
    status: int, mode: str, kind: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    """A direct call: the exception names the status, the body's length and its content type, no value."""
    caplog.set_level(logging.DEBUG)
    echo = Echo(status, mode)
    async for url in serve(echo):
        async with make_client(None, endpoint_url=url, config=ClientConfig(max_attempts=2)) as client:
            with pytest.raises(PersonalizeEventsError) as caught:
                await client.put_events(tracking_id="t", session_id="s", event_list=[marked_event(1)])
    error = caught.value
    assert isinstance(error, kind)
    text = str(error)
    assert MARK not in text
    assert MARK not in repr(error)
    assert MARK not in caplog.text
    if mode != "message":  # a "message" that is not text is left out; the rest is said by size and type
        assert "not the service's JSON" in text
        assert f"bytes, {Echo.TYPES[mode].split(';')[0]}" in text


@pytest.mark.parametrize(("status", "mode", "kind"), ECHOES)
async def test_a_recorder_s_on_failure_never_gets_an_echoed_value(
    status: int, mode: str, kind: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    """The recorder gives up on the batch: on_failure's error and the log lines hold no value of the request."""
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async for url in serve(Echo(status, mode)):
        async with make_client(None, endpoint_url=url, config=ClientConfig(max_attempts=1)) as client:
            recorder = rec = client.event_recorder(
                tracking_id="t",
                on_failure=lambda events, error: errors.append(error),
                close_timeout=0.5,
                flush_interval=0.01,
            )
            async with recorder:
                recorder.record(marked_event(1), session_id="s")
                await until(lambda rec=rec: errors or rec.stats.retried, what="the recorder to hear the answer")
    for error in errors:
        assert MARK not in str(error)
        assert MARK not in repr(error)
    assert MARK not in caplog.text


async def test_a_forwarder_s_dead_letter_reasons_never_quote_an_echo(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 echoing the request: the records go to the dead letters with a reason that holds no value."""
    caplog.set_level(logging.DEBUG)
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await add_records(connection, "echo", [marked_event(i) for i in range(3)], session_id="s")
        async for url in serve(Echo(400, "text")):
            async with make_client(None, endpoint_url=url, config=ClientConfig(max_attempts=1)) as client:
                forwarder = Forwarder(
                    client, redis_server.url, stream="echo", group="g", tracking_id="t", flush_interval=0.05
                )
                run = asyncio.ensure_future(forwarder.run())
                await until(lambda f=forwarder: f.stats.dead == 3, what="three dead letters")
                await forwarder.close()
                await run
        dead = await connection.xrange(dead_letter_key("echo"))
    finally:
        await connection.aclose()
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 3
    assert all("not the service's JSON" in reason for reason in reasons)
    assert not any(MARK in reason for reason in reasons)
    assert MARK not in caplog.text


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (f"<html><title>502 Bad Gateway</title><pre>{MARK}</pre></html>", "titled '502 Bad Gateway'"),
        ("<html><title>504 Gateway Time-out</title></html>", "titled '504 Gateway Timeout'"),
        (f"<html><title>400 {MARK}</title></html>", "bytes, text/html)"),
        (f"<html><title>Bad Request {MARK}</title></html>", "bytes, text/html)"),
        (f'{{"x": "<title>502 Bad Gateway</title>", "id": "{MARK}"}}', "bytes, text/html)"),
    ],
)
def test_only_a_standard_status_title_of_a_page_is_named_and_only_in_its_standard_words(body: str, shown: str) -> None:
    """A proxy page titled '502 Bad Gateway' is said so (in http.HTTPStatus's words); any other title is not."""
    from aiopersonalize_events.errors import parse_error

    error = parse_error(502, {"Content-Type": "text/html"}, body.encode())
    assert shown in error.message
    assert f"({len(body.encode())} bytes" in error.message
    assert ("titled" in error.message) is shown.startswith("titled")
    assert MARK not in str(error)
