"""PersonalizeEventsClient: lifecycle, and one private ``_invoke(op, request)`` every call goes through."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import platform
import sys
import weakref
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from . import _network, _telemetry
from . import _operations as ops
from ._batching import DEFAULT_RATE, BatchResult, Rate, run_batched
from ._chain import default_provider
from ._clock import Clock
from ._config import ClientConfig, mode_was_defaulted, parse_retry_mode
from ._credentials import CredentialProvider, Credentials, StaticProvider
from ._endpoints import configured_endpoint, endpoint_for, host_header, is_loopback_host
from ._json import dumps_wire, float_agrees
from ._recorder import DropCallback, EventRecorder, FailureCallback, Overflow, SpoolOption
from ._region import resolve_region
from ._retry import AdaptiveRateLimiter, RetryPolicy
from ._shapes import (
    Action,
    ActionInteraction,
    Event,
    Item,
    PutActionInteractionsRequest,
    PutActionsRequest,
    PutEventsRequest,
    PutItemsRequest,
    PutUsersRequest,
    User,
)
from ._version import __version__
from .errors import (
    ClientStateError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidResponseError,
    NoRegionError,
    PersonalizeEventsError,
    PoolTimeoutError,
    ReadTimeoutError,
    TransportError,
    ValidationError,
    _foreign_body,
    parse_error,
)
from .serde import to_wire

if TYPE_CHECKING:
    from ._signing import Signer

__all__ = ["PersonalizeEventsClient", "ResponseMetadata"]

log: Final = logging.getLogger("aiopersonalize_events")

LOCAL_SIGNING_REGION: Final = "us-east-1"
"""The region requests are signed for when the endpoint is on this machine (an emulator) and no region is set."""

_UNOPENED, _OPENED, _CLOSED = "unopened", "opened", "closed"


@attrs.frozen
class ResponseMetadata:
    """What a successful call returns: the service's request id, the HTTP status and the retries it took."""

    request_id: str | None
    http_status: int
    retry_attempts: int


def _user_agent(extra: str | None) -> str:
    agent = f"aiopersonalize-events/{__version__} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
    return f"{agent} {extra}" if extra else agent


_SIGNED_SECRETS: Final = ("Authorization", "X-Amz-Security-Token", "Proxy-Authorization")


