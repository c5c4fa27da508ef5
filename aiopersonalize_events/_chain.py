"""The default credential chain: which sources, in what order, and how the chosen one is kept fresh.

``default_provider(profile)`` returns the AWS SDKs' chain (a
``CredentialChain``): environment variables, web identity token, the shared
credentials and config files, the container endpoint, EC2 instance metadata.
The chain tries each source once, in order, and keeps the first that gives
credentials; temporary credentials are wrapped in a ``RefreshingProvider``
(``_credentials``), which refreshes them before they expire.

The environment is the chain's first source and the cheap one: the other
sources (and the STS client, the signer and ``requests`` they pull in) are
imported only when a search gets past the environment, so a process whose
credentials are in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` never
loads them. This module imports the sources; they never import it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Final

from ._credentials import (
    ADVISORY_REFRESH_SECONDS,
    MANDATORY_REFRESH_SECONDS,
    Clock,
    CredentialProvider,
    Credentials,
    CredentialSource,
    RefreshingProvider,
    SourceFailed,
    SourceUnavailable,
    StaticProvider,
)
from .errors import NoCredentialsError

__all__ = ["CredentialChain", "SkippedSource", "default_provider"]

log: Final = logging.getLogger("aiopersonalize_events.credentials")


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

    ``more``, when given, returns the sources that follow ``sources``; it is
    called once, when a search first gets past ``sources`` (or when the
    ``sources`` property is read), so sources that are expensive to import
    are imported only when they are needed.
    """

    __slots__ = (
        "_chosen",
        "_clock",
        "_description",
        "_failure",
        "_lock",
        "_more",
        "_searches",
        "_sources",
        "_windows",
    )

    def __init__(
        self,
        sources: Sequence[CredentialSource],
        *,
        more: Callable[[], Sequence[CredentialSource]] | None = None,
        description: str = "credential chain",
        clock: Clock | None = None,
        advisory_window: float = ADVISORY_REFRESH_SECONDS,
        mandatory_window: float = MANDATORY_REFRESH_SECONDS,
    ) -> None:
        self._sources = tuple(sources)
        self._more = more
        self._description = description
        self._clock = clock
        self._windows = (advisory_window, mandatory_window)
        self._chosen: CredentialProvider | None = None
        self._lock = asyncio.Lock()
        self._searches = 0
        self._failure: tuple[str, tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        names = [source.name for source in self._sources]
        if self._more is not None:
            names.append("...")  # the rest are not imported yet
        return f"CredentialChain({self._description!r}, sources=[{', '.join(names)}], using={self._chosen!r})"

    @property
    def sources(self) -> tuple[CredentialSource, ...]:
        """The sources, in the order they are tried (loading any that are not loaded yet)."""
        self._load_more()
        return self._sources

    def _load_more(self) -> bool:
        """Append the sources ``more`` gives, once; True when that added any."""
        if self._more is None:
            return False
        more, self._more = self._more, None
        loaded = tuple(more())
        self._sources += loaded
        return bool(loaded)

    def _in_order(self) -> Iterator[CredentialSource]:
        index = 0
        while index < len(self._sources) or self._load_more():
            yield self._sources[index]
            index += 1

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
            for source in self._in_order():
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
                    # a source may ask for its own windows (``aws login`` credentials live 15 minutes)
                    windows: tuple[float, float] = getattr(source, "refresh_windows", None) or self._windows
                    self._chosen = RefreshingProvider(
                        _source_loader(source),
                        name=source.name,
                        initial=credentials,
                        advisory_window=min(windows[0], self._windows[0]),
                        mandatory_window=min(windows[1], self._windows[1]),
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
    ``default``: ``role_arn`` with ``source_profile`` or ``credential_source``
    through STS, IAM Identity Center (``sso_session`` or legacy SSO), static
    keys, ``login_session``, ``credential_process``), the container
    endpoint (ECS, EKS Pod Identity) and EC2 instance metadata (IMDSv2).
    Nothing is read until the first ``resolve()``, and the sources after the
    environment are imported only when the environment has no credentials.
    ``environ`` replaces ``os.environ`` and ``clock`` the refresh clock, for tests.
    """
    from ._sources.environment import EnvironmentProvider  # small; the chain's first source

    profile = profile or None
    first: CredentialSource = (
        EnvironmentProvider(environ)
        if profile is None
        else SkippedSource(EnvironmentProvider.name, f"skipped because profile {profile!r} was named explicitly")
    )
    description = f"default chain, profile {profile!r}" if profile else "default chain"
    return CredentialChain(
        [first],
        more=functools.partial(_after_environment, profile, environ),
        description=description,
        clock=clock,
    )


def _after_environment(profile: str | None, environ: Mapping[str, str] | None) -> list[CredentialSource]:
    """The default chain's sources after the environment, imported here, when first needed."""
    from ._sources.container import ContainerSource
    from ._sources.instance_metadata import InstanceMetadataSource
    from ._sources.shared_files import SharedFilesSource
    from ._sources.web_identity import WebIdentitySource

    return [
        WebIdentitySource(profile, environ),
        SharedFilesSource(profile, environ),
        ContainerSource(environ),
        InstanceMetadataSource(environ),
    ]
