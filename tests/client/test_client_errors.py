"""Service error answers and transport failures become the library's typed errors, and nothing foreign escapes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from _scripted_server import Reply, ScriptedServer, make_client

from aiopersonalize_events import (
    AccessDeniedException,
    ClientConfig,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidInputException,
    InvalidResponseError,
    Item,
    PersonalizeEventsError,
    ReadTimeoutError,
    ResourceInUseException,
    ResourceNotFoundException,
    ServiceError,
    ThrottlingException,
    TransportError,
)
from aiopersonalize_events._call import translate as _translate
from aiopersonalize_events.errors import parse_error

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
ONE_ATTEMPT = ClientConfig(max_attempts=1)


async def put_one(client: Any) -> Any:
    return await client.put_items(dataset_arn=ARN, items=[Item(item_id="i")])


async def failure_of(server: ScriptedServer, config: ClientConfig = ONE_ATTEMPT, **kwargs: Any) -> Any:
    """Make one call and return the exception it raised."""
    async with make_client(server, config=config, **kwargs) as client:
        with pytest.raises(PersonalizeEventsError) as info:
            await put_one(client)
    return info.value


# (code, status, class, retryable, throttling)
SERVICE_ERRORS = [
    ("InvalidInputException", 400, InvalidInputException, False, False),
    ("ResourceNotFoundException", 404, ResourceNotFoundException, False, False),
    ("ResourceInUseException", 409, ResourceInUseException, False, False),
    ("ThrottlingException", 400, ThrottlingException, True, True),
    ("ThrottlingException", 429, ThrottlingException, True, True),
    ("TooManyRequestsException", 429, ThrottlingException, True, True),
    ("ProvisionedThroughputExceededException", 400, ThrottlingException, True, True),
    ("RequestLimitExceeded", 400, ThrottlingException, True, True),
    ("AccessDeniedException", 403, AccessDeniedException, False, False),
    ("UnrecognizedClientException", 403, ServiceError, False, False),
    ("InvalidSignatureException", 403, ServiceError, False, False),
    ("ExpiredTokenException", 403, ServiceError, False, False),
    ("ServiceUnavailableException", 503, ServiceError, True, False),
    ("InternalFailure", 500, ServiceError, True, False),
    ("InternalServerError", 500, ServiceError, True, False),
    ("SomethingNewException", 400, ServiceError, False, False),
]


@pytest.mark.parametrize(("code", "status", "cls", "retryable", "throttling"), SERVICE_ERRORS)
async def test_service_errors_map_to_their_class(
    server: ScriptedServer, code: str, status: int, cls: type[ServiceError], retryable: bool, throttling: bool
) -> None:
    """Each modelled and common AWS error becomes its class with code, message, status and request id."""
    server.error(code, status, f"the {code} message")
    error = await failure_of(server)
    assert type(error) is cls
    assert isinstance(error, ServiceError)
    assert error.code == code
    assert error.message == f"the {code} message"
    assert error.http_status == status
    assert error.request_id == "req-err-1"
    assert (error.retryable, error.throttling) == (retryable, throttling)
    assert error.attempts == 1
    assert str(error) == f"{code} (HTTP {status}): the {code} message [request id req-err-1]"


@pytest.mark.parametrize("status", [502, 504])
async def test_a_load_balancer_html_page_is_still_a_service_error(server: ScriptedServer, status: int) -> None:
    """A plain 5xx with an HTML body (no AWS code) is a retryable ServiceError carrying the status."""
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    server.reply(Reply(status, html, {"Content-Type": "text/html"}))
    error = await failure_of(server)
    assert type(error) is ServiceError
    assert error.http_status == status
    assert error.code == f"HTTP{status}"
    assert error.request_id is None
    assert "Bad Gateway" in error.message
    assert error.retryable
    assert not error.throttling


async def test_code_comes_from_the_body_type_when_no_header(server: ScriptedServer) -> None:
    """Without x-amzn-ErrorType the code is the body's __type after its last '#'."""
    body = {"__type": "com.amazonaws.personalize#ResourceNotFoundException", "Message": "no such tracker"}
    server.reply(Reply(404, json.dumps(body).encode(), {"x-amzn-RequestId": "rid-9"}))
    error = await failure_of(server)
    assert type(error) is ResourceNotFoundException
    assert (error.code, error.message, error.request_id) == ("ResourceNotFoundException", "no such tracker", "rid-9")


