"""One client's way to the service: endpoint and signer, network, the aiohttp session, slots, fork re-arming.

``Transport`` is what ``PersonalizeEventsClient`` opens and closes. Opening
resolves, once, what every call needs before it can be sent: the endpoint
(``endpoint_url=``, ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, the config file,
else the region's) and the SigV4 signer for its region; the network
(proxies, the CA bundle, as ``_network`` reads them, and the profile's
``retry_mode``); the pooled aiohttp session (created inside the running
loop, unless the caller gave one); and the connection slots a call takes
before its attempt's timer starts. ``_call.Caller`` reads those attributes
on every attempt; nothing here sends a request or retries.

After ``os.fork()`` every live transport forgets the parent's session, loop
and slots (``after_fork``), so the next call in the child opens afresh; a
session the caller gave stays the parent's, and the client refuses to use
it in the child. ``_network`` (and the ``ssl`` stack it needs) is imported
only when a transport opens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import platform
import weakref
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import aiohttp

from . import _operations as ops
from ._config import ClientConfig, mode_was_defaulted, parse_retry_mode
from ._credentials import CredentialProvider
from ._endpoints import configured_endpoint, endpoint_for, host_header, is_loopback_host
from ._region import resolve_region
from ._version import __version__
from .errors import ClientStateError, NoRegionError, PoolTimeoutError

if TYPE_CHECKING:
    from ._network import Network
    from ._signing import Signer

__all__ = ["CLOSED", "LOCAL_SIGNING_REGION", "OPENED", "UNOPENED", "Slots", "Transport"]

log: Final = logging.getLogger("aiopersonalize_events")

LOCAL_SIGNING_REGION: Final = "us-east-1"
"""The region requests are signed for when the endpoint is on this machine (an emulator) and no region is set."""

UNOPENED: Final = "unopened"
OPENED: Final = "opened"
CLOSED: Final = "closed"


def user_agent(extra: str | None) -> str:
    """The ``User-Agent`` of every call: this package, Python and aiohttp versions, then ``extra``."""
    agent = f"aiopersonalize-events/{__version__} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
    return f"{agent} {extra}" if extra else agent


class Transport:
    """The endpoint, signer, network, session and slots of one client, opened once and closed once.

    Its attributes are read by the call path on every attempt: ``state``
    (``UNOPENED``, ``OPENED``, ``CLOSED``), ``signer`` (None until the
    endpoint and region are known), ``urls`` (operation name to URL),
    ``session``, ``slots``, ``loop``, ``network`` (None until opened),
    ``headers`` (sent with every request), ``request_options`` (aiohttp's
    keywords: the proxy, a caller's session's TLS context), ``timeout`` and
    ``header_timeout``. ``adaptive_from_profile`` turns True once when the
    profile's ``retry_mode`` asks for the adaptive mode the config left open.
    """

    __slots__ = (
        "__weakref__",
        "adaptive_from_profile",
        "config",
        "endpoint",
        "endpoint_arg",
        "header_timeout",
        "headers",
        "loop",
        "network",
        "owns_session",
        "pid",
        "profile",
        "provider",
        "region",
        "region_arg",
        "request_options",
        "session",
        "setup_lock",
        "signer",
        "slots",
        "state",
        "timeout",
        "urls",
    )

    def __init__(
        self,
        config: ClientConfig,
        provider: CredentialProvider,
        *,
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.region_arg = region
        self.profile = profile
        self.endpoint_arg = endpoint_url
        self.session = session
        self.owns_session = session is None
        self.state = UNOPENED
        self.setup_lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.slots: Slots | None = None
        self.urls: dict[str, str] = {}
        self.endpoint: str | None = None
        self.region: str | None = None
        self.signer: Signer | None = None
        self.headers = {"Content-Type": "application/json", "User-Agent": user_agent(config.user_agent_extra)}
        self.timeout = aiohttp.ClientTimeout(
            total=config.attempt_timeout, sock_connect=config.connect_timeout, sock_read=config.read_timeout
        )
        # the answer's headers, as a whole, within connect_timeout + read_timeout of the attempt's start: aiohttp's
        # sock_read bounds each wait for data only, so a server trickling its headers is cut off here
        self.header_timeout = config.connect_timeout + config.read_timeout
        self.network: Network | None = None
        self.request_options: dict[str, Any] = {}
        self.adaptive_from_profile = False
        self.pid = os.getpid()
        _LIVE.add(self)

    def check_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the one this transport opened in (``ClientStateError`` otherwise)."""
        loop = asyncio.get_running_loop()
        if self.loop is not None and self.loop is not loop:
            raise ClientStateError(
                "this PersonalizeEventsClient was opened in another event loop; make one client per loop"
            )
        return loop

    async def open(self, *, need_region: bool) -> None:
        """Resolve the endpoint (and signer), the network and the session, once.

        With ``need_region`` a missing region raises ``NoRegionError``;
        without, it leaves the signer unset (the first call that signs looks
        again) and everything else still opens.
        """
        if self.state == CLOSED:
            raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
        if self.pid != os.getpid():
            raise ClientStateError(
                "this PersonalizeEventsClient was given an aiohttp session that was created before os.fork(); "
                "create the client (or its session) in the child process"
            )
        loop = self.check_loop()
        if self.state == OPENED and (self.signer is not None or not need_region):
            return
        if self.setup_lock is None:
            self.setup_lock = asyncio.Lock()
        async with self.setup_lock:
            if self.state == CLOSED:
                raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
            if self.signer is None:
                try:
                    await self._resolve_endpoint()
                except NoRegionError:
                    if need_region:
                        raise
                    log.debug("no AWS region yet: the first call that signs will look again")
            if self.state == OPENED:
                return
            network = self.network
            if network is None:
                network = await self._resolve_network()
            if self.session is None:
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self.config.max_connections, ssl=network.ssl),
                    timeout=self.timeout,
                )
            self.slots = Slots(self.config.max_connections)
            self.loop = loop
            self.state = OPENED

    async def _resolve_endpoint(self) -> None:
        # endpoint_url=, else AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, AWS_ENDPOINT_URL, the config file; else the region's
        configured = self.endpoint_arg or await configured_endpoint(self.profile)
        region = self.region_arg
        if region is None:
            try:
                region = await resolve_region(None, self.profile)
            except NoRegionError:
                if configured is None or not is_loopback_host(urlsplit(configured).hostname or ""):
                    raise
                region = LOCAL_SIGNING_REGION  # an emulator on this machine: any region signs
                log.debug("no AWS region set; signing for %s the requests to %s", region, configured)
        config = self.config
        endpoint = configured or endpoint_for(
            region, fips=config.use_fips_endpoint, dualstack=config.use_dualstack_endpoint
        )
        parts = urlsplit(endpoint)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            log.warning("endpoint %s uses plain http: requests and their records travel unencrypted", endpoint)
        self.region = region
        self.endpoint = endpoint
        self.urls = {op.name: endpoint + op.path for op in ops.OPERATIONS}
        # imported here, not at package import: aws-requests-auth brings in `requests` (tens of ms),
        # which only a client that actually sends needs
        from ._signing import Signer

        self.signer = Signer(host_header(endpoint), region)

    async def _resolve_network(self) -> Network:
        """Proxies, the CA bundle and the retry mode: the config, the environment, then the profile.

        The profile is read (the config file, in a worker thread) only for
        what neither the ``ClientConfig`` nor the environment sets: its
        ``ca_bundle`` and its ``retry_mode``.
        """
        from . import _network  # with the ssl stack: only once a client opens

        config = self.config
        ca_bundle = config.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
        where = "ca_bundle" if config.ca_bundle else "AWS_CA_BUNDLE"
        if ca_bundle is None or mode_was_defaulted(config.retry_mode):
            ca_bundle, where = await self._read_profile(ca_bundle, where)
        context = None
        if ca_bundle is not None:
            context = await asyncio.to_thread(_network.load_ca_bundle, where, ca_bundle)
        network = _network.Network.from_environment(proxies=config.proxies, ca_bundle=ca_bundle, ssl_context=context)
        options: dict[str, Any] = {}
        endpoint = self.endpoint or ""
        route = network.proxy_for(endpoint)
        if route is not None:
            keywords, headers = route.options(urlsplit(endpoint).scheme)
            options.update(keywords)
            self.headers.update(headers)  # kept out of logs and errors (_call's scrub)
        if not self.owns_session and network.ssl_context is not None:
            options["ssl"] = network.ssl_context  # a caller's session: the CA bundle per request
        self.request_options = options
        self.network = network
        return network

    async def _read_profile(self, ca_bundle: str | None, where: str) -> tuple[str | None, str]:
        """The profile's ``ca_bundle`` (when none was found yet) and whether its ``retry_mode`` is adaptive."""
        from ._aws_config import ConfigFileError, load_config, profile_name

        name, _ = profile_name(self.profile, os.environ)
        try:
            settings = (await load_config(os.environ)).config.get(name, {})
        except ConfigFileError:
            settings = {}  # the region and credential searches report a broken file where they need it
        section = "[default]" if name == "default" else f"[profile {name}]"
        if ca_bundle is None and settings.get("ca_bundle", "").strip():
            ca_bundle = settings["ca_bundle"].strip()
            where = f"ca_bundle of {section}"
        mode = settings.get("retry_mode", "").strip()
        defaulted = mode_was_defaulted(self.config.retry_mode)
        if defaulted and mode and parse_retry_mode(f"retry_mode of {section}", mode) == "adaptive":
            self.adaptive_from_profile = True
        return ca_bundle, where

    def after_fork(self) -> None:
        """In a child process: forget the parent's session, loop and slots; the next call opens afresh.

        A session the caller gave belongs to the parent: the client then
        refuses every call in the child (``ClientStateError``) instead of
        using it.
        """
        if self.state == CLOSED:
            return
        if self.owns_session:
            if self.session is not None:
                _INHERITED_SESSIONS.append(self.session)  # the parent's to close; never touched here
            self.session = None
            self.pid = os.getpid()
        self.state = UNOPENED
        self.setup_lock = None
        self.loop = None
        self.slots = None

    async def close(self) -> None:
        """Close the HTTP session if this transport created it (and not in a forked child); idempotent."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        session, self.session = self.session, None
        if session is not None and self.owns_session and self.pid == os.getpid():
            await session.close()


_LIVE: Final[weakref.WeakSet[Transport]] = weakref.WeakSet()
_INHERITED_SESSIONS: Final[list[aiohttp.ClientSession]] = []
"""Sessions a forked child inherited: kept, never closed or collected there (their sockets are the parent's)."""


def _rearm_after_fork() -> None:
    for transport in list(_LIVE):
        transport.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rearm_after_fork)


class Slots:
    """The client's connection slots: a call takes one before its attempt's timer starts.

    Like a semaphore, but taking a free slot is a plain call (no coroutine),
    and a wait that runs out raises ``PoolTimeoutError``: a pool wait is not
    the service's time, so it never becomes a ``ReadTimeoutError``.
    """

    __slots__ = ("_free", "_size", "_waiters")

    def __init__(self, size: int) -> None:
        self._size = size
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """Take a free slot now; False when none is free."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self, timeout: float | None) -> None:
        """Wait for a slot (at most ``timeout`` seconds, None: as long as it takes), then hold it."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, asyncio.TimeoutError):
                raise PoolTimeoutError(
                    f"no pooled connection came free within {timeout:g}s "
                    f"(max_connections={self._size}); the request was not sent"
                ) from None
            raise

    def release(self) -> None:
        """Give a slot back, to the longest waiter if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
