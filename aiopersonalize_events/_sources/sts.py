"""The STS client the credential sources need: ``AssumeRole`` and ``AssumeRoleWithWebIdentity``.

STS requests use the query protocol (a form body, an XML answer);
``AssumeRole`` is signed by our ``Signer`` with service name ``sts``,
``AssumeRoleWithWebIdentity`` is not signed. The endpoint is
``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL``, else the regional
``https://sts.{region}.amazonaws.com`` (the global one without a region).
Importing this module imports the signer (aws-requests-auth and
``requests``): only the sources that may call STS import it. The request
body (which may hold a token) is never logged; an error message carries the
STS error code and a redacted summary of its message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlencode, urlsplit

from .._credentials import Credentials, SourceFailed
from .._endpoints import host_header
from .._environ import flag
from .._signing import Signer
from ._documents import parse_timestamp, read_text, redact
from ._http import HttpError, origin, request, session

__all__ = [
    "STS_ATTEMPTS",
    "STS_TIMEOUT",
    "assume_role_with_web_identity",
    "default_session_name",
    "sts_call",
    "sts_endpoint",
]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

STS_VERSION: Final = "2011-06-15"
STS_TIMEOUT: Final = 5.0
"""Seconds to connect to STS and, separately, to wait for each read of its answer."""
STS_ATTEMPTS: Final = 3
"""STS calls are tried this many times on throttling, 5xx, timeouts and connection errors."""
_RETRY_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalFailure",
        "ServiceUnavailable",
        "IDPCommunicationError",
    }
)
_REGION: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def default_session_name() -> str:
    """The ``RoleSessionName`` used when none is configured (botocore's pattern, our prefix)."""
    return f"aiopersonalize-events-{int(time.time())}"


def sts_endpoint(environ: Mapping[str, str], region: str | None) -> tuple[str, str]:
    """The STS endpoint URL and the signing region, from the environment and the region.

    ``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL`` (both ignored when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``), else
    ``https://sts.{region}.amazonaws.com`` (``.amazonaws.com.cn`` in China),
    else the global ``https://sts.amazonaws.com`` signed for ``us-east-1``.
    """
    if region is not None and not _REGION.match(region):
        raise SourceFailed("the region for STS is not a region name")
    if not flag(environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        configured = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
        if configured:
            parts = urlsplit(configured)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SourceFailed("AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL is not an http(s) URL")
            return configured.rstrip("/"), region or "us-east-1"
    if region:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://sts.{region}.{suffix}", region
    return "https://sts.amazonaws.com", "us-east-1"


# --- the XML answers ----------------------------------------------------------------------------


def _xml(body: bytes) -> ET.Element | None:
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        return None  # STS never sends these; refuse entity tricks
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None


def _text(root: ET.Element | None, name: str) -> str | None:
    if root is None:
        return None
    element = _find(root, name)
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _credentials(action: str, body: bytes) -> Credentials:
    root = _xml(body)
    block = _find(root, "Credentials") if root is not None else None
    key = _text(block, "AccessKeyId")
    secret = _text(block, "SecretAccessKey")
    token = _text(block, "SessionToken")
    expiration = _text(block, "Expiration")
    missing = [n for n, v in (("AccessKeyId", key), ("SecretAccessKey", secret), ("SessionToken", token)) if not v]
    if missing or key is None or secret is None:
        raise SourceFailed(f"{action} answered without {', '.join(missing) or 'credentials'}")
    try:
        expires = parse_timestamp(expiration) if expiration else None
    except ValueError:
        raise SourceFailed(f"{action} answered with an Expiration that is not a time stamp") from None
    return Credentials(key, secret, token, expires)


def _error(body: bytes) -> tuple[str, str]:
    root = _xml(body)
    code = _text(root, "Code") or "UnknownError"
    message = redact(_text(root, "Message") or "", 300)
    return redact(code, 80), message


# --- calls --------------------------------------------------------------------------------------


async def sts_call(
    action: str,
    params: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    region: str | None,
    credentials: Credentials | None = None,
) -> Credentials:
    """Call an STS action that returns credentials; signed (service ``sts``) when ``credentials`` are given.

    Tried ``STS_ATTEMPTS`` times on throttling, 5xx, timeouts and connection
    errors. Raises ``SourceFailed`` with the error code and a summary of the
    message; the request body (which may hold a token) is never logged.
    """
    endpoint, signing_region = sts_endpoint(environ, region)
    url = endpoint + "/"
    body = urlencode({"Action": action, "Version": STS_VERSION, **params}).encode("ascii")
    signer = Signer(host_header(url), signing_region, "sts") if credentials is not None else None
    problem = f"{action} was not tried"
    async with session(STS_TIMEOUT) as client:
        for attempt in range(1, STS_ATTEMPTS + 1):
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            if signer is not None and credentials is not None:
                headers.update(signer.headers("POST", url, body, credentials))
            try:
                answer = await request(client, "POST", url, headers=headers, data=body)
            except HttpError as exc:
                problem = f"{action} failed: {exc}"
                retry = True
            else:
                if answer.status == 200:
                    return _credentials(action, answer.body)
                code, message = _error(answer.body)
                problem = f"{action} failed: {code} (HTTP {answer.status})" + (f": {message}" if message else "")
                retry = answer.status >= 500 or answer.status == 429 or code in _RETRY_CODES
            log.debug("STS %s at %s, attempt %d: %s", action, origin(url), attempt, problem)
            if not retry or attempt == STS_ATTEMPTS:
                break
            await asyncio.sleep(0.1 * 2 ** (attempt - 1))
    raise SourceFailed(problem)


async def assume_role_with_web_identity(
    *,
    role_arn: str,
    token_file: str,
    session_name: str | None,
    environ: Mapping[str, str],
    region: str | None,
) -> Credentials:
    """Read the token file (off the loop) and exchange it through STS ``AssumeRoleWithWebIdentity`` (unsigned).

    ``session_name`` None (or empty) uses ``default_session_name()``.
    """
    try:
        token = (await read_text(token_file)).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFailed(f"cannot read the web identity token file {token_file} ({type(exc).__name__})") from None
    if not token:
        raise SourceFailed(f"the web identity token file {token_file} is empty")
    params = {"RoleArn": role_arn, "RoleSessionName": session_name or default_session_name(), "WebIdentityToken": token}
    return await sts_call("AssumeRoleWithWebIdentity", params, environ=environ, region=region)
