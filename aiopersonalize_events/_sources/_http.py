"""The little HTTP the credential sources need: one short-lived session per fetch, short timeouts, small bodies.

Every failure becomes an ``HttpError`` whose ``kind`` says what happened
(``connect``, ``connect-timeout``, ``read-timeout``, ``error``) and whose
message names only the origin (``scheme://host:port``): the path and query
of a credentials URL may be a capability (the ECS relative URI), and no
aiohttp exception text is passed on. Redirects are not followed. Proxies
and the CA bundle are the client's (``_network.current()``: its
``ClientConfig``, else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` and
``AWS_CA_BUNDLE``), as botocore applies them to its credential calls;
``NO_PROXY`` is how a link-local metadata address is kept off a proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import attrs

from .. import _network
from .._version import __version__

__all__ = ["MAX_BODY", "Answer", "HttpError", "origin", "request", "session"]

USER_AGENT: Final = f"aiopersonalize-events/{__version__} (credentials)"
MAX_BODY: Final = 1 << 20
"""Answers larger than this many bytes are refused."""


class HttpError(Exception):
    """A request got no HTTP answer; ``kind`` is connect, connect-timeout, read-timeout or error."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@attrs.frozen
class Answer:
    """An HTTP status and the whole body (kept out of ``repr``: it may hold credentials)."""

    status: int
    body: bytes = attrs.field(repr=False)


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL: paths and queries may be capabilities (the ECS relative URI)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def session(timeout: float) -> aiohttp.ClientSession:
    """A session for one fetch: ``timeout`` seconds to connect and for each read, the current CA bundle.

    ``trust_env`` stays off (no ``.netrc`` credentials on these requests);
    ``request`` picks each request's proxy from ``_network.current()``.
    """
    network = _network.current()
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=network.ssl),
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


async def request(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Answer:
    """Send one request and read the whole answer (at most ``MAX_BODY`` bytes); raises ``HttpError``."""
    where = origin(url)
    route = _network.current().proxy_for(url)
    proxy: dict[str, Any] = {}
    if route is not None:
        proxy, extra = route.options(urlsplit(url).scheme)
        if extra:
            headers = {**(headers or {}), **extra}
    try:
        async with client.request(method, url, headers=headers, data=data, allow_redirects=False, **proxy) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > MAX_BODY:
                    raise HttpError("error", f"{where} answered with a body larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            return Answer(response.status, b"".join(chunks))
    except aiohttp.ConnectionTimeoutError:
        raise HttpError("connect-timeout", f"connecting to {where} timed out") from None
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
        raise HttpError("read-timeout", f"{where} did not answer in time") from None
    except aiohttp.ClientConnectorCertificateError:
        raise HttpError(
            "connect",
            f"TLS certificate verification failed for {where}; point AWS_CA_BUNDLE or ca_bundle at the CA's PEM file",
        ) from None
    except aiohttp.ClientProxyConnectionError as exc:
        why = type(exc.os_error).__name__
        raise HttpError("connect", f"could not connect to the proxy for {where} ({why})") from None
    except aiohttp.ClientConnectorError as exc:
        raise HttpError("connect", f"could not connect to {where} ({type(exc.os_error).__name__})") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise HttpError("error", f"request to {where} failed ({type(exc).__name__})") from None
