"""Credentials, the provider and source protocols, and the two providers that need no source.

``Credentials`` is an immutable value whose ``repr`` never shows the secret
key or the session token. A ``CredentialProvider`` is anything with an
``async resolve() -> Credentials``; the client calls it before every request,
so a provider that caches and refreshes is cheap to call. A
``CredentialSource`` is one place credentials may come from (an uncached
``load()`` that raises ``SourceUnavailable`` or ``SourceFailed``); the sources
themselves live in ``_sources`` and the default chain over them in ``_chain``.
This module imports neither: it is the bottom of the credential layer.

``RefreshingProvider`` caches temporary credentials from any async fetch and
refreshes them before they expire:

- advisory window (``ADVISORY_REFRESH_SECONDS``, 15 minutes before expiry, as
  botocore): one caller refreshes while the others keep using the current
  credentials; if that refresh fails, a warning is logged, the still-valid
  credentials stay in use, and the next attempt waits ``ADVISORY_RETRY_SECONDS``;
- mandatory window (``MANDATORY_REFRESH_SECONDS``, 10 minutes before expiry):
  every caller waits for the one refresh in flight, and a failure is raised.

Refreshes are single-flight under one ``asyncio.Lock``; the clock is injectable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Final, Protocol, runtime_checkable

import attrs

from ._redact import hidden as _hidden
from .errors import NoCredentialsError, PersonalizeEventsError

__all__ = [
    "ADVISORY_REFRESH_SECONDS",
    "ADVISORY_RETRY_SECONDS",
    "MANDATORY_REFRESH_SECONDS",
    "Clock",
    "CredentialProvider",
    "CredentialSource",
    "Credentials",
    "RefreshingProvider",
    "SourceFailed",
    "SourceUnavailable",
    "StaticProvider",
]

log: Final = logging.getLogger("aiopersonalize_events.credentials")

ADVISORY_REFRESH_SECONDS: Final = 15 * 60
"""Refresh this long before expiry, if no other caller is refreshing; failures keep the current credentials."""
MANDATORY_REFRESH_SECONDS: Final = 10 * 60
"""From this long before expiry, callers wait for fresh credentials; failures are raised."""
ADVISORY_RETRY_SECONDS: Final = 30.0
"""After a failed advisory refresh, wait this long before the next advisory attempt."""
_SHORT_LIVED_HOLD_SECONDS: Final = 60.0

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; injectable for tests."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


class SourceUnavailable(Exception):
    """A credential source is not configured or has nothing to give; the chain moves on to the next.

    The message says why, for ``NoCredentialsError``; it never holds a secret.
    """


class SourceFailed(Exception):
    """A credential source is configured but could not give credentials; the chain stops here.

    The message says what failed, for ``NoCredentialsError``; it never holds a secret.
    """


class CredentialSource(Protocol):
    """One place credentials may come from: a name for messages and an uncached ``load()``.

    ``load()`` raises ``SourceUnavailable`` when the source is not set up,
    ``SourceFailed`` when it is set up but failed.
    """

    @property
    def name(self) -> str:
        """A short description of the source for messages (``environment variables``)."""
        ...

    async def load(self) -> Credentials:
        """Fetch credentials from this source now."""
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


def _describe(exc: BaseException) -> str:
    # our own messages are written never to hold a secret; a foreign one might
    if isinstance(exc, (PersonalizeEventsError, SourceUnavailable, SourceFailed)):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


_FRESH, _ADVISORY, _MANDATORY = "fresh", "advisory", "mandatory"


class RefreshingProvider:
    """Caches temporary credentials from an async ``fetch()`` and refreshes them before they expire.

    Credentials without ``expiration`` are kept for good. Within
    ``advisory_window`` seconds of expiry (15 minutes by default) the first
    caller to notice refreshes while the others keep using the current
    credentials; a failed advisory refresh logs a warning, keeps the
    still-valid credentials and is not retried for ``ADVISORY_RETRY_SECONDS``.
    Within ``mandatory_window`` seconds (10 minutes) every caller waits for the
    single refresh in flight and its failure is raised. Fresh credentials that
    already fall in the mandatory window (a short-lived token) are used and not
    fetched again for up to a minute, unless they expire first. ``clock``
    returns the current aware datetime and exists for tests.
    """

    __slots__ = (
        "_advisory",
        "_clock",
        "_credentials",
        "_fetch",
        "_lock",
        "_mandatory",
        "_name",
        "_quiet_floor",
        "_quiet_until",
    )

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Credentials]],
        *,
        name: str = "credential source",
        initial: Credentials | None = None,
        advisory_window: float = ADVISORY_REFRESH_SECONDS,
        mandatory_window: float = MANDATORY_REFRESH_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        if not 0 <= mandatory_window <= advisory_window:
            raise ValueError("need 0 <= mandatory_window <= advisory_window")
        self._fetch = fetch
        self._name = name
        self._advisory = float(advisory_window)
        self._mandatory = float(mandatory_window)
        self._clock: Clock = clock or _utcnow
        self._lock = asyncio.Lock()
        self._credentials: Credentials | None = None
        self._quiet_until: datetime | None = None
        self._quiet_floor = 0.0
        if initial is not None:
            self._accept(initial, self._clock())

    def __repr__(self) -> str:
        return f"RefreshingProvider({self._name!r}, credentials={self._credentials!r})"

    @property
    def credentials(self) -> Credentials | None:
        """The cached credentials, if any (no refresh is attempted)."""
        return self._credentials

    def _state(self, credentials: Credentials, now: datetime) -> str:
        if credentials.expiration is None:
            return _FRESH
        remaining = (credentials.expiration - now).total_seconds()
        if remaining >= self._advisory:
            return _FRESH
        if self._quiet_until is not None and now < self._quiet_until and remaining > self._quiet_floor:
            return _FRESH
        return _ADVISORY if remaining >= self._mandatory else _MANDATORY

    async def resolve(self) -> Credentials:
        """Return valid credentials, fetching or refreshing them first when due."""
        current = self._credentials
        if current is not None:
            state = self._state(current, self._clock())
            if state == _FRESH:
                return current
            if state == _ADVISORY:
                if self._lock.locked():
                    return current  # someone is refreshing; these are still good
                async with self._lock:  # free, so (almost always) taken at once
                    current = self._credentials or current
                    state = self._state(current, self._clock())
                    if state == _FRESH:
                        return current
                    return await self._refresh(mandatory=state == _MANDATORY)
        async with self._lock:
            current = self._credentials
            if current is not None and self._state(current, self._clock()) != _MANDATORY:
                return current  # refreshed by the caller we waited for
            return await self._refresh(mandatory=True)

    async def _refresh(self, *, mandatory: bool) -> Credentials:
        current = self._credentials
        try:
            fresh = await self._fetch()
        except Exception as exc:
            if current is None:
                raise  # a first fetch: the caller gets the error, there is nothing to warn about
            if mandatory:
                log.warning("refreshing credentials from %s failed (mandatory window): %s", self._name, _describe(exc))
                raise
            now = self._clock()
            self._quiet_until = now + timedelta(seconds=ADVISORY_RETRY_SECONDS)
            self._quiet_floor = self._mandatory
            left = (current.expiration - now).total_seconds() if current.expiration else float("inf")
            log.warning(
                "refreshing credentials from %s failed (advisory window): %s; "
                "keeping the current ones, which expire in %.0f s",
                self._name,
                _describe(exc),
                left,
            )
            return current
        now = self._clock()
        if fresh.expiration is not None and fresh.expiration <= now:
            if not mandatory and current is not None:
                log.warning("%s returned expired credentials; keeping the current ones", self._name)
                self._quiet_until = now + timedelta(seconds=ADVISORY_RETRY_SECONDS)
                self._quiet_floor = self._mandatory
                return current
            raise NoCredentialsError(f"{self._name} returned credentials that have already expired")
        self._accept(fresh, now)
        log.debug("credentials from %s refreshed; they expire at %s", self._name, fresh.expiration)
        return fresh

    def _accept(self, fresh: Credentials, now: datetime) -> None:
        self._credentials = fresh
        self._quiet_until = None
        if fresh.expiration is not None:
            remaining = (fresh.expiration - now).total_seconds()
            if remaining < self._mandatory:
                # short-lived: use them, but do not fetch again on every call
                hold = min(_SHORT_LIVED_HOLD_SECONDS, max(remaining, 0.0) / 2)
                self._quiet_until = now + timedelta(seconds=hold)
                self._quiet_floor = 0.0
