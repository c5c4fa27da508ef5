"""Redis's error replies against a real redis-server: out of memory, a failover (READONLY, MASTERDOWN), a busy
script, a wrong password and a missing permission hold the events (never fail them) and go once Redis is well;
a set-up error is said once, at ERROR, with what to fix; drop-oldest never drops the event of a put()."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import redis.asyncio
import redis.exceptions
from _redis_server import RedisServer, free_port, until
from redis._parsers.base import BaseParser

from aiopersonalize_events import Credentials, Event, PersonalizeEventsClient
from aiopersonalize_events.emulator import Emulator
from aiopersonalize_events.redis import Forwarder, RedisRateLimiter, RedisStreamSpool, _connect, add_records

TRACKER = "tracker-replies"
SENT_AT = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
PASSWORD = "s3cret-Pass-4242"


def event(i: int) -> Event:
    return Event(event_type="click", sent_at=SENT_AT, item_id=f"item-{i}", event_id=f"id-{i}")


@pytest.fixture
async def client() -> AsyncIterator[PersonalizeEventsClient]:
    """A client that is never called: with a Redis spool the recorder sends nothing itself."""
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=Credentials("AKIDREPLY", "reply-secret")
    ) as c:
        yield c


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", "transient"),
        ("READONLY You can't write against a read only replica.", "transient"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "transient"),
        ("CLUSTERDOWN The cluster is down", "transient"),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", "transient"),
        ("LOADING Redis is loading the dataset in memory", "transient"),
        ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", "transient"),
        ("MISCONF Redis is configured to save RDB snapshots, but it is unable to persist to disk.", "transient"),
        ("NOREPLICAS Not enough good replicas to write.", "transient"),
        ("WRONGPASS invalid username-password pair or user is disabled.", "setup"),
        ("NOAUTH Authentication required.", "setup"),
        ("NOPERM this user has no permissions to run the 'xadd' command", "setup"),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", "refused"),
        ("ERR unknown command 'XADD'", "refused"),
    ],
)
def test_each_reply_is_sorted_by_the_exception_redis_py_raises_for_it(reply: str, kind: str) -> None:
    """The exception redis-py's own parser makes of each reply (its code already stripped) is sorted right."""
    exc = BaseParser.parse_error(reply)
    assert _connect.transient(exc) is (kind != "refused"), (type(exc).__name__, str(exc))
    assert _connect.fault(exc) == kind


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("Error 111 connecting"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("loading"),
        ConnectionResetError(104, "reset"),
    ],
)
def test_connection_troubles_are_transient(exc: BaseException) -> None:
    """Refused, dropped, timed out, loading: wait and try again."""
    assert _connect.transient(exc)
    assert _connect.fault(exc) == "transient"


async def _spool_through(
    client: PersonalizeEventsClient,
    redis_server: RedisServer,
    admin: redis.asyncio.Redis,
    stream: str,
    break_it: list[tuple[str, ...]],
    mend_it: list[tuple[str, ...]],
    *,
    url: str | None = None,
    n: int = 40,
) -> RedisStreamSpool:
    """Record n events while Redis answers with an error, mend Redis, flush: each event is in the stream once."""
    for command in break_it:
        await admin.execute_command(*command)
    failures: list[int] = []
    spool = RedisStreamSpool(url or redis_server.url, stream=stream, backoff_max=0.05, close_timeout=10)
    async with client.event_recorder(
        tracking_id=TRACKER, spool=spool, on_failure=lambda events, error: failures.append(len(events))
    ) as recorder:
        for i in range(n):
            assert recorder.record(event(i), session_id="s1")
        await until(lambda: spool.stats.retries >= 3, what="the spool to be refused and try again")
        stats = recorder.stats
        assert (stats.sent, stats.failed, stats.pending) == (0, 0, n)  # held, never failed
        for command in mend_it:
            await admin.execute_command(*command)
        await recorder.flush()
        stats = recorder.stats
        assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (n, n, 0, 0, 0)
    assert failures == []
    entries = await admin.xrange(stream)
    assert len(entries) == n  # each event once
    assert spool.stats.lost == 0
    return spool