async def test_header_code_wins_over_the_body_and_stops_at_the_colon(server: ScriptedServer) -> None:
    """x-amzn-ErrorType wins over __type, and only the text before its first ':' is the code."""
    body = {"__type": "x#InvalidInputException", "message": "m"}
    headers = {"x-amzn-ErrorType": "ResourceInUseException:http://internal.amazon.com/coral/x:y"}
    server.reply(Reply(409, json.dumps(body).encode(), headers))
    error = await failure_of(server)
    assert type(error) is ResourceInUseException
    assert error.code == "ResourceInUseException"


async def test_a_429_without_a_code_is_throttling(server: ScriptedServer) -> None:
    """Any 429 is throttling, even from a proxy that sends no AWS code."""
    server.reply(Reply(429, b"slow down", {}))
    error = await failure_of(server)
    assert isinstance(error, ThrottlingException)
    assert error.throttling
    assert error.retryable


async def test_a_403_without_a_code_is_access_denied(server: ScriptedServer) -> None:
    """A bare 403 is AccessDeniedException and is not retried."""
    server.reply(Reply(403, b"", {}))
    error = await failure_of(server, config=ClientConfig())
    assert isinstance(error, AccessDeniedException)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("headers", "body", "code", "message"),
    [
        ({"x-amzn-ErrorType": "InvalidInputException"}, b'{"message":"lower"}', "InvalidInputException", "lower"),
        ({"X-AMZN-ERRORTYPE": "InvalidInputException:"}, b'{"Message":"upper"}', "InvalidInputException", "upper"),
        ({}, b'{"__type":"InvalidInputException","message":"bare"}', "InvalidInputException", "bare"),
        ({}, b'{"__type":"a.b.c#ThrottlingException"}', "ThrottlingException", ""),
        ({}, b'{"code":"ThrottlingException","message":"code key"}', "ThrottlingException", "code key"),
        ({}, b"", "HTTP400", ""),
        ({}, b"[1,2]", "HTTP400", ""),
        (
            {},
            b"\xff\xfe not utf-8",
            "HTTP400",
            "Bad Request, with a body that is not the service's JSON (12 bytes, no content type)",
        ),
    ],
)
def test_parse_error_reads_code_and_message_from_each_place(
    headers: dict[str, str], body: bytes, code: str, message: str
) -> None:
    """parse_error finds the code in the header or body and the message under message or Message."""
    from multidict import CIMultiDict

    error = parse_error(400, CIMultiDict(headers), body)
    assert error.code == code
    assert error.message == message
    assert error.http_status == 400


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("0.5", 0.5), ("soon", None), ("-1", None), ("99999", None)]
)
def test_retry_after_is_read_when_sensible(value: str, expected: float | None) -> None:
    """A numeric Retry-After becomes retry_after; dates, negatives and absurd waits are ignored."""
    error = parse_error(429, {"Retry-After": value}, b"")
    assert error.retry_after == expected


def test_error_classes_know_their_retry_facts() -> None:
    """Transport errors are retryable except an invalid answer; validation-type errors never are."""
    assert EndpointConnectionError("x").retryable
    assert ReadTimeoutError("x").retryable
    assert ConnectionClosedError("x").retryable
    assert ConnectTimeoutError("x").retryable
    assert not InvalidResponseError("x").retryable
    assert not InvalidInputException("m", http_status=400).retryable
    assert ServiceError("m", code="X", http_status=504).retryable
    assert not ServiceError("m", code="X", http_status=400).retryable


# --- transport failures ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_an_endpoint_connection_error() -> None:
    """Nothing listening on the port gives EndpointConnectionError (a TransportError), chained to aiohttp's."""
    async with make_client(endpoint_url=f"http://127.0.0.1:{_closed_port()}", config=ONE_ATTEMPT) as client:
        with pytest.raises(EndpointConnectionError) as info:
            await put_one(client)
    assert isinstance(info.value, TransportError)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert info.value.retryable


