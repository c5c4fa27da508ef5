"""The first source of the default chain: the ``AWS_ACCESS_KEY_ID`` family of environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .._credentials import Credentials, SourceUnavailable
from .._environ import environ_or_os
from ..errors import NoCredentialsError

__all__ = ["EnvironmentProvider", "credentials_from_env"]


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    """Read ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` (or ``AWS_SECURITY_TOKEN``)."""
    key = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None)


class EnvironmentProvider:
    """Credentials from the ``AWS_ACCESS_KEY_ID`` family of environment variables.

    Both a ``CredentialProvider`` and a ``CredentialSource`` (the default
    chain's first). The variables are read when resolved, not when constructed.
    """

    __slots__ = ("_environ",)

    name: Final = "environment variables"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    async def load(self) -> Credentials:
        """Return the environment's credentials or raise ``SourceUnavailable``."""
        found = credentials_from_env(environ_or_os(self._environ))
        if found is None:
            raise SourceUnavailable("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set")
        return found

    async def resolve(self) -> Credentials:
        """Return the environment's credentials or raise ``NoCredentialsError``."""
        try:
            return await self.load()
        except SourceUnavailable as exc:
            raise NoCredentialsError(sources=(f"{self.name}: {exc}",)) from None

    def __repr__(self) -> str:
        return "EnvironmentProvider()"