async def test_out_of_memory_holds_the_events_until_memory_is_freed(
    client: PersonalizeEventsClient, redis_server: RedisServer, admin: redis.asyncio.Redis
) -> None:
    """maxmemory reached (noeviction): XADD is refused with OOM; the events wait and go once memory is freed."""
    await _spool_through(
        client,
        redis_server,
        admin,
        "oom",
        [("CONFIG", "SET", "maxmemory-policy", "noeviction"), ("CONFIG", "SET", "maxmemory", "1")],
        [("CONFIG", "SET", "maxmemory", "0")],
    )


async def test_a_failover_s_readonly_window_holds_the_events(
    client: PersonalizeEventsClient, redis_server: RedisServer, admin: redis.asyncio.Redis
) -> None:
    """The server is a replica for a while (REPLICAOF an unreachable primary): READONLY, then promoted again."""
    await _spool_through(
        client,
        redis_server,
        admin,
        "readonly",
        [("REPLICAOF", "127.0.0.1", str(free_port()))],
        [("REPLICAOF", "NO", "ONE")],
    )


async def test_a_replica_without_its_master_holds_the_events(
    client: PersonalizeEventsClient, redis_server: RedisServer, admin: redis.asyncio.Redis
) -> None:
    """MASTERDOWN (a replica that serves no stale data while its primary is away): wait, then go once promoted."""
    await _spool_through(
        client,
        redis_server,
        admin,
        "masterdown",
        [("CONFIG", "SET", "replica-serve-stale-data", "no"), ("REPLICAOF", "127.0.0.1", str(free_port()))],
        [("REPLICAOF", "NO", "ONE"), ("CONFIG", "SET", "replica-serve-stale-data", "yes")],
    )


async def test_a_busy_script_holds_the_events(
    client: PersonalizeEventsClient, redis_server: RedisServer, admin: redis.asyncio.Redis
) -> None:
    """A script that runs too long makes Redis answer BUSY to everyone; once it is killed the events go."""
    await admin.config_set("busy-reply-threshold", 10)
    busy = socket.create_connection(("127.0.0.1", redis_server.port), timeout=5)
    try:
        busy.sendall(b'EVAL "while true do end" 0\r\n')  # no answer: Redis is busy until SCRIPT KILL
        await until(lambda: redis_server.command("PING").startswith(b"-BUSY"), what="Redis to be busy")
        await _spool_through(client, redis_server, admin, "busy", [], [("SCRIPT", "KILL")], n=10)
    finally:
        busy.close()