def _scrub(exc: BaseException) -> None:
    """Remove the signing headers aiohttp keeps in ``ClientResponseError.request_info``.

    Our errors chain the aiohttp exception (``raise ... from exc``), and its
    ``repr`` and ``args`` (what pickling and error reporters read) hold the
    request headers, session token included.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        headers = CIMultiDict(info.headers)
        for name in _SIGNED_SECRETS:
            headers.popall(name, None)
        exc.request_info = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
        exc.history = ()
        exc.args = (exc.request_info, exc.history)


def _translate(exc: BaseException) -> TransportError:
    """Map an aiohttp or socket exception to ours, once, at the boundary."""
    _scrub(exc)
    text = _network.without_userinfo(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", None) or type(exc.certificate_error).__name__
        return EndpointConnectionError(
            f"TLS certificate verification failed for {exc.host}:{exc.port} ({reason}); if the endpoint uses a "
            "private CA, point AWS_CA_BUNDLE, the profile's ca_bundle or ClientConfig(ca_bundle=...) at its PEM file"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return EndpointConnectionError(f"could not connect to the endpoint ({text})")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeoutError(f"connecting timed out ({text})")
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return ReadTimeoutError(f"the service did not answer in time ({text})")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return ConnectionClosedError(f"the connection closed before a full answer ({text})")
    if isinstance(exc, aiohttp.ClientResponseError):
        return InvalidResponseError(f"malformed answer ({text})")
    return TransportError(f"request failed ({text})")


class PersonalizeEventsClient:
    """The asyncio client for the Amazon Personalize Events API.

    Use it as an async context manager (or call ``close()``). It finds its
    region (argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile) and
    credentials (argument, else the AWS SDKs' default chain) on first use,
    creates one pooled aiohttp session lazily inside the running loop, and
    sends each ``put_*`` call as one signed request with retries. A caller's
    own ``session`` is used and never closed.

    A region is needed only to sign and to find the endpoint: ``async with``
    a client that has none still opens (a producer that only writes to a
    spool never signs), and ``NoRegionError`` comes at the first call;
    ``open()`` raises it at once. With an endpoint on this machine (an
    emulator: ``endpoint_url=``, ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS``, ...)
    and no region anywhere, requests are signed for ``us-east-1``
    (``LOCAL_SIGNING_REGION``). boto3's keywords ``region_name``,
    ``aws_access_key_id``, ``aws_secret_access_key`` and
    ``aws_session_token`` are accepted as spellings of ``region`` and
    ``credentials``; giving both spellings is a ``ValidationError``.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        credentials: Credentials | CredentialProvider | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        config: ClientConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> None:
        if config is not None and not isinstance(config, ClientConfig):
            raise ValidationError(
                "config", "must be an aiopersonalize_events.ClientConfig (botocore's Config is not accepted)"
            )
        self._config = config or ClientConfig()
        if region_name is not None:
            if region is not None:
                raise ValidationError("region_name", "give region or region_name (boto3's spelling), not both")
            region = region_name
        if aws_access_key_id is not None or aws_secret_access_key is not None or aws_session_token is not None:
            if credentials is not None:
                raise ValidationError(
                    "aws_access_key_id", "give credentials or boto3's aws_access_key_id/... keywords, not both"
                )
            if not aws_access_key_id or not aws_secret_access_key:
                missing = "aws_secret_access_key" if aws_access_key_id else "aws_access_key_id"
                raise ValidationError(missing, "boto3-style keys need both aws_access_key_id and aws_secret_access_key")
            credentials = Credentials(aws_access_key_id, aws_secret_access_key, aws_session_token or None)
        self._region_arg = region
        self._profile = profile
        if isinstance(credentials, Credentials):
            self._provider: CredentialProvider = StaticProvider(credentials)
        elif credentials is None:
            self._provider = default_provider(profile)
        elif isinstance(credentials, CredentialProvider):
            self._provider = credentials
        else:
            raise ValidationError("credentials", "must be Credentials or a CredentialProvider")
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValidationError("endpoint_url", "must be an http:// or https:// URL with a host")
        self._endpoint_arg = endpoint_url.rstrip("/") if endpoint_url else None
        self._session = session
        self._owns_session = session is None
        self._state = _UNOPENED
        self._setup_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: _Slots | None = None
        self._endpoint_url_for: dict[str, str] = {}
        self._endpoint: str | None = None
        self._region: str | None = None
        self._signer: Signer | None = None
        self._base_headers = {
            "Content-Type": "application/json",
            "User-Agent": _user_agent(self._config.user_agent_extra),
        }
        self._timeout = aiohttp.ClientTimeout(
            total=self._config.attempt_timeout,
            sock_connect=self._config.connect_timeout,
            sock_read=self._config.read_timeout,
        )
        # the answer's headers, as a whole, within connect_timeout + read_timeout of the attempt's start: aiohttp's
        # sock_read bounds each wait for data only, so a server trickling its headers is cut off here
        self._header_timeout = self._config.connect_timeout + self._config.read_timeout
        self.retry_policy: RetryPolicy = RetryPolicy.for_config(self._config)
        """The retry policy every call and the recorder share; its ``random`` and ``sleep`` may be replaced.

        In the adaptive retry mode its ``rate_limiter`` is the client's
        ``AdaptiveRateLimiter`` (from the start when the mode was given or
        in ``AWS_RETRY_MODE``; when the profile sets it, once the client opens).
        """
        if self._config.retry_mode == "adaptive":
            self.retry_policy.rate_limiter = AdaptiveRateLimiter(fail_fast=self._config.rate_limit_fail_fast)
        self._network: _network.Network | None = None
        self._request_options: dict[str, Any] = {}
        self._pid = os.getpid()
        _LIVE_CLIENTS.add(self)
        _telemetry.watch_client(self)

    def __repr__(self) -> str:
        return f"PersonalizeEventsClient(region={self.region!r}, endpoint={self.endpoint_url!r}, state={self._state})"

    @property
    def config(self) -> ClientConfig:
        """The configuration this client was built with."""
        return self._config

    @property
    def region(self) -> str | None:
        """The region in use, once resolved (None before the first call)."""
        return self._region or self._region_arg

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint in use, once resolved."""
        return self._endpoint or self._endpoint_arg

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._state == _CLOSED

    async def __aenter__(self) -> PersonalizeEventsClient:
        await self._open(need_region=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Resolve the region and endpoint and create the HTTP session; called by ``async with``.

        Raises ``NoRegionError`` when no region can be found, and
        ``ClientStateError`` when the client is closed or was opened in another
        event loop. (``async with`` opens without a region and leaves
        ``NoRegionError`` to the first call that signs.)
        """
        await self._open(need_region=True)

    async def _open(self, *, need_region: bool) -> None:
        if self._state == _CLOSED:
            raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
        if self._pid != os.getpid():
            raise ClientStateError(
                "this PersonalizeEventsClient was given an aiohttp session that was created before os.fork(); "
                "create the client (or its session) in the child process"
            )
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise ClientStateError(
                "this PersonalizeEventsClient was opened in another event loop; make one client per loop"
            )
        if self._state == _OPENED and (self._signer is not None or not need_region):
            return
        if self._setup_lock is None:
            self._setup_lock = asyncio.Lock()
        async with self._setup_lock:
            if self._state == _CLOSED:
                raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
            if self._signer is None:
                try:
                    await self._resolve_endpoint()
                except NoRegionError:
                    if need_region:
                        raise
                    log.debug("no AWS region yet: the first call that signs will look again")
            if self._state == _OPENED:
                return
            network = self._network
            if network is None:
                network = await self._resolve_network()
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self._config.max_connections, ssl=network.ssl),
                    timeout=self._timeout,
                )
            self._slots = _Slots(self._config.max_connections)
            self._loop = loop
            self._state = _OPENED

    async def _resolve_endpoint(self) -> None:
        # endpoint_url=, else AWS_ENDPOINT_URL_PERSONALIZE_EVENTS, AWS_ENDPOINT_URL, the config file; else the region's
        configured = self._endpoint_arg or await configured_endpoint(self._profile)
        region = self._region_arg
        if region is None:
            try:
                region = await resolve_region(None, self._profile)
            except NoRegionError:
                if configured is None or not is_loopback_host(urlsplit(configured).hostname or ""):
                    raise
                region = LOCAL_SIGNING_REGION  # an emulator on this machine: any region signs
                log.debug("no AWS region set; signing for %s the requests to %s", region, configured)
        endpoint = configured or endpoint_for(
            region, fips=self._config.use_fips_endpoint, dualstack=self._config.use_dualstack_endpoint
        )
        parts = urlsplit(endpoint)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            log.warning("endpoint %s uses plain http: requests and their records travel unencrypted", endpoint)
        self._region = region
        self._endpoint = endpoint
        self._endpoint_url_for = {op.name: endpoint + op.path for op in ops.OPERATIONS}
        # imported here, not at package import: aws-requests-auth brings in `requests` (tens of ms),
        # which only a client that actually sends needs
        from ._signing import Signer

        self._signer = Signer(host_header(endpoint), region)

    async def _resolve_network(self) -> _network.Network:
        """Proxies, the CA bundle and the retry mode: the config, the environment, then the profile.

        The profile is read (the config file, in a worker thread) only for
        what neither the ``ClientConfig`` nor the environment sets: its
        ``ca_bundle`` and its ``retry_mode``.
        """
        config = self._config
        ca_bundle = config.ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
        where = "ca_bundle" if config.ca_bundle else "AWS_CA_BUNDLE"
        defaulted = mode_was_defaulted(config.retry_mode)
        if ca_bundle is None or defaulted:
            from ._aws_config import ConfigFileError, load_config, profile_name

            name, _ = profile_name(self._profile, os.environ)
            try:
                settings = (await load_config(os.environ)).config.get(name, {})
            except ConfigFileError:
                settings = {}  # the region and credential searches report a broken file where they need it
            section = "[default]" if name == "default" else f"[profile {name}]"
            if ca_bundle is None and settings.get("ca_bundle", "").strip():
                ca_bundle = settings["ca_bundle"].strip()
                where = f"ca_bundle of {section}"
            mode = settings.get("retry_mode", "").strip()
            adaptive = defaulted and mode and parse_retry_mode(f"retry_mode of {section}", mode) == "adaptive"
            if adaptive and self.retry_policy.rate_limiter is None:
                self.retry_policy.rate_limiter = AdaptiveRateLimiter(fail_fast=config.rate_limit_fail_fast)
        context = None
        if ca_bundle is not None:
            context = await asyncio.to_thread(_network.load_ca_bundle, where, ca_bundle)
        network = _network.Network.from_environment(proxies=config.proxies, ca_bundle=ca_bundle, ssl_context=context)
        options: dict[str, Any] = {}
        endpoint = self._endpoint or ""
        route = network.proxy_for(endpoint)
        if route is not None:
            keywords, headers = route.options(urlsplit(endpoint).scheme)
            options.update(keywords)
            self._base_headers.update(headers)  # kept out of logs and errors (_scrub)
        if not self._owns_session and network.ssl_context is not None:
            options["ssl"] = network.ssl_context  # a caller's session: the CA bundle per request
        self._request_options = options
        self._network = network
        return network

    def _after_fork(self) -> None:
        """In a child process: forget the parent's session, loop and slots; the next call opens afresh.

        A session the caller gave belongs to the parent: the client then
        refuses every call in the child (``ClientStateError``) instead of
        using it.
        """
        if self._state == _CLOSED:
            return
        if self._owns_session:
            if self._session is not None:
                _INHERITED_SESSIONS.append(self._session)  # the parent's to close; never touched here
            self._session = None
            self._pid = os.getpid()
        self._state = _UNOPENED
        self._setup_lock = None
        self._loop = None
        self._slots = None

    async def close(self) -> None:
        """Close the HTTP session if this client created it; idempotent."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        session, self._session = self._session, None
        if session is not None and self._owns_session and self._pid == os.getpid():
            await session.close()

    async def put_events(
        self, *, tracking_id: str, session_id: str, event_list: Sequence[Event], user_id: str | None = None
    ) -> ResponseMetadata:
        """Record 1 to 10 item interaction events of one session (``PutEvents``).

        The whole request is validated before anything is sent; a bad value
        raises ``ValidationError`` naming it (``event_list[3].properties``).
        """
        request = PutEventsRequest(
            tracking_id=tracking_id, session_id=session_id, event_list=event_list, user_id=user_id
        )
        return await self._invoke(ops.PUT_EVENTS, request)

    async def put_items(self, *, dataset_arn: str, items: Sequence[Item]) -> ResponseMetadata:
        """Add or update 1 to 10 items of an Items dataset (``PutItems``)."""
        return await self._invoke(ops.PUT_ITEMS, PutItemsRequest(dataset_arn=dataset_arn, items=items))

    async def put_users(self, *, dataset_arn: str, users: Sequence[User]) -> ResponseMetadata:
        """Add or update 1 to 10 users of a Users dataset (``PutUsers``)."""
        return await self._invoke(ops.PUT_USERS, PutUsersRequest(dataset_arn=dataset_arn, users=users))

    async def put_actions(self, *, dataset_arn: str, actions: Sequence[Action]) -> ResponseMetadata:
        """Add or update 1 to 10 actions of an Actions dataset (``PutActions``)."""
        return await self._invoke(ops.PUT_ACTIONS, PutActionsRequest(dataset_arn=dataset_arn, actions=actions))

    async def put_action_interactions(
        self, *, tracking_id: str, action_interactions: Sequence[ActionInteraction]
    ) -> ResponseMetadata:
        """Record 1 to 10 action interaction events (``PutActionInteractions``)."""
        request = PutActionInteractionsRequest(tracking_id=tracking_id, action_interactions=action_interactions)
        return await self._invoke(ops.PUT_ACTION_INTERACTIONS, request)

    async def put_events_batched(
        self,
        *,
        tracking_id: str,
        session_id: str,
        event_list: Iterable[Event] | AsyncIterable[Event],
        user_id: str | None = None,
        max_concurrency: int = 4,
        requests_per_second: Rate = DEFAULT_RATE,
    ) -> BatchResult[Event]:
        """Send any number of one session's events in ``PutEvents`` calls of at most ten.

        ``event_list`` may be any iterable or async iterable and is read
        lazily. At most ``max_concurrency`` calls run at once, paced to
        ``requests_per_second`` when given (unpaced by default). Returns a
        ``BatchResult``; call ``raise_for_failures()`` to turn failures into
        an exception.
        """
        fixed = {"tracking_id": tracking_id, "session_id": session_id, "user_id": user_id}
        return await run_batched(
            self._invoke,
            ops.PUT_EVENTS,
            fixed,
            event_list,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
        )

    async def put_items_batched(
        self,
        *,
        dataset_arn: str,
        items: Iterable[Item] | AsyncIterable[Item],
        max_concurrency: int = 4,
        requests_per_second: Rate = DEFAULT_RATE,
    ) -> BatchResult[Item]:
        """Send any number of items in ``PutItems`` calls of at most ten.

        Paced by default at the service's quota of 10 requests per second per
        dataset group; pass ``requests_per_second=None`` to turn pacing off or
        a number for another rate. Otherwise as ``put_events_batched``.
        """
        return await run_batched(
            self._invoke,
            ops.PUT_ITEMS,
            {"dataset_arn": dataset_arn},
            items,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
        )

    async def put_users_batched(
        self,
        *,
        dataset_arn: str,
        users: Iterable[User] | AsyncIterable[User],
        max_concurrency: int = 4,
        requests_per_second: Rate = DEFAULT_RATE,
    ) -> BatchResult[User]:
        """Send any number of users in ``PutUsers`` calls of at most ten.

        Paced by default at the service's quota of 10 requests per second per
        dataset group, like ``put_items_batched``.
        """
        return await run_batched(
            self._invoke,
            ops.PUT_USERS,
            {"dataset_arn": dataset_arn},
            users,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
        )

    async def put_actions_batched(
        self,
        *,
        dataset_arn: str,
        actions: Iterable[Action] | AsyncIterable[Action],
        max_concurrency: int = 4,
        requests_per_second: Rate = DEFAULT_RATE,
    ) -> BatchResult[Action]:
        """Send any number of actions in ``PutActions`` calls of at most ten (unpaced by default)."""
        return await run_batched(
            self._invoke,
            ops.PUT_ACTIONS,
            {"dataset_arn": dataset_arn},
            actions,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
        )

    async def put_action_interactions_batched(
        self,
        *,
        tracking_id: str,
        action_interactions: Iterable[ActionInteraction] | AsyncIterable[ActionInteraction],
        max_concurrency: int = 4,
        requests_per_second: Rate = DEFAULT_RATE,
    ) -> BatchResult[ActionInteraction]:
        """Send any number of action interactions in calls of at most ten (unpaced by default)."""
        return await run_batched(
            self._invoke,
            ops.PUT_ACTION_INTERACTIONS,
            {"tracking_id": tracking_id},
            action_interactions,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
        )

    def event_recorder(
        self,
        *,
        tracking_id: str,
        flush_interval: float = 1.0,
        max_queue_size: int = 10_000,
        overflow: Overflow = "drop_newest",
        max_concurrency: int = 8,
        on_failure: FailureCallback | None = None,
        on_drop: DropCallback | None = None,
        close_timeout: float = 30.0,
        spool: SpoolOption = None,
        requests_per_second: Rate = None,
        clock: Clock | None = None,
    ) -> EventRecorder:
        """Return an ``EventRecorder`` that buffers events and sends them in the background.

        Use it as an async context manager (or call ``close()``); the keyword
        arguments are ``EventRecorder``'s (see there). The recorder sends with
        this client's ``put_events`` and shares its retry policy and budget.
        ``spool`` is where events wait: memory (``None``), a ``Spool`` such as
        ``SqliteSpool(path)``, or a path (short for ``SqliteSpool(path)``).
        ``requests_per_second`` paces its calls (a number, or a shared limiter
        such as ``RedisRateLimiter``); unpaced by default. ``clock`` measures
        the flush interval and the waits before re-sending (the event loop's
        by default; a ``ManualClock`` in tests).
        """
        return EventRecorder(
            self,
            tracking_id=tracking_id,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            overflow=overflow,
            max_concurrency=max_concurrency,
            on_failure=on_failure,
            on_drop=on_drop,
            close_timeout=close_timeout,
            spool=spool,
            requests_per_second=requests_per_second,
            clock=clock,
        )

    async def _invoke(self, op: ops.Operation, request: Any, call: _telemetry.Call | None = None) -> ResponseMetadata:
        """Send one validated request, retrying per the policy; the one path every call takes.

        The body is encoded once; each attempt signs it afresh (credentials may
        have been refreshed) and waits for a connection slot before its
        ``attempt_timeout`` starts.
        """
        if call is None and _telemetry.hook is not None:  # instrumented: the hook wraps the call in a span
            return await _telemetry.hook.invoke(self._invoke, self, op, request)
        if self._state != _OPENED or self._signer is None:
            await self.open()
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise ClientStateError(
                "this PersonalizeEventsClient was opened in another event loop; make one client per loop"
            )
        agree = True
        for name in op.record_floats:
            for record in getattr(request, op.record_field):
                value = getattr(record, name)
                if value is not None and not float_agrees(value):
                    agree = False
        body = dumps_wire(to_wire(request), agree)
        url = self._endpoint_url_for[op.name]
        policy = self.retry_policy
        token = policy.first_token()
        while True:
            limiter = policy.rate_limiter
            if limiter is not None:
                await limiter.acquire()  # adaptive mode; a fail-fast refusal goes straight to the caller
            try:
                meta = await self._attempt(op, url, body, token.attempt)
            except PersonalizeEventsError as error:
                if limiter is not None:
                    limiter.record(error.throttling)
                following = policy.retry_token(token, error)
                if following is None:
                    error.attempts = token.attempt
                    why = _telemetry.stop_reason(policy, error, token.attempt)
                    log.debug(
                        "%s failed at attempt %d (%s): %s", op.name, token.attempt, why, _telemetry.describe(error)
                    )
                    raise
                log.debug(
                    "%s attempt %d failed (%s); retrying in %.3fs",
                    op.name,
                    token.attempt,
                    _telemetry.describe(error),
                    following.delay,
                )
                if call is not None:
                    call.retrying(error, token.attempt, following.delay)
                token = following
                await policy.sleep(token.delay)
                continue
            if limiter is not None:
                limiter.record(False)
            policy.record_success(token)
            return meta

    async def _attempt(self, op: ops.Operation, url: str, body: bytes, attempt: int) -> ResponseMetadata:
        network = self._network
        if network is None:
            credentials = await self._provider.resolve()
        else:  # the credential sources' own HTTP calls take the client's proxies and CA bundle
            token = _network.using(network)
            try:
                credentials = await self._provider.resolve()
            finally:
                _network.reset(token)
        session = self._session
        signer = self._signer
        slots = self._slots
        if session is None or signer is None or slots is None:
            raise ClientStateError("this PersonalizeEventsClient is closed; create a new one")
        headers = dict(self._base_headers)
        headers.update(signer.headers("POST", url, body, credentials))
        limit = self._config.max_response_bytes
        if not slots.take():  # every connection is busy: wait for one, which is not the service's time
            await slots.wait(self._config.pool_timeout)
        try:
            # never follow redirects: they would carry the session token to another host, and a
            # 301/302 turns the POST into a GET whose 200 would be taken for a delivered batch
            request = session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False, **self._request_options
            )
            async with await _headers_within(request, self._header_timeout) as response:
                status = response.status
                payload = await _read_capped(response, limit, self._config.read_timeout)
                response_headers = response.headers
        except PersonalizeEventsError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = _translate(exc)
            log.debug("%s attempt %d: %s", op.name, attempt, error)
            raise error from exc
        except RuntimeError as exc:  # aiohttp's "Session is closed" and the like: the client was closed meanwhile
            raise ClientStateError(f"the call could not be made: {exc}") from exc
        finally:
            slots.release()
        request_id = response_headers.get("x-amzn-RequestId")
        if status == 200:
            _check_success_body(payload, response_headers)
            log.debug("%s ok: HTTP 200, request id %s, attempt %d", op.name, request_id, attempt)
            return ResponseMetadata(request_id=request_id, http_status=status, retry_attempts=attempt - 1)
        service_error = parse_error(status, response_headers, payload)
        log.debug("%s attempt %d: %s", op.name, attempt, _telemetry.describe(service_error))
        raise service_error


_LIVE_CLIENTS: Final[weakref.WeakSet[PersonalizeEventsClient]] = weakref.WeakSet()
_INHERITED_SESSIONS: Final[list[aiohttp.ClientSession]] = []
"""Sessions a forked child inherited: kept, never closed or collected there (their sockets are the parent's)."""


def _rearm_after_fork() -> None:
    for client in list(_LIVE_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rearm_after_fork)


class _Slots:
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


def _cancelling(task: asyncio.Task[Any]) -> int:
    """The task's pending cancellation requests (Python 3.11+; 0 before, where they are not counted)."""
    if sys.version_info >= (3, 11):
        return task.cancelling()
    return 0


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Take back one cancellation request; the ones left (Python 3.11+; 0 before)."""
    if sys.version_info >= (3, 11):
        return task.uncancel()
    return 0


async def _headers_within(request: Any, timeout: float) -> aiohttp.ClientResponse:
    """Send ``request`` (an aiohttp request context) and return its response once the headers are in.

    ``timeout`` bounds connecting, sending and the answer's headers as a
    whole: ``ReadTimeoutError`` when they take longer (a server trickling
    its headers a byte at a time), whatever the waits between bytes. As
    ``asyncio.timeout`` does (not on Python 3.10): a timer cancels this task,
    and no task is made per call.
    """
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    before = _cancelling(task)
    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        response: aiohttp.ClientResponse = await request
    except asyncio.CancelledError:
        if not fired or _uncancel(task) > before:  # cancelled from outside as well: that wins
            raise
        raise ReadTimeoutError(
            f"the answer's headers did not arrive within {timeout:g}s (connect_timeout + read_timeout)"
        ) from None
    finally:
        timer.cancel()
    if fired:  # aiohttp swallowed the timer's cancel as the headers came
        _uncancel(task)
        response.release()
        raise ReadTimeoutError(f"the answer's headers did not arrive within {timeout:g}s")
    return response


async def _read_capped(response: aiohttp.ClientResponse, limit: int, timeout: float) -> bytes:
    """Read the body: at most ``limit`` bytes, and all of it within about ``timeout`` seconds.

    ``sock_read`` bounds each wait for data; the deadline bounds the whole body,
    so a server that trickles a byte at a time cannot hold a call open forever.
    The usual answer (``{}``) has arrived whole with the headers; it is taken
    without waiting.
    """
    content = response.content
    if content.is_eof():
        data = content.read_nowait()
        if len(data) > limit:
            raise InvalidResponseError(f"answer body larger than {limit} bytes (HTTP {response.status})")
        return data
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise InvalidResponseError(f"answer body larger than {limit} bytes (HTTP {response.status})")
        if loop.time() > deadline:
            raise ReadTimeoutError(f"the answer body took longer than {timeout:g}s to arrive (HTTP {response.status})")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_success_body(payload: bytes, headers: Mapping[str, str]) -> None:
    if not payload or payload == b"{}":
        return
    try:
        parsed = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidResponseError(f"HTTP 200 with {_foreign_body(payload, headers)}")  # never quoted
