"""PersonalizeEventsClient: the public client, its arguments and its ``put_*`` methods.

The client checks its arguments (boto3's keywords included) and hands the
rest to two parts: ``_transport.Transport`` (endpoint, signer, network,
the aiohttp session, slots, re-arming after ``fork()``) and
``_call.Caller`` (the one retry loop every call goes through, with the
client's ``retry_policy``). The ``put_*`` methods are thin wrappers over
``Caller.invoke``; the ``*_batched`` helpers run ``_batching.run_batched``
over it; ``event_recorder()`` builds an ``EventRecorder`` (imported then,
not at package import).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from . import _operations as ops
from . import _telemetry
from ._batching import DEFAULT_RATE, BatchResult, Rate, run_batched
from ._call import Caller, ResponseMetadata
from ._chain import default_provider
from ._config import ClientConfig
from ._credentials import CredentialProvider, Credentials, StaticProvider
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
from ._transport import CLOSED, LOCAL_SIGNING_REGION, Transport
from .errors import ValidationError

if TYPE_CHECKING:
    from ._clock import Clock
    from ._recorder import DropCallback, EventRecorder, FailureCallback, Overflow, SpoolOption

__all__ = ["LOCAL_SIGNING_REGION", "PersonalizeEventsClient", "ResponseMetadata"]


def _boto3_spellings(
    region: str | None,
    credentials: Credentials | CredentialProvider | None,
    region_name: str | None,
    aws_access_key_id: str | None,
    aws_secret_access_key: str | None,
    aws_session_token: str | None,
) -> tuple[str | None, Credentials | CredentialProvider | None]:
    """``region`` and ``credentials``, boto3's keywords taken as their spellings; both given: ``ValidationError``."""
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
    return region, credentials


def _provider_for(credentials: object, profile: str | None) -> CredentialProvider:
    """The provider the client resolves with: fixed ``Credentials``, the caller's provider, else the default chain."""
    if isinstance(credentials, Credentials):
        return StaticProvider(credentials)
    if credentials is None:
        return default_provider(profile)
    if isinstance(credentials, CredentialProvider):
        return credentials
    raise ValidationError("credentials", "must be Credentials or a CredentialProvider")


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
        self._config = config = config or ClientConfig()
        region, credentials = _boto3_spellings(
            region, credentials, region_name, aws_access_key_id, aws_secret_access_key, aws_session_token
        )
        provider = _provider_for(credentials, profile)
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValidationError("endpoint_url", "must be an http:// or https:// URL with a host")
        self._transport = Transport(
            config,
            provider,
            region=region,
            profile=profile,
            endpoint_url=endpoint_url.rstrip("/") if endpoint_url else None,
            session=session,
        )
        policy = RetryPolicy.for_config(config)
        if config.retry_mode == "adaptive":
            policy.rate_limiter = AdaptiveRateLimiter(fail_fast=config.rate_limit_fail_fast)
        self._caller = Caller(self._transport, policy)
        self._invoke: Callable[[ops.Operation, Any], Awaitable[ResponseMetadata]] = self._caller.invoke
        """The one path every call takes (``Caller.invoke``): ``(op, request)``; the batching helpers send with it."""
        _telemetry.watch_client(self)

    def __repr__(self) -> str:
        state = self._transport.state
        return f"PersonalizeEventsClient(region={self.region!r}, endpoint={self.endpoint_url!r}, state={state})"

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy every call and the recorder share; its ``random`` and ``sleep`` may be replaced.

        In the adaptive retry mode its ``rate_limiter`` is the client's
        ``AdaptiveRateLimiter`` (from the start when the mode was given or
        in ``AWS_RETRY_MODE``; when the profile sets it, once the client opens).
        """
        return self._caller.retry_policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self._caller.retry_policy = policy

    @property
    def config(self) -> ClientConfig:
        """The configuration this client was built with."""
        return self._config

    @property
    def region(self) -> str | None:
        """The region in use, once resolved (None before the first call)."""
        return self._caller.region

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint in use, once resolved."""
        return self._caller.endpoint_url

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._transport.state == CLOSED

    async def __aenter__(self) -> PersonalizeEventsClient:
        await self._caller.open(need_region=False)
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
        await self._caller.open(need_region=True)

    async def close(self) -> None:
        """Close the HTTP session if this client created it; idempotent."""
        await self._transport.close()

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
        from ._recorder import EventRecorder  # the engine and the spools load with the first recorder

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
