"""No secret access key or session token ever shows up in logs, exception texts or reprs."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from _scripted_server import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, Reply, ScriptedServer, make_client

from aiopersonalize_events import (
    ClientConfig,
    Credentials,
    Event,
    Item,
    NoCredentialsError,
    PersonalizeEventsError,
    ResponseMetadata,
    ValidationError,
)
from aiopersonalize_events._credentials import StaticProvider

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
SECRETS = (SECRET_KEY, SESSION_TOKEN)


def exception_texts(error: BaseException) -> Iterator[str]:
    """Every text a logger, traceback or error reporter might take from an exception and its chain."""
    yield "".join(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(getattr(current, "__dict__", {}))
        current = current.__cause__ or current.__context__


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert SECRET_KEY[:12] not in text  # not even a prefix


async def _raw_garbage_server() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot-a-chunk\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_nothing_secret_in_logs_or_errors_while_failing_and_retrying(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, through service errors, retries, timeouts, drops and garbage, no log line or error shows a secret."""
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    server.error("InvalidSignatureException", 403, "The request signature we calculated does not match")
    server.error("ExpiredTokenException", 403, "The security token included in the request is expired")
    server.error("ThrottlingException", 429, times=3, headers={"Retry-After": "1"})
    server.error(None, 500, times=2)
    server.reply(Reply(action="drop"), Reply(action="truncate"), Reply(action="hang"))
    server.reply(Reply(502, b"<html>Bad Gateway</html>", {}))
    config = ClientConfig(read_timeout=0.2)
    async with make_client(server, config=config) as client:
        for _ in range(7):
            try:
                await client.put_items(dataset_arn=ARN, items=[Item(item_id="i", properties={"a": 1})])
            except PersonalizeEventsError as error:
                errors.append(error)
        try:
            await client.put_events(tracking_id="t", session_id="s", event_list=[])
        except ValidationError as error:
            errors.append(error)
    assert len(errors) >= 4
    # the secrets were really in play: the token went out with every request
    assert all(r.headers["X-Amz-Security-Token"] == SESSION_TOKEN for r in server.requests)

    garbage = await _raw_garbage_server()
    port = garbage.sockets[0].getsockname()[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused_port = sock.getsockname()[1]
    try:
        for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{refused_port}"):
            async with make_client(endpoint_url=url) as other:
                try:
                    await other.put_users(dataset_arn=ARN.replace("ITEMS", "USERS"), users=[])
                except ValidationError as error:
                    errors.append(error)
                try:
                    await other.put_items(dataset_arn=ARN, items=[Item(item_id="i")])
                except PersonalizeEventsError as error:
                    errors.append(error)
    finally:
        garbage.close()
        await garbage.wait_closed()

    assert any(isinstance(e.__cause__, Exception) for e in errors)
    for caught in errors:
        for text in exception_texts(caught):
            assert_no_secret(text)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert caplog.records, "the client logs at DEBUG"
    for record in caplog.records:
        assert_no_secret(formatter.format(record))
        assert_no_secret(repr(record.args))


def _public_objects() -> list[Any]:
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
    client = make_client(credentials=credentials, endpoint_url="http://127.0.0.1:9")
    return [
        credentials,
        Credentials(ACCESS_KEY, SECRET_KEY),
        Credentials(access_key_id="short", secret_access_key=SECRET_KEY, session_token=SESSION_TOKEN),
        StaticProvider(credentials),
        client,
        client.config,
        client.retry_policy,
        ClientConfig(),
        ResponseMetadata(request_id="r", http_status=200, retry_attempts=0),
        Event(event_type="v", sent_at=1),
        NoCredentialsError(sources=("environment",)),
    ]


@pytest.mark.parametrize("obj", _public_objects(), ids=lambda o: type(o).__name__)
def test_public_objects_never_show_a_secret(obj: Any) -> None:
    """repr and str of credentials, providers, the client, config, shapes and errors never contain a secret."""
    assert_no_secret(repr(obj))
    assert_no_secret(str(obj))
    assert_no_secret(repr(getattr(obj, "__dict__", {})))


def test_credentials_repr_shows_enough_to_tell_keys_apart() -> None:
    """The access key id is abbreviated in repr, the secret and token shown only as set."""
    text = repr(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN))
    assert ACCESS_KEY not in text
    assert ACCESS_KEY[:4] in text
    assert "'***'" in text
