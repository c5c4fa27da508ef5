"""The last source of the default chain: EC2 instance metadata (IMDSv2, with botocore's IMDSv1 fallback)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

import aiohttp

from .._credentials import Credentials, SourceFailed, SourceUnavailable
from .._environ import environ_or_os, flag, positive_int, positive_number
from ._documents import json_credentials, redact
from ._http import Answer, HttpError, origin, request, session

__all__ = ["IMDS_ENDPOINT", "IMDS_ENDPOINT_IPV6", "InstanceMetadataSource"]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

IMDS_TIMEOUT: Final = 1.0
IMDS_ATTEMPTS: Final = 1
IMDS_TOKEN_TTL: Final = "21600"
IMDS_ENDPOINT: Final = "http://169.254.169.254"
IMDS_ENDPOINT_IPV6: Final = "http://[fd00:ec2::254]"


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
        client: aiohttp.ClientSession, method: str, url: str, headers: Mapping[str, str], attempts: int
    ) -> Answer:
        failure = HttpError("error", "not tried")
        for _ in range(attempts):
            try:
                answer = await request(client, method, url, headers=headers)
            except HttpError as exc:
                failure = exc
                continue
            if answer.status < 500 or attempts == 1:
                return answer
            failure = HttpError("error", f"{origin(url)} answered HTTP {answer.status}")
        raise failure

    async def load(self) -> Credentials:
        """Fetch the instance profile's credentials, or raise ``SourceUnavailable``."""
        environ = environ_or_os(self._environ)
        if flag(environ, "AWS_EC2_METADATA_DISABLED"):
            raise SourceUnavailable("disabled by AWS_EC2_METADATA_DISABLED")
        endpoint = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or (
            IMDS_ENDPOINT_IPV6
            if environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").strip().lower() == "ipv6"
            else IMDS_ENDPOINT
        )
        endpoint = endpoint.rstrip("/")
        timeout = positive_number(environ, "AWS_METADATA_SERVICE_TIMEOUT", IMDS_TIMEOUT)
        attempts = positive_int(environ, "AWS_METADATA_SERVICE_NUM_ATTEMPTS", IMDS_ATTEMPTS)
        v1_allowed = not flag(environ, "AWS_EC2_METADATA_V1_DISABLED")
        where = origin(endpoint)
        async with session(timeout) as client:
            token = await self._token(client, endpoint, attempts, v1_allowed)
            headers = {"X-aws-ec2-metadata-token": token} if token else {}
            base = endpoint + "/latest/meta-data/iam/security-credentials/"
            try:
                answer = await self._call(client, "GET", base, headers, attempts)
                if answer.status != 200:
                    raise SourceUnavailable(self._refusal(where, answer.status, token, "the role name"))
                roles = [line.strip() for line in answer.body.decode("utf-8", "replace").splitlines() if line.strip()]
                if not roles:
                    raise SourceUnavailable(f"{where} lists no IAM role for this instance")
                answer = await self._call(client, "GET", base + quote(roles[0], safe=""), headers, attempts)
            except HttpError as exc:
                raise SourceUnavailable(str(exc)) from None
            if answer.status != 200:
                raise SourceUnavailable(self._refusal(where, answer.status, token, f"the role {roles[0]!r}"))
        what = f"the instance metadata service {where}"
        try:
            data = json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict) and data.get("Code", "Success") != "Success":
            raise SourceUnavailable(f"{what} answered Code {redact(str(data.get('Code')), 60)!r}")
        try:
            return json_credentials(what, answer.body)
        except SourceFailed as exc:
            raise SourceUnavailable(str(exc)) from None

    @staticmethod
    def _refusal(where: str, status: int, token: str | None, what: str) -> str:
        text = f"{where} answered HTTP {status} for {what}"
        if status == 404:
            text += " (no IAM role attached to this instance?)"
        elif status == 401 and token is None:
            text += " (IMDSv1 refused and no IMDSv2 token)"
        return text

    async def _token(self, client: aiohttp.ClientSession, endpoint: str, attempts: int, v1_allowed: bool) -> str | None:
        where = origin(endpoint)
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": IMDS_TOKEN_TTL}
        try:
            answer = await self._call(client, "PUT", endpoint + "/latest/api/token", headers, attempts)
        except HttpError as exc:
            if exc.kind == "read-timeout" and v1_allowed:
                log.debug("IMDSv2 token request to %s timed out; trying IMDSv1", where)
                return None
            raise SourceUnavailable(str(exc)) from None
        if answer.status == 200:
            token = answer.body.decode("utf-8", "replace").strip()
            if token and "\r" not in token and "\n" not in token:
                return token
            raise SourceUnavailable(f"{where} answered the token request with an unusable token")
        if answer.status in (403, 404, 405) and v1_allowed:
            log.debug("IMDSv2 token request to %s answered HTTP %d; trying IMDSv1", where, answer.status)
            return None
        raise SourceUnavailable(f"{where} answered HTTP {answer.status} to the IMDSv2 token request")
