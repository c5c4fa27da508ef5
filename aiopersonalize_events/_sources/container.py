"""The container source: the ECS / EKS Pod Identity credentials endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from .._credentials import Credentials, SourceFailed, SourceUnavailable
from .._endpoints import is_loopback_host
from .._environ import environ_or_os
from ._documents import json_credentials, read_text
from ._http import HttpError, origin, request, session

__all__ = ["CONTAINER_ATTEMPTS", "CONTAINER_BASE_URL", "CONTAINER_TIMEOUT", "ContainerSource"]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

CONTAINER_TIMEOUT: Final = 2.0
CONTAINER_ATTEMPTS: Final = 3
CONTAINER_BASE_URL: Final = "http://169.254.170.2"
_CONTAINER_HOSTS: Final = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"})


def _allowed_full_uri(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    return parts.hostname in _CONTAINER_HOSTS or is_loopback_host(parts.hostname)


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
                token: str | None = (await read_text(token_file)).strip()
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
        environ = environ_or_os(self._environ)
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
        what = f"the container endpoint {origin(url)}"
        problem = ""
        async with session(self._timeout) as client:
            for attempt in range(1, self._attempts + 1):
                try:
                    answer = await request(client, "GET", url, headers=headers)
                except HttpError as exc:
                    problem = str(exc)
                else:
                    if answer.status == 200:
                        return json_credentials(what, answer.body)
                    problem = f"{what} answered HTTP {answer.status}"
                    if answer.status < 500:
                        break
                log.debug("container credentials, attempt %d: %s", attempt, problem)
                if attempt < self._attempts:
                    await asyncio.sleep(0.1 * attempt)
        raise SourceFailed(problem)
