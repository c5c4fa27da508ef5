"""The credential sources of the default chain, each async and non-blocking.

In the chain's order (the AWS SDKs' order, as in the AWS SDK for Java 2.x):

1. ``EnvironmentProvider`` (in ``_credentials``): ``AWS_ACCESS_KEY_ID`` and friends;
2. ``WebIdentitySource``: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``
   through STS ``AssumeRoleWithWebIdentity`` (EKS IRSA);
3. ``SharedFilesSource``: the profile in ``~/.aws/credentials`` / ``~/.aws/config``:
   ``role_arn`` (with ``source_profile``, ``credential_source`` or
   ``web_identity_token_file``) through STS, static keys, ``credential_process``;
4. ``ContainerSource``: the ECS / EKS Pod Identity credentials endpoint;
5. ``InstanceMetadataSource``: EC2 instance metadata, IMDSv2.

Files are read in a worker thread, ``credential_process`` runs through
``asyncio.create_subprocess_exec`` with a timeout, and HTTP goes through a
short-lived ``aiohttp.ClientSession`` of each fetch's own, with short
timeouts. STS requests use the query protocol (a form body, an XML answer);
``AssumeRole`` is signed by our ``Signer`` with service name ``sts``. The STS
endpoint is ``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL``, else the
regional ``https://sts.{region}.amazonaws.com`` (the global one without a
region). No message or log line here holds a key, a token or a URL path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Final
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import attrs

from ._aws_config import AwsFiles, ConfigFileError, load_files, profile_name, region_from_env
from ._credentials import (
    Credentials,
    CredentialSource,
    EnvironmentProvider,
    SourceFailed,
    SourceUnavailable,
)
from ._endpoints import host_header
from ._signing import Signer
from ._version import __version__

__all__ = [
    "ContainerSource",
    "InstanceMetadataSource",
    "SharedFilesSource",
    "SkippedSource",
    "WebIdentitySource",
    "assume_role_with_web_identity",
    "default_session_name",
    "default_sources",
    "parse_timestamp",
    "redact",
    "run_credential_process",
    "sts_call",
    "sts_endpoint",
]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

_USER_AGENT: Final = f"aiopersonalize-events/{__version__} (credentials)"
_MAX_BODY: Final = 1 << 20
STS_VERSION: Final = "2011-06-15"
STS_TIMEOUT: Final = 5.0
"""Seconds to connect to STS and, separately, to wait for each read of its answer."""
STS_ATTEMPTS: Final = 3
"""STS calls are tried this many times on throttling, 5xx, timeouts and connection errors."""
PROCESS_TIMEOUT: Final = 60.0
"""Seconds a ``credential_process`` may run before it is killed."""
CONTAINER_TIMEOUT: Final = 2.0
CONTAINER_ATTEMPTS: Final = 3
CONTAINER_BASE_URL: Final = "http://169.254.170.2"
IMDS_TIMEOUT: Final = 1.0
IMDS_ATTEMPTS: Final = 1
IMDS_TOKEN_TTL: Final = "21600"
IMDS_ENDPOINT: Final = "http://169.254.169.254"
IMDS_ENDPOINT_IPV6: Final = "http://[fd00:ec2::254]"
_CONTAINER_HOSTS: Final = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"})
_STS_RETRY_CODES: Final = frozenset(
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


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _true(environ: Mapping[str, str], variable: str) -> bool:
    return environ.get(variable, "").strip().lower() == "true"


# --- small helpers: time stamps, redaction, origins ---------------------------------------------

_TIMESTAMP: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 time stamp as AWS writes them (``2024-05-01T12:00:00Z``, fractions, offsets).

    A time stamp without an offset is taken as UTC. Raises ``ValueError``.
    """
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError("not an ISO 8601 time stamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)


_LONG_RUN: Final = re.compile(r"[A-Za-z0-9/+=_\-]{16,}")


def _redact_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) >= 32 or any(c.isdigit() or c in "/+=" for c in run):
        return "[redacted]"
    return run


