"""RedisRateLimiter against a real Redis (GCRA on Redis's clock), where it is accepted (batched helpers, recorder,
forwarder, command line), and the pieces of aiopersonalize_events.redis that need no server: keys, entries, URLs,
the public surface."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis.asyncio
from _redis_server import RedisServer, windows

import aiopersonalize_events.redis as fleet
from aiopersonalize_events import Credentials, Event, Item, PersonalizeEventsClient, ValidationError
from aiopersonalize_events import _operations as ops
from aiopersonalize_events._lines import encode
from aiopersonalize_events._lines import event_line as encode_event
from aiopersonalize_events.cli import main
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.redis import (
    PoisonEntry,
    RedisCommandError,
    RedisRateLimiter,
    dead_letter_key,
    hash_tag,
    limiter_from_url,
    quota_key,
)
from aiopersonalize_events.redis._entries import decode

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DATASET = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS"
SENT_AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def client_for(endpoint: str) -> PersonalizeEventsClient:
    return PersonalizeEventsClient(
        region="us-east-1", endpoint_url=endpoint, credentials=Credentials("AKIDLIMIT", "limit-secret")
    )


# -- the limiter ------------------------------------------------------------------------------------------------


async def _redis_now(connection: redis.asyncio.Redis) -> float:
    """Redis's own clock (TIME), in epoch seconds to the microsecond, as the limiter's script reads it."""
    seconds, micros = await connection.time()
    return int(seconds) + int(micros) / 1_000_000


async def test_slots_are_one_interval_apart_on_redis_s_clock(redis_server: RedisServer) -> None:
    """Two limiters on one key hand out slots 1/rate apart, first come first served, whoever asks.

    Decided on Redis's clock, never on how long the test took: a slot is the previous one plus 1/rate
    exactly, unless Redis's clock had already passed that (a call that asked late, under load), and then
    the slot is the moment the call asked (between the TIME read before and after it); never closer.
    """

    async def sleep(delay: float) -> None:  # the calls ask back to back, ahead of their slots
        pass

    first = RedisRateLimiter(redis_server.url, key="k", rate=50, sleep=sleep)
    second = RedisRateLimiter(redis_server.url, key="k", rate=50, sleep=sleep)
    clock = redis.asyncio.Redis.from_url(redis_server.url)
    slots: list[float] = []
    for limiter in (first, second, first, second, first, second):
        asked = await _redis_now(clock)
        await limiter.acquire()
        answered = await _redis_now(clock)
        assert limiter.last_slot is not None
        if slots and limiter.last_slot != pytest.approx(slots[-1] + 0.02, abs=1e-6):
            # only a call that asked after its slot had passed gets "now", and never a slot closer than 1/rate
            assert asked - 1e-6 <= limiter.last_slot <= answered + 1e-6
            assert limiter.last_slot > slots[-1] + 0.02
        slots.append(limiter.last_slot)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(gap >= 0.02 - 1e-6 for gap in gaps)
    assert windows(slots, 0.1) <= 5
    await clock.aclose()
    await first.close()
    await second.close()


async def test_a_burst_goes_at_once_then_the_rate_holds(redis_server: RedisServer) -> None:
    """burst=3: three slots at once after a quiet spell, then one per interval.

    Decided on Redis's clock (the slots the script returns, and TIME read around each call), never on how
    long the test took between calls: the first three wait not at all; the fourth and fifth slots are one
    and two intervals after the first, exactly; each wait is what is left until its slot when the script
    ran (so never longer than the slot's distance from the first, and there is one whenever the slot was
    still ahead after the call).
    """
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    limiter = RedisRateLimiter(redis_server.url, key="burst", rate=10, burst=3, sleep=sleep)
    clock = redis.asyncio.Redis.from_url(redis_server.url)
    calls: list[tuple[float, float, float, list[float]]] = []  # (asked, slot, answered, waits of this call)
    for _ in range(5):
        before = len(waits)
        asked = await _redis_now(clock)
        await limiter.acquire()
        answered = await _redis_now(clock)
        assert limiter.last_slot is not None
        calls.append((asked, limiter.last_slot, answered, waits[before:]))
    await clock.aclose()
    await limiter.close()
    assert [call[3] for call in calls[:3]] == [[], [], []]  # the first three waited not at all
    for asked, slot, answered, _ in calls[:3]:
        assert asked - 1e-6 <= slot <= answered + 1e-6  # their slots: the moment each asked
    first = calls[0][1]
    assert calls[3][1] == pytest.approx(first + 0.1, abs=1e-6)  # then one per interval
    assert calls[4][1] == pytest.approx(first + 0.2, abs=1e-6)  # its slot was reserved behind the previous one
    for asked, slot, answered, own in calls[3:]:
        assert len(own) <= 1
        if own:  # what was left until the slot when the script ran
            assert slot - answered - 1e-6 <= own[0] <= slot - asked + 1e-6
            assert 0 < own[0] <= slot - first + 1e-6
        else:  # no wait only if Redis's clock had reached the slot
            assert slot <= answered + 1e-6
    assert len(waits) <= 2


async def test_a_key_of_another_type_is_an_error_not_a_wait(redis_server: RedisServer) -> None:
    """A key holding a list: RedisCommandError at once."""
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    await connection.rpush("a-list", "x")
    await connection.aclose()
    limiter = RedisRateLimiter(redis_server.url, key="a-list", rate=10)
    with pytest.raises(RedisCommandError):
        await limiter.acquire()
    await limiter.close()


async def test_redis_away_makes_acquire_wait_never_pass(redis_server: RedisServer) -> None:
    """With Redis stopped, acquire() waits (calls are not let through unchecked) and goes on once it is back."""
    limiter = RedisRateLimiter(redis_server.url, key="k", rate=100, backoff_max=0.05)
    redis_server.stop()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    redis_server.start()
    await asyncio.wait_for(waiting, 10)
    await limiter.close()


async def test_the_batched_helpers_and_the_recorder_take_a_shared_limiter(redis_server: RedisServer) -> None:
    """put_items_batched(requests_per_second=limiter) and event_recorder(requests_per_second=limiter) pace with it."""
    limiter = RedisRateLimiter(redis_server.url, key="shared", rate=40)
    async with Emulator() as emulator, client_for(emulator.endpoint_url) as client:
        items = [Item(item_id=f"i{i}") for i in range(40)]
        result = await client.put_items_batched(dataset_arn=DATASET, items=items, requests_per_second=limiter)
        assert result.ok
        assert limiter.granted == 4
        async with client.event_recorder(tracking_id="t", requests_per_second=limiter) as recorder:
            for i in range(30):
                recorder.record(Event(event_type="click", sent_at=SENT_AT, item_id="x"), session_id=f"s{i % 3}")
        assert recorder.stats.sent == 30
        assert limiter.granted == 7  # three more calls: one per session
    await limiter.close()


def test_limiter_values_are_checked() -> None:
    """A rate, burst or key that cannot work is refused when the limiter is made."""
    with pytest.raises(ValidationError, match="rate"):
        RedisRateLimiter("redis://127.0.0.1", key="k", rate=0)
    with pytest.raises(ValidationError, match="burst"):
        RedisRateLimiter("redis://127.0.0.1", key="k", rate=1, burst=0)
    with pytest.raises(ValidationError, match="key"):
        RedisRateLimiter("redis://127.0.0.1", key="", rate=1)


def test_limiter_urls_carry_key_rate_and_burst() -> None:
    """--rate-limiter URLs: key=, rate= and burst= are ours, the rest is redis-py's; defaults per operation."""
    limiter = limiter_from_url("redis://127.0.0.1:6379/2?key=q&rate=5&burst=2&socket_keepalive=true", key="d", rate=10)
    assert (limiter.key, limiter.rate) == ("q", 5.0)
    assert limiter._url == "redis://127.0.0.1:6379/2?socket_keepalive=true"
    default = limiter_from_url("redis://127.0.0.1", key=quota_key("PutItems", DATASET), rate=10)
    assert default.key == "aiopersonalize-events:quota:PutItems:us-east-1:123456789012:shop"
    assert quota_key("PutEvents", "tracker-1") == "aiopersonalize-events:quota:PutEvents:tracker-1"
    with pytest.raises(ValidationError):
        limiter_from_url("http://127.0.0.1", key="k", rate=1)


