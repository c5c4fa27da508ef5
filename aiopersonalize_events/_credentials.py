"""Credentials, the provider protocol, the default chain, the refreshing cache, and the region.

``Credentials`` is an immutable value whose ``repr`` never shows the secret
key or the session token. A ``CredentialProvider`` is anything with an
``async resolve() -> Credentials``; the client calls it before every request,
so a provider that caches and refreshes is cheap to call.

``default_provider(profile)`` returns the AWS SDKs' chain (a
``CredentialChain``): environment variables, web identity token, the shared
credentials and config files, the container endpoint, EC2 instance metadata.
The sources themselves live in ``_providers``; this module holds what ties
them together. The chain tries each source once, in order, and keeps the
first that gives credentials; temporary credentials are wrapped in a
``RefreshingProvider``, which refreshes them before they expire:

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
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Final, Protocol, runtime_checkable

import attrs

from ._aws_config import ConfigFileError, load_files, profile_name, region_from_env
from .errors import NoCredentialsError, NoRegionError, PersonalizeEventsError

__all__ = [
    "ADVISORY_REFRESH_SECONDS",
    "ADVISORY_RETRY_SECONDS",
    "MANDATORY_REFRESH_SECONDS",
    "Clock",
    "CredentialChain",
    "CredentialProvider",
    "CredentialSource",
    "Credentials",
    "EnvironmentProvider",
    "RefreshingProvider",
    "SourceFailed",
    "SourceUnavailable",
    "StaticProvider",
    "credentials_from_env",
    "default_provider",
    "resolve_region",
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


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    """Read ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``."""
    key = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None)


class EnvironmentProvider:
    """Credentials from the ``AWS_ACCESS_KEY_ID`` family of environment variables.

    Also a ``CredentialSource`` of the default chain (its first). The
    variables are read when resolved, not when constructed.
    """

    __slots__ = ("_environ",)

    name: Final = "environment variables"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    async def load(self) -> Credentials:
        """Return the environment's credentials or raise ``SourceUnavailable``."""
        found = credentials_from_env(os.environ if self._environ is None else self._environ)
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


def _source_loader(source: CredentialSource) -> Callable[[], Awaitable[Credentials]]:
    async def fetch() -> Credentials:
        try:
            return await source.load()
        except (SourceUnavailable, SourceFailed) as exc:
            raise NoCredentialsError(
                f"refreshing AWS credentials from {source.name} failed", sources=(f"{source.name}: {exc}",)
            ) from exc

    return fetch


class CredentialChain:
    """Tries credential sources in order and keeps the first that gives credentials.

    The search happens on the first ``resolve()`` (single-flight: concurrent
    callers wait for the one search and share its result) and again after a
    search that found nothing. Static credentials are then returned as they
    are; temporary ones go through a ``RefreshingProvider`` over the chosen
    source. A source that is configured but fails stops the search, as in
    botocore. ``NoCredentialsError`` lists every source tried and why each
    gave nothing.
    """

    __slots__ = ("_chosen", "_clock", "_description", "_failure", "_lock", "_searches", "_sources", "_windows")

    def __init__(
        self,
        sources: Sequence[CredentialSource],
        *,
        description: str = "credential chain",
        clock: Clock | None = None,
        advisory_window: float = ADVISORY_REFRESH_SECONDS,
        mandatory_window: float = MANDATORY_REFRESH_SECONDS,
    ) -> None:
        self._sources = tuple(sources)
        self._description = description
        self._clock = clock
        self._windows = (advisory_window, mandatory_window)
        self._chosen: CredentialProvider | None = None
        self._lock = asyncio.Lock()
        self._searches = 0
        self._failure: tuple[str, tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        names = ", ".join(source.name for source in self._sources)
        return f"CredentialChain({self._description!r}, sources=[{names}], using={self._chosen!r})"

    @property
    def sources(self) -> tuple[CredentialSource, ...]:
        """The sources, in the order they are tried."""
        return self._sources

    async def resolve(self) -> Credentials:
        """Return credentials from the chosen source, searching the chain first if none is chosen yet."""
        chosen = self._chosen
        if chosen is None:
            seen = self._searches
            async with self._lock:
                if self._chosen is None:
                    if self._searches != seen and self._failure is not None:
                        # a search finished while we waited and found nothing: share its answer
                        raise NoCredentialsError(self._failure[0], sources=self._failure[1])
                    await self._search()
                chosen = self._chosen
            assert chosen is not None
        return await chosen.resolve()

    async def _search(self) -> None:
        tried: list[str] = []
        self._failure = None
        try:
            for source in self._sources:
                try:
                    credentials = await source.load()
                except SourceUnavailable as exc:
                    tried.append(f"{source.name}: {exc}")
                    continue
                except SourceFailed as exc:
                    tried.append(f"{source.name}: {exc}")
                    message = f"AWS credentials could not be loaded from {source.name}"
                    self._failure = (message, tuple(tried))
                    raise NoCredentialsError(message, sources=tuple(tried)) from None
                log.debug("AWS credentials found in %s", source.name)
                if credentials.expiration is None:
                    self._chosen = StaticProvider(credentials)
                else:
                    self._chosen = RefreshingProvider(
                        _source_loader(source),
                        name=source.name,
                        initial=credentials,
                        advisory_window=self._windows[0],
                        mandatory_window=self._windows[1],
                        clock=self._clock,
                    )
                return
            message = "no AWS credentials found"
            self._failure = (message, tuple(tried))
            raise NoCredentialsError(message, sources=tuple(tried))
        finally:
            # waiters share a failure; after a cancelled search (no failure) they search themselves
            self._searches += 1


def default_provider(
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> CredentialChain:
    """The provider used when the client is given no credentials: the AWS SDKs' default chain.

    In order: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (skipped when
    ``profile`` is given, as botocore does), web identity
    (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` through STS), the shared
    credentials and config files (``profile``, else ``AWS_PROFILE``, else
    ``default``: static keys, ``credential_process``, ``role_arn`` with
    ``source_profile`` or ``credential_source`` through STS), the container
    endpoint (ECS, EKS Pod Identity) and EC2 instance metadata (IMDSv2).
    Nothing is read until the first ``resolve()``. ``environ`` replaces
    ``os.environ`` and ``clock`` the refresh clock, for tests.
    """
    from ._providers import default_sources  # imports the signer, which imports this module

    description = f"default chain, profile {profile!r}" if profile else "default chain"
    return CredentialChain(default_sources(profile or None, environ), description=description, clock=clock)


async def resolve_region(
    region: str | None = None,
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Find the region: the argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile's ``region``.

    The profile is ``profile``, else ``AWS_PROFILE``, else ``default``; its
    ``region`` is read from the shared config file (``AWS_CONFIG_FILE``,
    ``~/.aws/config``) in a worker thread. Raises ``NoRegionError`` (a
    ``ValueError``) naming every place looked at when none is set.
    """
    if region:
        return region
    env = os.environ if environ is None else environ
    found = region_from_env(env)
    if found:
        return found
    name, named = profile_name(profile, env)
    section = "[default]" if name == "default" else f"[profile {name}]"
    problem = ""
    try:
        files = await load_files(env)
    except ConfigFileError as exc:
        where = "~/.aws/config"
        problem = f" ({exc})"
    else:
        where = files.config_path
        found = files.merged(name).get("region", "").strip()
        if found:
            return found
        if named and not files.has(name):
            problem = f" (profile {name!r} is not in {files.where})"
    raise NoRegionError(
        "no AWS region: pass region=..., or set AWS_REGION or AWS_DEFAULT_REGION, "
        f"or set region in the {section} section of {where}{problem}"
    )