async def test_a_server_that_never_answers_is_a_read_timeout(server: ScriptedServer) -> None:
    """No answer within read_timeout gives ReadTimeoutError."""
    server.reply(Reply(action="hang"))
    error = await failure_of(server, config=ClientConfig(max_attempts=1, read_timeout=0.2))
    assert type(error) is ReadTimeoutError


@pytest.mark.parametrize("action", ["drop", "truncate"])
async def test_a_connection_closed_mid_answer_is_connection_closed(server: ScriptedServer, action: str) -> None:
    """A connection dropped before or during the answer gives ConnectionClosedError."""
    server.reply(Reply(action=action))
    error = await failure_of(server)
    assert type(error) is ConnectionClosedError
    assert error.retryable


async def test_a_success_with_a_body_that_is_not_json_is_an_invalid_response(server: ScriptedServer) -> None:
    """HTTP 200 with an HTML page is not taken for a success."""
    server.reply(Reply(200, b"<html>captive portal</html>", {}))
    error = await failure_of(server, config=ClientConfig())
    assert type(error) is InvalidResponseError
    assert len(server.requests) == 1


async def test_an_oversized_answer_is_an_invalid_response(server: ScriptedServer) -> None:
    """An answer body over max_response_bytes is refused, not read into memory."""
    server.reply(Reply(500, b"x" * 5000, {}))
    error = await failure_of(server, config=ClientConfig(max_attempts=1, max_response_bytes=1000))
    assert type(error) is InvalidResponseError


async def test_redirects_are_not_followed(server: ScriptedServer) -> None:
    """A 3xx is an error, never followed: the records would not arrive and the session token would travel on."""
    other = ScriptedServer()
    await other.start()
    try:
        for status in (301, 302, 307, 308):
            server.reply(Reply(status, b"", {"Location": f"{other.url}/elsewhere"}))
            error = await failure_of(server)
            assert type(error) is ServiceError
            assert error.http_status == status
        assert other.requests == []
    finally:
        await other.stop()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[bytes], Any]]:
    """Start raw TCP servers on 127.0.0.1 that answer any request with the given bytes, then close."""
    servers: list[asyncio.Server] = []

    async def start(payload: bytes) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            writer.write(payload)
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        (b"garbage\r\n\r\n", InvalidResponseError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", InvalidResponseError),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n{}", InvalidResponseError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Encoding: gzip\r\n\r\n{}", ConnectionClosedError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}", ConnectionClosedError),
        (b"", ConnectionClosedError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnull", InvalidResponseError),
        (b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\n{}", ServiceError),
    ],
)
async def test_no_foreign_exception_reaches_the_caller(raw_server: Any, payload: bytes, cls: type[Exception]) -> None:
    """Garbage, truncated, undecodable or odd answers all raise the library's own errors."""
    url = await raw_server(payload)
    async with make_client(endpoint_url=url, config=ONE_ATTEMPT) as client:
        with pytest.raises(PersonalizeEventsError) as info:
            await put_one(client)
    assert type(info.value) is cls


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), ConnectTimeoutError),
        (aiohttp.SocketTimeoutError("read"), ReadTimeoutError),
        (asyncio.TimeoutError(), ReadTimeoutError),
        (aiohttp.ServerDisconnectedError(), ConnectionClosedError),
        (aiohttp.ClientPayloadError("short"), ConnectionClosedError),
        (aiohttp.ClientOSError(104, "reset"), ConnectionClosedError),
        (ConnectionResetError(104, "reset"), TransportError),
        (aiohttp.ClientError("other"), TransportError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_aiohttp_exceptions_are_translated_once(exc: BaseException, cls: type[TransportError]) -> None:
    """Every aiohttp and socket failure maps to one TransportError subclass."""
    translated = _translate(exc)
    assert type(translated) is cls
    assert type(exc).__name__ in str(translated)