# -- keys and entries ----------------------------------------------------------------------------------------------


def _slot(key: str) -> int:
    """Redis Cluster's hash slot of ``key`` (CRC16/XMODEM of its hash tag, or of the whole key)."""
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


@pytest.mark.parametrize("stream", ["events", "pe:{events:t1}", "{a}b", "x{y}{z}", "üñí"])
def test_the_dead_letter_stream_shares_the_stream_s_cluster_slot(stream: str) -> None:
    """dead_letter_key keeps the hash tag, or makes the stream's name the tag: one slot for both keys."""
    dead = dead_letter_key(stream)
    assert dead.endswith(":dead")
    assert _slot(dead) == _slot(stream)


def test_hash_tags_as_redis_cluster_reads_them() -> None:
    """The first {...} with something inside is the tag; {} is none."""
    assert hash_tag("pe:{events}:x") == "events"
    assert hash_tag("x{}y") is None
    assert hash_tag("plain") is None
    with pytest.raises(ValidationError):
        dead_letter_key("a}b")


def test_entries_are_the_command_line_s_json_lines() -> None:
    """An entry is a put-events line: sessionId, userId and the event in camelCase; decoding gives them back."""
    event = Event(event_type="click", sent_at=SENT_AT, item_id="i1", event_id="e1", properties={"a": 1})
    line = json.loads(encode_event(event, "s1", "u1"))
    assert line == {
        "sessionId": "s1",
        "userId": "u1",
        "eventId": "e1",
        "eventType": "click",
        "itemId": "i1",
        "properties": '{"a":1}',
        "sentAt": int(SENT_AT.timestamp()),
    }
    decoded = decode(ops.PUT_EVENTS, {b"record": encode_event(event, "s1", None)})
    assert decoded.record == event
    assert decoded.members == ("s1", None)
    item = Item(item_id="i1", properties={"GENRE": "drama"})
    assert decode(ops.PUT_ITEMS, {b"record": encode(ops.PUT_ITEMS, item)}).record == item


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "the entry has no 'record' field"),
        ({b"record": b"\xff"}, "record: not UTF-8 text"),
        ({b"record": b"[1]"}, "record: must be a JSON object"),
        ({b"record": b'{"sessionId": "s", "eventType": "x", "sentAt": NaN}'}, "record: not valid JSON"),
        ({b"record": b'{"eventType": "x", "sentAt": 1}'}, "sessionId: is required"),
        ({b"record": b'{"sessionId": "", "eventType": "x", "sentAt": 1}'}, "sessionId:"),
        ({b"record": b'{"sessionId": "s", "sentAt": 1}'}, "eventType: is required"),
        ({b"record": b'{"sessionId": "s", "eventType": "x", "sentAt": 1, "color": 1}'}, "color:"),
    ],
)
def test_poison_entries_say_why(fields: dict[bytes, bytes], reason: str) -> None:
    """What cannot become a record raises PoisonEntry with a reason in the service's names."""
    with pytest.raises(PoisonEntry) as caught:
        decode(ops.PUT_EVENTS, fields)
    assert caught.value.reason.startswith(reason)


