"""The call path: one validated request, sent with retries; the one loop every ``put_*`` call goes through.

``Caller.invoke(op, request)`` encodes the body once, then makes attempts
until one succeeds or the ``RetryPolicy`` says stop: before each, the
adaptive mode's rate limiter (when on); each attempt (``_attempt``) resolves
the credentials (with the client's network current, so their own HTTP calls
take its proxies and CA bundle), signs afresh, waits for a connection slot,
and sends once over the ``_transport.Transport``'s session. Between
attempts the policy's ``retry_token`` decides, and its ``sleep`` waits:
this is, with the delivery engine's re-sends (``_delivery``), the only place
a retry is decided.

At the boundary every aiohttp and socket exception becomes one of ours
(``translate``), with the signing headers scrubbed from the chained
exception; an answer is read within bounds (``headers_within``,
``read_capped``) and a 200 whose body is not JSON is an
``InvalidResponseError`` that never quotes the body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from . import _operations as ops
from . import _telemetry
from ._json import dumps_wire, float_agrees
from ._retry import AdaptiveRateLimiter, RetryPolicy
from ._transport import OPENED, Transport
from .errors import (
    ClientStateError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidResponseError,
    PersonalizeEventsError,
    ReadTimeoutError,
    TLSVerificationError,
    TransportError,
    _foreign_body,
    parse_error,
)
from .serde import to_wire

__all__ = ["Caller", "ResponseMetadata", "translate"]

log: Final = logging.getLogger("aiopersonalize_events")


@attrs.frozen
class ResponseMetadata:
    """What a successful call returns: the service's request id, the HTTP status and the retries it took."""

    request_id: str | None
    http_status: int
    retry_attempts: int


class Caller:
    """Sends one client's calls over its ``transport`` with its ``retry_policy``; what a telemetry hook reads.

    ``region`` and ``endpoint_url`` are the transport's, once resolved (the
    arguments before); ``retry_policy`` is the client's, shared with its
    recorder and batching helpers.
    """

    __slots__ = ("retry_policy", "transport")

    def __init__(self, transport: Transport, retry_policy: RetryPolicy) -> None:
        self.transport = transport
        self.retry_policy = retry_policy

    @property
    def region(self) -> str | None:
        """The region in use, once resolved (the argument before)."""
        return self.transport.region or self.transport.region_arg

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint in use, once resolved (the argument before)."""
        return self.transport.endpoint or self.transport.endpoint_arg

    async def open(self, *, need_region: bool) -> None:
        """Open the transport; when the profile asked for the adaptive mode, give the policy its rate limiter."""
        transport = self.transport
        await transport.open(need_region=need_region)
        if transport.adaptive_from_profile:
            transport.adaptive_from_profile = False
            policy = self.retry_policy
            if policy.rate_limiter is None:
                policy.rate_limiter = AdaptiveRateLimiter(fail_fast=transport.config.rate_limit_fail_fast)

    async def invoke(self, op: ops.Operation, request: Any, call: _telemetry.Call | None = None) -> ResponseMetadata:
        """Send one validated request, retrying per the policy; the one path every call takes.

        The body is encoded once; each attempt signs it afresh (credentials may
        have been refreshed) and waits for a connection slot before its
        ``attempt_timeout`` starts.
        """
        if call is None and _telemetry.hook is not None:  # instrumented: the hook wraps the call in a span
            return await _telemetry.hook.invoke(self.invoke, self, op, request)
        transport = self.transport
        if transport.state != OPENED or transport.signer is None:
            await self.open(need_region=True)
        if asyncio.get_running_loop() is not transport.loop:
            raise ClientStateError(
                "this PersonalizeEventsClient was opened in another event loop; make one client per loop"
            )
        agree = True
        for name in op.record_floats:
            for record in getattr(request, op.record_field):
                value = getattr(record, name)
                if value is not None and not float_agrees(value):
                    agree = False
        body = dumps_wire(to_wire(request), agree)
        url = transport.urls[op.name]
        policy = self.retry_policy
        token = policy.first_token()
        while True:
            limiter = policy.rate_limiter
            if limiter is not None:
                await limiter.acquire()  # adaptive mode; a fail-fast refusal goes straight to the caller
            try:
                meta = await self._attempt(op, url, body, token.attempt)
            except PersonalizeEventsError as error:
                if limiter is not None:
                    limiter.record(error.throttling)
                following = policy.retry_token(token, error)
                if following is None:
                    error.attempts = token.attempt
                    why = _telemetry.stop_reason(policy, error, token.attempt)
                    log.debug(
                        "%s failed at attempt %d (%s): %s", op.name, token.attempt, why, _telemetry.describe(error)
                    )
                    raise
                log.debug(
                    "%s attempt %d failed (%s); retrying in %.3fs",
                    op.name,
                    token.attempt,
                    _telemetry.describe(error),
                    following.delay,
                )
                if call is not None:
                    call.retrying(error, token.attempt, following.delay)
                token = following
                await policy.sleep(token.delay)
                continue
            if limiter is not None:
                limiter.record(False)
            policy.record_success(token)
            return meta

    async def _attempt(self, op: ops.Operation, url: str, body: bytes, attempt: int) -> ResponseMetadata:
        transport = self.transport
        network = transport.network
        if network is None:
            credentials = await transport.provider.resolve()
        else:  # the credential sources' own HTTP calls take the client's proxies and CA bundle
            token = network.use()
            try:
                credentials = await transport.provider.resolve()
            finally:
                network.unuse(token)
        session = transport.session
        signer = transport.signer
        slots = transport.slots
        if session is None or signer is None or slots is None:
            raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
        headers = dict(transport.headers)
        headers.update(signer.headers("POST", url, body, credentials))
        config = transport.config
        if not slots.take():  # every connection is busy: wait for one, which is not the service's time
            await slots.wait(config.pool_timeout)
        try:
            # never follow redirects: they would carry the session token to another host, and a
            # 301/302 turns the POST into a GET whose 200 would be taken for a delivered batch
            request = session.post(
                url,
                data=body,
                headers=headers,
                timeout=transport.timeout,
                allow_redirects=False,
                **transport.request_options,
            )
            async with await headers_within(request, transport.header_timeout) as response:
                status = response.status
                payload = await read_capped(response, config.max_response_bytes, config.read_timeout)
                response_headers = response.headers
        except PersonalizeEventsError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = translate(exc)
            log.debug("%s attempt %d: %s", op.name, attempt, error)
            raise error from exc
        except RuntimeError as exc:  # aiohttp's "Session is closed" and the like: the client was closed meanwhile
            raise ClientStateError(f"the call could not be made: {exc}") from exc
        finally:
            slots.release()
        request_id = response_headers.get("x-amzn-RequestId")
        if status == 200:
            _check_success_body(payload, response_headers)
            log.debug("%s ok: HTTP 200, request id %s, attempt %d", op.name, request_id, attempt)
            return ResponseMetadata(request_id=request_id, http_status=status, retry_attempts=attempt - 1)
        service_error = parse_error(status, response_headers, payload)
        log.debug("%s attempt %d: %s", op.name, attempt, _telemetry.describe(service_error))
        raise service_error


_SIGNED_SECRETS: Final = ("Authorization", "X-Amz-Security-Token", "Proxy-Authorization")


def _scrub(exc: BaseException) -> None:
    """Remove the signing headers aiohttp keeps in ``ClientResponseError.request_info``.

    Our errors chain the aiohttp exception (``raise ... from exc``), and its
    ``repr`` and ``args`` (what pickling and error reporters read) hold the
    request headers, session token included.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        headers = CIMultiDict(info.headers)
        for name in _SIGNED_SECRETS:
            headers.popall(name, None)
        exc.request_info = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
        exc.history = ()
        exc.args = (exc.request_info, exc.history)


