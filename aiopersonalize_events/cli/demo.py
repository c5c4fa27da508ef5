"""The quick-start demo: ``python -m aiopersonalize_events demo``.

Starts the built-in emulator in this process, on 127.0.0.1, with SigV4
signature verification on, and shows the library in about a screen: the five
operations, batching of a larger list, the background recorder, errors caught
(before any I/O and from the service), retries through injected faults, and
what the emulator received. No AWS account, no credentials, no network
beyond loopback; it takes a few seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final, TextIO

from .. import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    PutEventsRequest,
    ResourceNotFoundException,
    ResponseMetadata,
    ServiceError,
    User,
    ValidationError,
    __version__,
)
from ..serde import from_wire

if TYPE_CHECKING:
    from ..emulator import Emulator

__all__ = ["main", "run_demo"]

DEMO_ACCESS_KEY_ID: Final = "AKIDDEMOEXAMPLE00000"
DEMO_SECRET_ACCESS_KEY: Final = "demo-secret-not-a-real-key"  # a placeholder the emulator is told to expect
REGION: Final = "us-east-1"
TRACKER: Final = "demo-tracking-id"
ITEMS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ITEMS"
USERS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/USERS"
ACTIONS_ARN: Final = "arn:aws:personalize:us-east-1:123456789012:dataset/demo/ACTIONS"
BATCH_SIZE: Final = 1003
RECORDED: Final = 200
SESSIONS: Final = 20


class _Out:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, text: str = "") -> None:
        print(text, file=self._stream, flush=True)

    def section(self, title: str) -> None:
        self()
        self(title)


def _meta(meta: ResponseMetadata) -> str:
    return f"HTTP {meta.http_status}, request id {(meta.request_id or '-')[:8]}..., {meta.retry_attempts} retries"


def _catalog(count: int) -> Iterator[Item]:
    genres = ("drama", "comedy", "documentary", "thriller")
    for i in range(count):
        yield Item(item_id=f"sku-{i:04d}", properties={"GENRE": genres[i % len(genres)], "PRICE": 5 + i % 50})


async def run_demo(stream: TextIO | None = None) -> None:
    """Run the demo, printing to ``stream`` (default: standard output)."""
    from ..emulator import Emulator

    say = _Out(stream if stream is not None else sys.stdout)
    now = time.time()
    emulator = Emulator(
        credentials={DEMO_ACCESS_KEY_ID: DEMO_SECRET_ACCESS_KEY},
        tracking_ids=[TRACKER],
        dataset_arns=[ITEMS_ARN, USERS_ARN, ACTIONS_ARN],
    )
    async with emulator as emu:
        say(f"aiopersonalize-events {__version__} demo")
        say(f"emulator: {emu.endpoint_url} (in this process; SigV4 signatures verified; no AWS account used)")
        credentials = Credentials(DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY)
        config = ClientConfig(max_attempts=5, backoff_base=0.01)  # short backoff, so the demo is quick
        client = PersonalizeEventsClient(
            region=REGION, endpoint_url=emu.endpoint_url, credentials=credentials, config=config
        )
        async with client:
            await _five_operations(say, client, now)
            await _batching(say, client)
            await _recorder(say, client, emu, now)
            await _errors(say, client, emu, now)
            await _retries(say, client, emu, now)
        _received(say, emu)
    say()
    say("Done. Next: README.md (the CLI: python -m aiopersonalize_events put-events --help).")


async def _five_operations(say: _Out, client: PersonalizeEventsClient, now: float) -> None:
    say.section("1. The five operations, one call each")
    meta = await client.put_events(
        tracking_id=TRACKER,
        session_id="session-1",
        user_id="user-1",
        event_list=[
            Event(event_type="click", sent_at=now, item_id="sku-0001", event_id="evt-1"),
            Event(event_type="purchase", sent_at=now, item_id="sku-0001", event_value=19.99, event_id="evt-2"),
        ],
    )
    say(f"   put_events               2 events       {_meta(meta)}")
    meta = await client.put_items(
        dataset_arn=ITEMS_ARN,
        items=[Item(item_id="sku-0001", properties={"GENRE": "drama"}), Item(item_id="sku-0002")],
    )
    say(f"   put_items                2 items        {_meta(meta)}")
    meta = await client.put_users(
        dataset_arn=USERS_ARN,
        users=[User(user_id="user-1", properties={"AGE": 33}), User(user_id="user-2")],
    )
    say(f"   put_users                2 users        {_meta(meta)}")
    meta = await client.put_actions(
        dataset_arn=ACTIONS_ARN,
        actions=[Action(action_id="act-1", properties={"CATEGORY": "promo"}), Action(action_id="act-2")],
    )
    say(f"   put_actions              2 actions      {_meta(meta)}")
    meta = await client.put_action_interactions(
        tracking_id=TRACKER,
        action_interactions=[
            ActionInteraction(action_id="act-1", session_id="session-1", timestamp=now, event_type="Viewed"),
            ActionInteraction(action_id="act-1", session_id="session-1", timestamp=now, event_type="Taken"),
        ],
    )
    say(f"   put_action_interactions  2 interactions {_meta(meta)}")


async def _batching(say: _Out, client: PersonalizeEventsClient) -> None:
    say.section(f"2. Batching: put_items_batched with {BATCH_SIZE:,} items from a generator")
    started = time.perf_counter()
    result = await client.put_items_batched(
        dataset_arn=ITEMS_ARN, items=_catalog(BATCH_SIZE), max_concurrency=8, requests_per_second=None
    )
    took = time.perf_counter() - started
    say(f"   sent {result.sent:,} in {result.calls} calls of at most 10, {result.failed} failed, {took:.2f}s")
    say("   (pacing turned off here; by default PutItems is paced at its quota of 10 calls/s)")


async def _recorder(say: _Out, client: PersonalizeEventsClient, emu: Emulator, now: float) -> None:
    say.section(f"3. The recorder: {RECORDED} events across {SESSIONS} sessions, recorded without awaiting")
    before = emu.calls[("PutEvents", 200)]
    async with client.event_recorder(tracking_id=TRACKER, flush_interval=0.05) as recorder:
        for i in range(RECORDED):
            event = Event(event_type="view", sent_at=now + i / 1000, item_id=f"sku-{i:04d}")
            recorder.record(event, session_id=f"session-{i % SESSIONS}", user_id=f"user-{i % SESSIONS}")
        queued = recorder.stats
    stats = recorder.stats
    calls = emu.calls[("PutEvents", 200)] - before
    say(f"   right after record():  {_stats(queued)}")
    say(f"   after close():         {_stats(stats)}  ({calls} PutEvents calls)")
    holds = stats.recorded == stats.sent + stats.failed + stats.dropped + stats.pending
    say(f"   recorded == sent + failed + dropped + pending: {holds}")


async def _errors(say: _Out, client: PersonalizeEventsClient, emu: Emulator, now: float) -> None:
    say.section("4. Errors, caught")
    wire = {
        "trackingId": TRACKER,
        "sessionId": "session-1",
        "eventList": [{"eventType": "click", "sentAt": now, "properties": {"userId": "user-1"}}],
    }
    try:
        from_wire(PutEventsRequest, wire)
    except ValidationError as exc:
        say(f"   before any I/O:   ValidationError at {exc.path}: {exc.message}")
    try:
        await client.put_events(
            tracking_id="no-such-tracker",
            session_id="session-1",
            event_list=[Event(event_type="click", sent_at=now)],
        )
    except ResourceNotFoundException as exc:
        say(f"   from the service: {exc.code} (HTTP {exc.http_status}): {exc.message}")
    wrong = Credentials(DEMO_ACCESS_KEY_ID, "not-the-right-secret")
    async with PersonalizeEventsClient(region=REGION, endpoint_url=emu.endpoint_url, credentials=wrong) as bad:
        try:
            await bad.put_users(dataset_arn=USERS_ARN, users=[User(user_id="user-3")])
        except ServiceError as exc:
            say(f"   a wrong secret:   {exc.code} (HTTP {exc.http_status}), never retried")


async def _retries(say: _Out, client: PersonalizeEventsClient, emu: Emulator, now: float) -> None:
    from ..emulator import Faults

    emu.faults = Faults(throttle=0.25, server_error=0.15, seed=7)
    retries = failures = 0
    for i in range(20):
        try:
            meta = await client.put_events(
                tracking_id=TRACKER,
                session_id="session-retry",
                event_list=[Event(event_type="click", sent_at=now, event_id=f"retry-{i}")],
            )
        except ServiceError:
            failures += 1
        else:
            retries += meta.retry_attempts
    emu.faults = None
    say(
        f"   with 40% of calls throttled or failing: 20 calls, {20 - failures} delivered "
        f"after {retries} retries with backoff, {failures} failed"
    )


def _received(say: _Out, emu: Emulator) -> None:
    say.section("5. What the emulator received")
    counts = {
        "events": len(emu.events()),
        "items": len(emu.items()),
        "users": len(emu.users()),
        "actions": len(emu.actions()),
        "action interactions": len(emu.action_interactions()),
    }
    say("   " + ", ".join(f"{kind} {count:,}" for kind, count in counts.items()) + f", duplicates {emu.duplicates}")
    say(f"   ({BATCH_SIZE + 2:,} items were written; sku-0001 and sku-0002 twice: datasets upsert by id)")
    by_operation: dict[str, Counter[int]] = {}
    for (operation, status), count in emu.calls.items():
        by_operation.setdefault(operation, Counter())[status] += count
    for operation in sorted(by_operation):
        statuses = ", ".join(f"HTTP {status} x{n}" for status, n in sorted(by_operation[operation].items()))
        say(f"   {operation:<22} {statuses}")


def _stats(stats: object) -> str:
    text = repr(stats)
    return text[text.index("(") :] if "(" in text else text


def main() -> int:
    """Run the demo; return 0 (the exit status)."""
    asyncio.run(run_demo())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