def redact(text: str, limit: int = 200) -> str:
    """A short, safe excerpt of foreign text (a process's stderr, an error message) for a message.

    The last non-empty line only, with every run that could be a key or a
    token (16+ characters of base64 with a digit or ``/+=``, or any 32+) replaced.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    excerpt = _LONG_RUN.sub(_redact_run, lines[-1])
    return excerpt if len(excerpt) <= limit else excerpt[: limit - 3] + "..."


def _origin(url: str) -> str:
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


def default_session_name() -> str:
    """The ``RoleSessionName`` used when none is configured (botocore's pattern, our prefix)."""
    return f"aiopersonalize-events-{int(time.time())}"


# --- HTTP ---------------------------------------------------------------------------------------


class _HttpError(Exception):
    """A request got no HTTP answer; ``kind`` is connect, connect-timeout, read-timeout or error."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@attrs.frozen
class _Answer:
    status: int
    body: bytes = attrs.field(repr=False)


def _session(timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
        headers={"User-Agent": _USER_AGENT},
        trust_env=False,
    )


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> _Answer:
    origin = _origin(url)
    try:
        async with session.request(method, url, headers=headers, data=data, allow_redirects=False) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > _MAX_BODY:
                    raise _HttpError("error", f"{origin} answered with a body larger than {_MAX_BODY} bytes")
                chunks.append(chunk)
            return _Answer(response.status, b"".join(chunks))
    except aiohttp.ConnectionTimeoutError:
        raise _HttpError("connect-timeout", f"connecting to {origin} timed out") from None
    except (aiohttp.ServerTimeoutError, asyncio.TimeoutError):
        raise _HttpError("read-timeout", f"{origin} did not answer in time") from None
    except aiohttp.ClientConnectorError as exc:
        raise _HttpError("connect", f"could not connect to {origin} ({type(exc.os_error).__name__})") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise _HttpError("error", f"request to {origin} failed ({type(exc).__name__})") from None


async def _read_text(path: str) -> str:
    def read() -> str:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            return handle.read()

    return await asyncio.to_thread(read)


# --- STS ----------------------------------------------------------------------------------------


def sts_endpoint(environ: Mapping[str, str], region: str | None) -> tuple[str, str]:
    """The STS endpoint URL and the signing region, from the environment and the region.

    ``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL`` (both ignored when
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``), else
    ``https://sts.{region}.amazonaws.com`` (``.amazonaws.com.cn`` in China),
    else the global ``https://sts.amazonaws.com`` signed for ``us-east-1``.
    """
    if region is not None and not _REGION.match(region):
        raise SourceFailed("the region for STS is not a region name")
    if not _true(environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
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


def _sts_credentials(action: str, body: bytes) -> Credentials:
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


def _sts_error(body: bytes) -> tuple[str, str]:
    root = _xml(body)
    code = _text(root, "Code") or "UnknownError"
    message = redact(_text(root, "Message") or "", 300)
    return redact(code, 80), message


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
    async with _session(STS_TIMEOUT) as session:
        for attempt in range(1, STS_ATTEMPTS + 1):
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            if signer is not None and credentials is not None:
                headers.update(signer.headers("POST", url, body, credentials))
            try:
                answer = await _request(session, "POST", url, headers=headers, data=body)
            except _HttpError as exc:
                problem = f"{action} failed: {exc}"
                retry = True
            else:
                if answer.status == 200:
                    return _sts_credentials(action, answer.body)
                code, message = _sts_error(answer.body)
                problem = f"{action} failed: {code} (HTTP {answer.status})" + (f": {message}" if message else "")
                retry = answer.status >= 500 or answer.status == 429 or code in _STS_RETRY_CODES
            log.debug("STS %s at %s, attempt %d: %s", action, _origin(url), attempt, problem)
            if not retry or attempt == STS_ATTEMPTS:
                break
            await asyncio.sleep(0.1 * 2 ** (attempt - 1))
    raise SourceFailed(problem)


async def assume_role_with_web_identity(
    *,
    role_arn: str,
    token_file: str,
    session_name: str,
    environ: Mapping[str, str],
    region: str | None,
) -> Credentials:
    """Read the token file (off the loop) and exchange it through STS ``AssumeRoleWithWebIdentity`` (unsigned)."""
    try:
        token = (await _read_text(token_file)).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceFailed(f"cannot read the web identity token file {token_file} ({type(exc).__name__})") from None
    if not token:
        raise SourceFailed(f"the web identity token file {token_file} is empty")
    params = {"RoleArn": role_arn, "RoleSessionName": session_name, "WebIdentityToken": token}
    return await sts_call("AssumeRoleWithWebIdentity", params, environ=environ, region=region)


# --- 1. the environment is in _credentials; a skipped source --------------------------------------


class SkippedSource:
    """A source left out of the chain on purpose, listed with the reason in ``NoCredentialsError``."""

    __slots__ = ("_reason", "name")

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self._reason = reason

    async def load(self) -> Credentials:
        """Always raise ``SourceUnavailable`` with the reason."""
        raise SourceUnavailable(self._reason)

    def __repr__(self) -> str:
        return f"SkippedSource({self.name!r})"


# --- 2. web identity ----------------------------------------------------------------------------


async def _files_region(environ: Mapping[str, str], profile: str | None) -> str | None:
    region = region_from_env(environ)
    if region:
        return region
    try:
        files = await load_files(environ)
    except ConfigFileError:
        return None  # the shared-files source reports it
    name, _ = profile_name(profile, environ)
    return files.merged(name).get("region", "").strip() or None


class WebIdentitySource:
    """``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` (+ ``AWS_ROLE_SESSION_NAME``) through STS.

    The token file is read again on every refresh (EKS rotates it). STS is
    called in the region from ``AWS_REGION``/``AWS_DEFAULT_REGION`` or the
    profile, else globally.
    """

    __slots__ = ("_environ", "_profile")

    name: Final = "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)"

    def __init__(self, profile: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._profile = profile
        self._environ = environ

    def __repr__(self) -> str:
        return "WebIdentitySource()"

    async def load(self) -> Credentials:
        """Exchange the token for credentials, or raise ``SourceUnavailable`` when not configured."""
        environ = _env(self._environ)
        token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        role_arn = environ.get("AWS_ROLE_ARN")
        if not token_file and not role_arn:
            raise SourceUnavailable("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not set")
        if not token_file:
            raise SourceUnavailable("AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not")
        if not role_arn:
            raise SourceUnavailable("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")
        return await assume_role_with_web_identity(
            role_arn=role_arn,
            token_file=token_file,
            session_name=environ.get("AWS_ROLE_SESSION_NAME") or default_session_name(),
            environ=environ,
            region=await _files_region(environ, self._profile),
        )


# --- 3. shared files ----------------------------------------------------------------------------


def _has_static(values: Mapping[str, str]) -> bool:
    return bool(values.get("aws_access_key_id")) and bool(values.get("aws_secret_access_key"))


def _static(values: Mapping[str, str]) -> Credentials:
    token = values.get("aws_session_token") or values.get("aws_security_token") or None
    return Credentials(values["aws_access_key_id"], values["aws_secret_access_key"], token)


async def run_credential_process(command: str, *, profile: str, timeout: float = PROCESS_TIMEOUT) -> Credentials:
    """Run a profile's ``credential_process`` (off the loop, killed after ``timeout``) and read its JSON.

    The output must be ``{"Version": 1, "AccessKeyId": ..., "SecretAccessKey":
    ..., "SessionToken": ..., "Expiration": ...}`` (the last two optional). A
    failure names the program and exit status, with at most a redacted line
    of its stderr: never the command's arguments, its output or a key.
    """
    try:
        argv = shlex.split(command, posix=os.name != "nt")
    except ValueError:
        raise SourceFailed(f"credential_process of profile {profile!r} is not a valid command line") from None
    if not argv:
        raise SourceFailed(f"credential_process of profile {profile!r} is empty")
    program = os.path.basename(argv[0])
    what = f"credential_process {program!r} of profile {profile!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SourceFailed(f"{what} could not be started ({type(exc).__name__})") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        raise SourceFailed(f"{what} did not finish within {timeout:g} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(process.wait())
    if process.returncode != 0:
        detail = redact(stderr.decode("utf-8", "replace"))
        raise SourceFailed(f"{what} exited with status {process.returncode}" + (f": {detail}" if detail else ""))
    try:
        data = json.loads(stdout)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise SourceFailed(f"{what} did not print a JSON object")
    version = data.get("Version")
    if version != 1 or isinstance(version, bool):
        shown = repr(version) if isinstance(version, int) and not isinstance(version, bool) else "none"
        raise SourceFailed(f"{what} printed Version {shown}; only Version 1 is supported")
    key, secret, token = data.get("AccessKeyId"), data.get("SecretAccessKey"), data.get("SessionToken")
    missing = [
        name for name in ("AccessKeyId", "SecretAccessKey") if not isinstance(data.get(name), str) or not data[name]
    ]
    if missing or not isinstance(key, str) or not isinstance(secret, str):
        raise SourceFailed(f"{what} printed no {' or '.join(missing)}")
    if token is not None and not isinstance(token, str):
        raise SourceFailed(f"{what} printed a SessionToken that is not a string")
    expiration = data.get("Expiration")
    expires: datetime | None = None
    if expiration is not None:
        try:
            if not isinstance(expiration, str):
                raise ValueError
            expires = parse_timestamp(expiration)
        except ValueError:
            raise SourceFailed(f"{what} printed an Expiration that is not an ISO 8601 time stamp") from None
    return Credentials(key, secret, token or None, expires)


@attrs.frozen
class _Lookup:
    files: AwsFiles
    environ: Mapping[str, str] = attrs.field(repr=False)
    region: str | None


class SharedFilesSource:
    """The selected profile of ``~/.aws/credentials`` and ``~/.aws/config``.

    The profile is ``profile``, else ``AWS_PROFILE``, else ``default``. In
    botocore's order: ``role_arn`` (with ``web_identity_token_file``, or
    assumed through STS from ``source_profile``, recursively with cycle
    detection, or from ``credential_source``: ``Environment``,
    ``Ec2InstanceMetadata``, ``EcsContainer``; with ``role_session_name``,
    ``external_id``, ``duration_seconds``), then static keys from the
    credentials file, then ``credential_process``, then static keys from the
    config file. The files are re-read on every load (so on every refresh).
    """

    __slots__ = ("_environ", "_process_timeout", "_profile")

    name: Final = "shared credentials and config files"

    def __init__(
        self,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        process_timeout: float = PROCESS_TIMEOUT,
    ) -> None:
        self._profile = profile
        self._environ = environ
        self._process_timeout = process_timeout

    def __repr__(self) -> str:
        return f"SharedFilesSource(profile={self._profile!r})"

    async def load(self) -> Credentials:
        """Credentials of the selected profile; ``SourceUnavailable`` when it has none, ``SourceFailed`` on errors."""
        environ = _env(self._environ)
        try:
            files = await load_files(environ)
        except ConfigFileError as exc:
            raise SourceFailed(str(exc)) from None
        name, named = profile_name(self._profile, environ)
        if not files.has(name):
            if named:
                raise SourceFailed(f"profile {name!r} not found in {files.where}")
            raise SourceUnavailable(f"no [default] profile in {files.where}")
        region = region_from_env(environ) or files.merged(name).get("region", "").strip() or None
        lookup = _Lookup(files, environ, region)
        return await self._profile_credentials(lookup, name, [name], as_source=False)

    async def _profile_credentials(
        self, lookup: _Lookup, name: str, visited: list[str], *, as_source: bool
    ) -> Credentials:
        files = lookup.files
        values = files.merged(name)
        if as_source and _has_static(values):
            return _static(values)  # a source profile's keys win over its own role_arn, as in botocore
        if values.get("role_arn"):
            if values.get("web_identity_token_file"):
                return await assume_role_with_web_identity(
                    role_arn=values["role_arn"],
                    token_file=values["web_identity_token_file"],
                    session_name=values.get("role_session_name") or default_session_name(),
                    environ=lookup.environ,
                    region=lookup.region,
                )
            return await self._assume_role(lookup, name, values, visited)
        if _has_static(files.credentials.get(name, {})):
            return _static(files.credentials[name])
        command = values.get("credential_process")
        if command:
            return await run_credential_process(command, profile=name, timeout=self._process_timeout)
        if _has_static(files.config.get(name, {})):
            return _static(files.config[name])
        if as_source:
            raise SourceFailed(f"source profile {name!r} has no credentials")
        raise SourceUnavailable(f"profile {name!r} has no keys, credential_process or role_arn")

    async def _assume_role(
        self, lookup: _Lookup, name: str, values: Mapping[str, str], visited: list[str]
    ) -> Credentials:
        source_profile = values.get("source_profile")
        credential_source = values.get("credential_source")
        if source_profile and credential_source:
            raise SourceFailed(f"profile {name!r} has both source_profile and credential_source")
        if values.get("mfa_serial"):
            raise SourceFailed(
                f"profile {name!r} needs an MFA code (mfa_serial), which a non-interactive client cannot ask for; "
                "use credential_process or fetch the session first"
            )
        if source_profile:
            if source_profile in visited and not (
                source_profile == name and _has_static(lookup.files.merged(source_profile))
            ):
                chain = " -> ".join([*visited, source_profile])
                raise SourceFailed(f"source_profile loop: {chain}")
            if not lookup.files.has(source_profile):
                raise SourceFailed(f"source_profile {source_profile!r} of profile {name!r} not found")
            source = await self._profile_credentials(lookup, source_profile, [*visited, source_profile], as_source=True)
        elif credential_source:
            source = await self._credential_source(lookup, name, credential_source)
        else:
            raise SourceFailed(f"profile {name!r} has role_arn but neither source_profile nor credential_source")
        params = {
            "RoleArn": values["role_arn"],
            "RoleSessionName": values.get("role_session_name") or default_session_name(),
        }
        if values.get("external_id"):
            params["ExternalId"] = values["external_id"]
        if values.get("duration_seconds"):
            try:
                params["DurationSeconds"] = str(int(values["duration_seconds"]))
            except ValueError:
                raise SourceFailed(f"duration_seconds of profile {name!r} is not a whole number") from None
        try:
            return await sts_call(
                "AssumeRole", params, environ=lookup.environ, region=lookup.region, credentials=source
            )
        except SourceFailed as exc:
            raise SourceFailed(f"profile {name!r}: {exc}") from None

    async def _credential_source(self, lookup: _Lookup, name: str, kind: str) -> Credentials:
        source: CredentialSource
        if kind == "Environment":
            source = EnvironmentProvider(lookup.environ)
        elif kind == "Ec2InstanceMetadata":
            source = InstanceMetadataSource(lookup.environ)
        elif kind == "EcsContainer":
            source = ContainerSource(lookup.environ)
        else:
            raise SourceFailed(
                f"credential_source of profile {name!r} must be Environment, Ec2InstanceMetadata or EcsContainer"
            )
        try:
            return await source.load()
        except SourceUnavailable as exc:
            raise SourceFailed(f"credential_source {kind} of profile {name!r} gave nothing: {exc}") from None


# --- 4. container -------------------------------------------------------------------------------


def _allowed_full_uri(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname in _CONTAINER_HOSTS:
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _json_credentials(what: str, body: bytes, token_field: str) -> Credentials:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise SourceFailed(f"{what} answered with something that is not a JSON object")
    key, secret, token = data.get("AccessKeyId"), data.get("SecretAccessKey"), data.get(token_field)
    missing = [n for n, v in (("AccessKeyId", key), ("SecretAccessKey", secret)) if not isinstance(v, str) or not v]
    if missing or not isinstance(key, str) or not isinstance(secret, str):
        raise SourceFailed(f"{what} answered without {', '.join(missing)}")
    expiration = data.get("Expiration")
    try:
        expires = parse_timestamp(expiration) if isinstance(expiration, str) else None
    except ValueError:
        raise SourceFailed(f"{what} answered with an Expiration that is not a time stamp") from None
    return Credentials(key, secret, token if isinstance(token, str) and token else None, expires)


class ContainerSource:
    """The ECS / EKS Pod Identity credentials endpoint.

    ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (below ``http://169.254.170.2``)
    or ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (https, or http to a loopback
    address or the ECS/EKS link-local hosts), with ``Authorization`` from
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (re-read each time) or
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN``. Timeouts of ``timeout`` seconds;
    5xx answers and connection failures are tried ``attempts`` times.
    """

    __slots__ = ("_attempts", "_environ", "_relative_base", "_timeout")

    name: Final = "container credentials endpoint"

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        relative_base: str = CONTAINER_BASE_URL,
        timeout: float = CONTAINER_TIMEOUT,
        attempts: int = CONTAINER_ATTEMPTS,
    ) -> None:
        self._environ = environ
        self._relative_base = relative_base.rstrip("/")
        self._timeout = timeout
        self._attempts = max(1, attempts)

    def __repr__(self) -> str:
        return "ContainerSource()"

    async def _authorization(self, environ: Mapping[str, str]) -> str | None:
        token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        if token_file:
            try:
                token: str | None = (await _read_text(token_file)).strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceFailed(
                    f"cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {token_file} ({type(exc).__name__})"
                ) from None
        else:
            token = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        if token is not None and ("\r" in token or "\n" in token):
            raise SourceFailed("the container authorization token is not a valid header value")
        return token or None

    async def load(self) -> Credentials:
        """Fetch credentials from the endpoint, or raise ``SourceUnavailable`` when neither URI is set."""
        environ = _env(self._environ)
        relative = environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        full = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if relative:
            url = self._relative_base + relative
        elif full:
            if not _allowed_full_uri(full):
                raise SourceFailed(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address "
                    f"or one of {', '.join(sorted(_CONTAINER_HOSTS))}"
                )
            url = full
        else:
            raise SourceUnavailable(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI not set"
            )
        headers = {"Accept": "application/json"}
        token = await self._authorization(environ)
        if token:
            headers["Authorization"] = token
        what = f"the container endpoint {_origin(url)}"
        problem = ""
        async with _session(self._timeout) as session:
            for attempt in range(1, self._attempts + 1):
                try:
                    answer = await _request(session, "GET", url, headers=headers)
                except _HttpError as exc:
                    problem = str(exc)
                else:
                    if answer.status == 200:
                        return _json_credentials(what, answer.body, "Token")
                    problem = f"{what} answered HTTP {answer.status}"
                    if answer.status < 500:
                        break
                log.debug("container credentials, attempt %d: %s", attempt, problem)
                if attempt < self._attempts:
                    await asyncio.sleep(0.1 * attempt)
        raise SourceFailed(problem)


# --- 5. EC2 instance metadata -------------------------------------------------------------------


def _number(environ: Mapping[str, str], variable: str, default: float) -> float:
    try:
        value = float(environ.get(variable, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class InstanceMetadataSource:
    """EC2 instance metadata, IMDSv2: a token by ``PUT /latest/api/token``, then the role and its credentials.

    Disabled by ``AWS_EC2_METADATA_DISABLED=true``. The endpoint is
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, else ``http://169.254.169.254``
    (``http://[fd00:ec2::254]`` with ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6``).
    Each request times out after ``AWS_METADATA_SERVICE_TIMEOUT`` seconds (1)
    and is tried ``AWS_METADATA_SERVICE_NUM_ATTEMPTS`` times (1). As botocore
    does, when the token request is refused (403/404/405) or its answer times
    out (a container with a hop limit of 1) it falls back to IMDSv1, unless
    ``AWS_EC2_METADATA_V1_DISABLED=true``; a connection that cannot be made
    means there is no metadata service.
    """

    __slots__ = ("_environ",)

    name: Final = "EC2 instance metadata"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def __repr__(self) -> str:
        return "InstanceMetadataSource()"

    @staticmethod
    async def _call(
        session: aiohttp.ClientSession, method: str, url: str, headers: Mapping[str, str], attempts: int
    ) -> _Answer:
        failure = _HttpError("error", "not tried")
        for _ in range(attempts):
            try:
                answer = await _request(session, method, url, headers=headers)
            except _HttpError as exc:
                failure = exc
                continue
            if answer.status < 500 or attempts == 1:
                return answer
            failure = _HttpError("error", f"{_origin(url)} answered HTTP {answer.status}")
        raise failure

    async def load(self) -> Credentials:
        """Fetch the instance profile's credentials, or raise ``SourceUnavailable``."""
        environ = _env(self._environ)
        if _true(environ, "AWS_EC2_METADATA_DISABLED"):
            raise SourceUnavailable("disabled by AWS_EC2_METADATA_DISABLED")
        endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or (
            IMDS_ENDPOINT_IPV6
            if environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").strip().lower() == "ipv6"
            else IMDS_ENDPOINT
        )
        endpoint = endpoint.rstrip("/")
        timeout = _number(environ, "AWS_METADATA_SERVICE_TIMEOUT", IMDS_TIMEOUT)
        attempts = int(_number(environ, "AWS_METADATA_SERVICE_NUM_ATTEMPTS", IMDS_ATTEMPTS))
        v1_allowed = not _true(environ, "AWS_EC2_METADATA_V1_DISABLED")
        origin = _origin(endpoint)
        async with _session(timeout) as session:
            token = await self._token(session, endpoint, attempts, v1_allowed)
            headers = {"X-aws-ec2-metadata-token": token} if token else {}
            base = endpoint + "/latest/meta-data/iam/security-credentials/"
            try:
                answer = await self._call(session, "GET", base, headers, attempts)
                if answer.status != 200:
                    raise SourceUnavailable(self._refusal(origin, answer.status, token, "the role name"))
                roles = [line.strip() for line in answer.body.decode("utf-8", "replace").splitlines() if line.strip()]
                if not roles:
                    raise SourceUnavailable(f"{origin} lists no IAM role for this instance")
                answer = await self._call(session, "GET", base + quote(roles[0], safe=""), headers, attempts)
            except _HttpError as exc:
                raise SourceUnavailable(str(exc)) from None
            if answer.status != 200:
                raise SourceUnavailable(self._refusal(origin, answer.status, token, f"the role {roles[0]!r}"))
        what = f"the instance metadata service {origin}"
        try:
            data = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and data.get("Code", "Success") != "Success":
            raise SourceUnavailable(f"{what} answered Code {redact(str(data.get('Code')), 60)!r}")
        try:
            return _json_credentials(what, answer.body, "Token")
        except SourceFailed as exc:
            raise SourceUnavailable(str(exc)) from None

    @staticmethod
    def _refusal(origin: str, status: int, token: str | None, what: str) -> str:
        text = f"{origin} answered HTTP {status} for {what}"
        if status == 404:
            text += " (no IAM role attached to this instance?)"
        elif status == 401 and token is None:
            text += " (IMDSv1 refused and no IMDSv2 token)"
        return text

    async def _token(
        self, session: aiohttp.ClientSession, endpoint: str, attempts: int, v1_allowed: bool
    ) -> str | None:
        origin = _origin(endpoint)
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL}
        try:
            answer = await self._call(session, "PUT", endpoint + "/latest/api/token", headers, attempts)
        except _HttpError as exc:
            if exc.kind == "read-timeout" and v1_allowed:
                log.debug("IMDSv2 token request to %s timed out; trying IMDSv1", origin)
                return None
            raise SourceUnavailable(str(exc)) from None
        if answer.status == 200:
            token = answer.body.decode("utf-8", "replace").strip()
            if token and "\r" not in token and "\n" not in token:
                return token
            raise SourceUnavailable(f"{origin} answered the token request with an unusable token")
        if answer.status in (403, 404, 405) and v1_allowed:
            log.debug("IMDSv2 token request to %s answered HTTP %d; trying IMDSv1", origin, answer.status)
            return None
        raise SourceUnavailable(f"{origin} answered HTTP {answer.status} to the IMDSv2 token request")


def default_sources(profile: str | None, environ: Mapping[str, str] | None) -> list[CredentialSource]:
    """The default chain's sources, in order; a named ``profile`` skips the environment keys."""
    first: CredentialSource = (
        EnvironmentProvider(environ)
        if profile is None
        else SkippedSource(EnvironmentProvider.name, f"skipped because profile {profile!r} was named explicitly")
    )
    return [
        first,
        WebIdentitySource(profile, environ),
        SharedFilesSource(profile, environ),
        ContainerSource(environ),
        InstanceMetadataSource(environ),
    ]