def translate(exc: BaseException) -> TransportError:
    """Map an aiohttp or socket exception to ours, once, at the boundary."""
    from ._network import without_userinfo  # loaded already: a transport opened before any request failed

    _scrub(exc)
    text = without_userinfo(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or type(exc.certificate_error).__name__
        return TLSVerificationError(  # what to do about it is the error's ``fix``
            f"TLS certificate verification failed for {exc.host}:{exc.port} ({reason}): no CA in use "
            "(AWS_CA_BUNDLE, ca_bundle, else the system's) vouches for the endpoint's certificate"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return EndpointConnectionError(f"could not connect to the endpoint ({text})")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeoutError(f"connecting timed out ({text})")
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return ReadTimeoutError(f"the service did not answer in time ({text})")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return ConnectionClosedError(f"the connection closed before a full answer ({text})")
    if isinstance(exc, aiohttp.ClientResponseError):
        return InvalidResponseError(f"malformed answer ({text})")
    return TransportError(f"request failed ({text})")


def _cancelling(task: asyncio.Task[Any]) -> int:
    """The task's pending cancellation requests (Python 3.11+; 0 before, where they are not counted)."""
    if sys.version_info >= (3, 11):
        return task.cancelling()
    return 0


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Take back one cancellation request; the ones left (Python 3.11+; 0 before)."""
    if sys.version_info >= (3, 11):
        return task.uncancel()
    return 0


async def headers_within(request: Any, timeout: float) -> aiohttp.ClientResponse:
    """Send ``request`` (an aiohttp request context) and return its response once the headers are in.

    ``timeout`` bounds connecting, sending and the answer's headers as a
    whole: ``ReadTimeoutError`` when they take longer (a server trickling
    its headers a byte at a time), whatever the waits between bytes. As
    ``asyncio.timeout`` does (not on Python 3.10): a timer cancels this task,
    and no task is made per call.
    """
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    before = _cancelling(task)
    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        response: aiohttp.ClientResponse = await request
    except asyncio.CancelledError:
        if not fired or _uncancel(task) > before:  # cancelled from outside as well: that wins
            raise
        raise ReadTimeoutError(
            f"the answer's headers did not arrive within {timeout:g}s (connect_timeout + read_timeout)"
        ) from None
    finally:
        timer.cancel()
    if fired:  # aiohttp swallowed the timer's cancel as the headers came
        _uncancel(task)
        response.release()
        raise ReadTimeoutError(f"the answer's headers did not arrive within {timeout:g}s")
    return response


async def read_capped(response: aiohttp.ClientResponse, limit: int, timeout: float) -> bytes:
    """Read the body: at most ``limit`` bytes, and all of it within about ``timeout`` seconds.

    ``sock_read`` bounds each wait for data; the deadline bounds the whole body,
    so a server that trickles a byte at a time cannot hold a call open forever.
    The usual answer (``{}``) has arrived whole with the headers; it is taken
    without waiting.
    """
    content = response.content
    if content.is_eof():
        data = content.read_nowait()
        if len(data) > limit:
            raise InvalidResponseError(f"answer body larger than {limit} bytes (HTTP {response.status})")
        return data
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise InvalidResponseError(f"answer body larger than {limit} bytes (HTTP {response.status})")
        if loop.time() > deadline:
            raise ReadTimeoutError(f"the answer body took longer than {timeout:g}s to arrive (HTTP {response.status})")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_success_body(payload: bytes, headers: Mapping[str, str]) -> None:
    if not payload or payload == b"{}":
        return
    try:
        parsed = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidResponseError(f"HTTP 200 with {_foreign_body(payload, headers)}")  # never quoted
