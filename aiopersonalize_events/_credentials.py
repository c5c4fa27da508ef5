"""Credentials, the provider protocol, and the providers the client uses by default.

``Credentials`` is an immutable value whose ``repr`` never shows the secret
key or the session token. A ``CredentialProvider`` is anything with an
``async resolve() -> Credentials``; the client calls it before every request,
so a provider that caches and refreshes is cheap to call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

import attrs

from .errors import NoCredentialsError, NoRegionError

__all__ = [
    "CredentialProvider",
    "Credentials",
    "EnvironmentProvider",
    "StaticProvider",
    "default_provider",
    "resolve_region",
]


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


def _access_key_repr(value: str) -> str:
    # like the AWS console: enough of the key id to tell keys apart
    return repr(value[:4] + "..." + value[-4:]) if len(value) > 12 else "'***'"


@attrs.frozen(kw_only=False)
class Credentials:
    """An AWS access key pair, with a session token and expiry for temporary credentials.

    ``expiration`` is an aware datetime (naive is taken as UTC) or None for
    credentials that do not expire. ``repr`` and ``str`` show only the ends of
    the access key id, never the secret key or the token.
    """

    access_key_id: str = attrs.field(repr=_access_key_repr)
    secret_access_key: str = attrs.field(repr=_hidden)
    session_token: str | None = attrs.field(default=None, repr=_hidden)
    expiration: datetime | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.expiration is not None and self.expiration.tzinfo is None:
            object.__setattr__(self, "expiration", self.expiration.replace(tzinfo=timezone.utc))

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when these credentials expire less than ``seconds`` from ``now``."""
        if self.expiration is None:
            return False
        current = now or datetime.now(timezone.utc)
        return (self.expiration - current).total_seconds() < seconds


@runtime_checkable
class CredentialProvider(Protocol):
    """Anything that can produce credentials on demand, without blocking the loop.

    ``resolve()`` is awaited before each request; implementations should
    cache and refresh rather than fetch every time.
    """

    async def resolve(self) -> Credentials:
        """Return credentials that are valid now."""
        ...


class StaticProvider:
    """Always returns the same credentials (what an explicit ``Credentials`` becomes)."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    async def resolve(self) -> Credentials:
        """Return the fixed credentials."""
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticProvider({self._credentials!r})"


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    """Read ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``."""
    key = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or None)


class EnvironmentProvider:
    """Credentials from the ``AWS_ACCESS_KEY_ID`` family of environment variables."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    async def resolve(self) -> Credentials:
        """Return the environment's credentials or raise ``NoCredentialsError``."""
        found = credentials_from_env(os.environ if self._environ is None else self._environ)
        if found is None:
            raise NoCredentialsError(sources=("environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set",))
        return found

    def __repr__(self) -> str:
        return "EnvironmentProvider()"


def default_provider(profile: str | None = None) -> CredentialProvider:
    """The provider used when the client is given no credentials.

    For now: the environment variables. The full chain of the AWS SDKs
    (web identity, shared files, container, instance metadata) replaces this.
    """
    return EnvironmentProvider()


async def resolve_region(region: str | None = None, profile: str | None = None) -> str:
    """Find the region: the argument, then ``AWS_REGION``, then ``AWS_DEFAULT_REGION``.

    Raises ``NoRegionError`` naming the places looked at when none is set.
    """
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise NoRegionError(
            "no AWS region: pass region=..., or set AWS_REGION or AWS_DEFAULT_REGION, "
            "or a region in the profile's section of ~/.aws/config"
        )
    return found