async def test_a_wrong_password_holds_the_events_says_so_once_at_error_and_recovers(
    client: PersonalizeEventsClient,
    redis_server: RedisServer,
    admin: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """requirepass set, the URL has another password: one ERROR naming the fix, no WARNING flood, nothing failed;
    the server's password changed to the URL's: the events go."""
    caplog.set_level(logging.INFO, "aiopersonalize_events.redis")
    await admin.config_set("requirepass", "another-password")
    mended = redis.asyncio.Redis.from_url(redis_server.url, password="another-password")
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    try:
        await _spool_through(
            client, redis_server, mended, "wrongpass", [], [("CONFIG", "SET", "requirepass", PASSWORD)], url=url
        )
    finally:
        await mended.aclose()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "operator's to fix" in message
    assert "password" in message
    assert PASSWORD not in caplog.text
    assert "not answering" not in caplog.text  # not said as an outage
    assert "answers again" in caplog.text


async def test_a_missing_permission_holds_the_events_says_so_once_and_recovers(
    client: PersonalizeEventsClient,
    redis_server: RedisServer,
    admin: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ACL user that may not XADD: NOPERM is one ERROR (grant it in the ACL), the events wait, then go."""
    caplog.set_level(logging.INFO, "aiopersonalize_events.redis")
    await admin.execute_command("ACL", "SETUSER", "producer", "on", f">{PASSWORD}", "~*", "+@all", "-xadd")
    url = f"redis://producer:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    await _spool_through(client, redis_server, admin, "noperm", [], [("ACL", "SETUSER", "producer", "+xadd")], url=url)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "ACL" in errors[0]
    assert "permission" in errors[0]
    assert PASSWORD not in caplog.text


async def test_a_put_is_never_acknowledged_for_an_event_drop_oldest_then_drops(
    client: PersonalizeEventsClient, redis_server: RedisServer
) -> None:
    """Redis away, overflow drop_oldest: the event of an awaited put() is never the one dropped; once Redis is
    back the put() returns and its event is in the stream, while the dropped ones went to on_drop."""
    redis_server.stop()
    dropped: list[str | None] = []
    spool = RedisStreamSpool(redis_server.url, stream="acked", max_events=3, backoff_max=0.05, close_timeout=10)
    async with client.event_recorder(
        tracking_id=TRACKER, spool=spool, overflow="drop_oldest", on_drop=lambda e, why: dropped.append(e.event_id)
    ) as recorder:
        put = asyncio.ensure_future(recorder.put(event(0), session_id="s1"))
        await until(lambda: spool.stats.outages == 1, what="the outage to be noticed")
        assert not put.done()
        for i in range(1, 8):
            recorder.record(event(i), session_id="s1")  # the queue is full: drop the oldest *record()ed* event
        assert "id-0" not in dropped
        assert not put.done()
        redis_server.start()
        await put  # returns only now that Redis has it
        connection = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            ids = [fields[b"record"] for _, fields in await connection.xrange("acked")]
        finally:
            await connection.aclose()
        assert any(b'"id-0"' in line for line in ids)
        await recorder.flush()
        stats = recorder.stats
        assert stats.recorded == stats.sent + stats.dropped + stats.failed + stats.pending
        assert stats.dropped == len(dropped) > 0


async def test_the_rate_limiter_holds_calls_through_a_wrong_password_and_says_so_once(
    redis_server: RedisServer, admin: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """acquire() with a wrong password waits (it never lets a call through, never fails it): one ERROR, then it
    gets its slot once the password is right."""
    caplog.set_level(logging.INFO, "aiopersonalize_events.redis")
    await admin.config_set("requirepass", "another-password")
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    tries: list[float] = []

    async def sleep(delay: float) -> None:
        tries.append(delay)
        await asyncio.sleep(0.005)

    limiter = RedisRateLimiter(url, key="quota", rate=100, sleep=sleep, backoff_max=0.05)
    try:
        acquire = asyncio.ensure_future(limiter.acquire())
        await until(lambda: len(tries) >= 5, what="acquire() to be refused a few times")
        assert not acquire.done()
        mended = redis.asyncio.Redis.from_url(redis_server.url, password="another-password")
        await mended.config_set("requirepass", PASSWORD)
        await mended.aclose()
        await acquire
        assert limiter.granted == 1
    finally:
        await limiter.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert PASSWORD not in caplog.text


async def test_a_forwarder_with_a_wrong_password_says_so_once_and_sends_once_it_is_fixed(
    redis_server: RedisServer, admin: redis.asyncio.Redis, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The forwarder's Redis calls: a wrong password is one ERROR (not WARNINGs over and over), nothing goes to the
    dead letters, and the records are sent once the password is right."""
    caplog.set_level(logging.INFO, "aiopersonalize_events.redis")
    await add_records(admin, "fwd", [event(i) for i in range(12)], session_id="s1")
    await admin.config_set("requirepass", "another-password")
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=emulator.endpoint_url, credentials=Credentials("AKIDFWD", "fwd-secret")
    ) as client:
        forwarder = Forwarder(
            client, url, stream="fwd", group="g", tracking_id=TRACKER, consumer="one", flush_interval=0.05
        )
        task = asyncio.ensure_future(forwarder.run())
        await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), what="the ERROR line")
        mended = redis.asyncio.Redis.from_url(redis_server.url, password="another-password")
        await mended.config_set("requirepass", PASSWORD)
        await mended.aclose()
        await until(lambda: forwarder.stats.sent == 12, what="12 records sent")
        await forwarder.close()
        await task
    assert forwarder.stats.dead == 0
    assert len(emulator.events(TRACKER)) == 12
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "operator's to fix" in errors[0]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "not answering" in r.getMessage()]
    assert PASSWORD not in caplog.text