# -- the public surface ------------------------------------------------------------------------------------------------


def test_the_module_s_names_are_sorted_and_documented() -> None:
    """aiopersonalize_events.redis: a sorted __all__; every class, function, method and property has a docstring."""
    names = list(fleet.__all__)
    assert names == sorted(names)
    assert fleet.__doc__
    for name in names:
        value = getattr(fleet, name)
        assert value.__doc__, name
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                    continue
                assert member.__doc__, f"{name}.{attr}"


def test_import_aiopersonalize_events_does_not_import_redis() -> None:
    """The redis extra loads only with aiopersonalize_events.redis (and the forward command)."""
    code = "import json, sys, aiopersonalize_events; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(result.stdout))
    assert "redis" not in loaded
    assert "aiopersonalize_events.redis" not in loaded


def test_forward_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """forward without its tracker, or with a limiter URL of another scheme, is a usage error."""
    base = ["forward", "--redis", "redis://127.0.0.1:9", "--stream", "s", "--group", "g"]
    assert main(base) == 2
    assert "PutEvents needs --tracking-id" in capsys.readouterr().err
    assert main([*base, "--tracking-id", "t", "--rate-limiter", "http://x"]) == 2
    assert "--rate-limiter" in capsys.readouterr().err
    assert main([*base, "--operation", "PutItems", "--dataset-arn", DATASET, "--rate-limiter", "redis://x"]) != 0


async def test_put_items_with_rate_limiter_on_the_command_line(redis_server: RedisServer, tmp_path: Path) -> None:
    """put-items --rate-limiter redis://...: the calls take their slots from Redis (the key shows them).

    Decided by Redis's keyspace events on the key (one SET per reserved slot, seen by a subscriber made before
    the run), not by the key still being there afterwards: it expires about a second after its last slot,
    which a slow machine can pass before the check.
    """
    lines = "\n".join(json.dumps({"itemId": f"i{i}"}) for i in range(30)) + "\n"
    source = tmp_path / "items.jsonl"
    source.write_text(lines)
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    pubsub = connection.pubsub()
    try:
        await connection.config_set("notify-keyspace-events", "K$")  # keyspace events of string commands
        await pubsub.subscribe("__keyspace@0__:cli-quota")
        async with Emulator() as emulator:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aiopersonalize_events",
                "put-items",
                "--dataset-arn",
                DATASET,
                "--endpoint-url",
                emulator.endpoint_url,
                "--no-progress",
                "--rate-limiter",
                f"{redis_server.url}?key=cli-quota&rate=20",
                str(source),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            assert len(emulator.items(DATASET)) == 30
        reserved: list[bytes] = []
        for _ in range(600):  # a hang guard: the three events were published before the process ended
            if len(reserved) == 3:
                break
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                reserved.append(message["data"])
    finally:
        await pubsub.aclose()
        await connection.aclose()
    assert reserved == [b"set"] * 3  # the schedule the three calls reserved, on key cli-quota
