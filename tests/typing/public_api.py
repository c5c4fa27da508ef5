"""The public API as users write it, type-checked with ``mypy --strict`` and never run
(by tests/package/test_package_typing.py).

Each ``# type: ignore[...]`` marks a misuse that must stay a type error:
``--strict`` includes ``--warn-unused-ignores``, so if a signature loosened
and the misuse type-checked, mypy would fail on the unused ignore.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import aiohttp

from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    CredentialProvider,
    Credentials,
    Event,
    Item,
    MetricAttribution,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    Properties,
    ResponseMetadata,
    ServiceError,
    ThrottlingException,
    Timestamp,
    TransportError,
    User,
    ValidationError,
)
from aiopersonalize_events.serde import from_wire, to_wire

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"


class VaultProvider:
    """A user's own credential source: anything with ``async resolve()``."""

    async def resolve(self) -> Credentials:
        return Credentials("AKID", "secret", session_token="token", expiration=datetime.now(timezone.utc))


def page_view(item_id: str, when: Timestamp, props: Properties | None = None) -> Event:
    return Event(
        event_type="page_view",
        sent_at=when,
        event_id=f"{item_id}-{when}",
        event_value=1.0,
        item_id=item_id,
        properties=props,
        impression=[item_id, "other"],
        metric_attribution=MetricAttribution(event_attribution_source="newsletter"),
    )


async def record_everything() -> list[ResponseMetadata]:
    config = ClientConfig(max_attempts=5, backoff_max=10.0, user_agent_extra="shop/1.2")
    provider: CredentialProvider = VaultProvider()
    results: list[ResponseMetadata] = []
    async with PersonalizeEventsClient(region="us-east-1", credentials=provider, config=config) as client:
        meta = await client.put_events(
            tracking_id="tracking-id",
            session_id="session-1",
            user_id="user-1",
            event_list=[
                page_view("item-1", datetime.now(timezone.utc), {"device": "mobile"}),
                page_view("item-2", 1_700_000_000.5, '{"device": "desktop"}'),
                page_view("item-3", "2024-01-01T00:00:00Z"),
            ],
        )
        request_id: str | None = meta.request_id
        status: int = meta.http_status
        retries: int = meta.retry_attempts
        results.append(meta)
        del request_id, status, retries

        results.append(
            await client.put_items(dataset_arn=ARN, items=[Item(item_id="item-1", properties={"genre": "jazz"})])
        )
        results.append(await client.put_users(dataset_arn=ARN, users=[User(user_id="user-1")]))
        results.append(await client.put_actions(dataset_arn=ARN, actions=(Action(action_id="a"),)))
        interaction = ActionInteraction(action_id="a", session_id="s", timestamp=datetime.now(), event_type="Taken")
        results.append(await client.put_action_interactions(tracking_id="t", action_interactions=[interaction]))
    return results


async def with_my_session() -> None:
    async with aiohttp.ClientSession() as session:
        client = PersonalizeEventsClient(
            region="eu-west-1",
            credentials=Credentials("AKID", "secret"),
            endpoint_url="http://127.0.0.1:4566",
            session=session,
        )
        try:
            await client.put_items(dataset_arn=ARN, items=[Item(item_id="i")])
        except ThrottlingException as error:
            retry_after: float | None = error.retry_after
            del retry_after
        except ServiceError as error:
            code: str = error.code
            message: str = error.message
            http_status: int = error.http_status
            rid: str | None = error.request_id
            del code, message, http_status, rid
        except ValidationError as error:
            path: str = error.path
            del path
        except TransportError as error:
            retryable: bool = error.retryable
            del retryable
        except PersonalizeEventsError:
            pass
        finally:
            await client.close()


def wire_round_trip(line: dict[str, Any]) -> Event:
    event = from_wire(Event, line)
    wire: dict[str, Any] = to_wire(event)
    return from_wire(Event, wire)


def misuse() -> None:
    Event("click", 1)  # type: ignore[call-arg]
    Item(item_id=42)  # type: ignore[arg-type]
    User(user_id="u", properties=[1, 2])  # type: ignore[arg-type]
    ClientConfig(max_attempts="3")  # type: ignore[arg-type]
    Event(event_type="click", sent_at=b"1700000000")  # type: ignore[arg-type]


async def misuse_client(client: PersonalizeEventsClient) -> None:
    await client.put_items(dataset_arn=ARN, items=[User(user_id="u")])  # type: ignore[list-item]
    await client.put_events("t", "s", [])  # type: ignore[call-arg]
    meta = await client.put_users(dataset_arn=ARN, users=[])
    meta.http_status = 201  # type: ignore[misc]


async def a_recorder(client: PersonalizeEventsClient) -> None:
    failed: list[Event] = []

    def on_failure(events: list[Event], error: PersonalizeEventsError) -> None:
        failed.extend(events)

    async def on_drop(event: Event, reason: str) -> None:
        del event, reason

    recorder = client.event_recorder(
        tracking_id="t",
        flush_interval=0.5,
        max_queue_size=1_000,
        overflow="drop_oldest",
        max_concurrency=4,
        on_failure=on_failure,
        on_drop=on_drop,
        close_timeout=5.0,
    )
    async with recorder:
        queued: bool = recorder.record(page_view("i", 1), session_id="s", user_id=None)
        del queued
        await recorder.flush()
    sent: int = recorder.stats.sent
    del sent


async def misuse_recorder(client: PersonalizeEventsClient) -> None:
    client.event_recorder(tracking_id="t", flush_intervall=1.0)  # type: ignore[call-arg]
    client.event_recorder(tracking_id="t", overflow="drop-oldest")  # type: ignore[arg-type]
    client.event_recorder("t")  # type: ignore[call-arg]


async def a_forwarder(client: PersonalizeEventsClient) -> None:
    from aiopersonalize_events._clock import ManualClock
    from aiopersonalize_events.redis import Forwarder, RedisRateLimiter

    limiter = RedisRateLimiter("redis://127.0.0.1:6379/0", key="k", rate=10, clock=ManualClock())
    forwarder = Forwarder(
        client, "redis://127.0.0.1:6379/0", stream="s", group="g", tracking_id="t", requests_per_second=limiter
    )
    held: int = forwarder.stats.held
    del held


async def misuse_forwarder() -> None:
    from aiopersonalize_events.redis import Forwarder

    Forwarder(object(), "redis://127.0.0.1:6379/0", stream="s", group="g", tracking_id="t")  # type: ignore[arg-type]
