"""``Forwarder``: one member of a consumer group that drains a Redis stream into the service.

The loop (``run()``): make sure the group exists (``XGROUP CREATE ... 0
MKSTREAM``: a new group starts at the stream's first entry); read this
consumer's own pending entries first (left by an earlier run under the same
name), then new ones (``XREADGROUP ... >``); every ``claim_idle / 2``
seconds take over entries another consumer has held for more than
``claim_idle`` seconds without settling them (``XAUTOCLAIM``: that consumer
died, or hangs). Each entry is decoded and checked (``_entries``); one that
cannot become a record is poison and goes to the dead-letter stream at once.
The rest are grouped with the package's ``Grouper`` (events by session and
user) into calls of at most ten: a full group goes at once, the others once
``flush_interval`` passed since the oldest was read (as the recorder does),
or when more than ``max_held`` records wait (the oldest groups go first).

The calls are made by the package's one delivery engine (``_delivery``), at
most ``max_concurrency`` at once, paced by ``requests_per_second`` (a
number, or a shared limiter such as ``RedisRateLimiter``). Entries are
acknowledged (``XACK``) only once the service accepted them. What to do with
a failure is the error's to say (``error.fault``): a transient one
(throttling, 5xx, timeouts) is sent again after the wait the client's
``RetryPolicy`` gives (backoff, ``Retry-After``, the client-wide retry
budget; with the budget empty, one probe at a time), for as long as the
forwarder runs; a refusal of the records themselves (``InvalidInputException``)
is split into one call per record, and those still refused go to the
dead-letter stream with the reason; a set-up error (credentials, permissions,
an unknown tracker or dataset) is not the records' fault: they are held,
logged once at ERROR with what to fix, and tried again on the policy's
backoff. While
entries wait here (grouped, or in a call being retried), their idle time is
reset every ``claim_idle / 3`` seconds (``XCLAIM ... JUSTID``), so a live
forwarder's entries are not taken over.

Every ``trim_interval`` seconds a script trims the stream (``XTRIM MINID``)
below the oldest entry any consumer group of the stream still needs, so
acknowledged entries leave Redis and a second group reading the same stream
is never cut short.

``stop()`` (what SIGTERM does in ``aiopersonalize-events forward``) stops
reading (a blocking ``XREADGROUP`` is cut short) and retrying; calls in flight finish and are acknowledged (within
``close_timeout``); what was read and not sent stays pending in Redis, for
another forwarder or the next run. Delivery is at least once: an entry sent
by a forwarder that died before its ``XACK`` is sent again by the one that
claims it, and the service keeps one copy (events carry their ``eventId``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random as _random
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import attrs
import redis.asyncio
import redis.exceptions

from .. import _limits as L
from .. import _operations as ops
from .. import _telemetry
from .._batching import DEFAULT_RATE, AcquireLimit, Grouper, Rate, _limiter
from .._clock import Clock
from .._delivery import Delivery
from .._retry import RetryPolicy, wait_floor
from .._validators import check_arn, check_positive_int, check_text
from ..errors import PersonalizeEventsError, ValidationError
from ._caller import RedisCaller, Stopped
from ._connect import Backoff, as_text, check_url, connect, describe
from ._entries import RECORD_FIELD, PoisonEntry, decode, line_members
from ._keys import dead_letter_key

__all__ = ["Forwarder", "ForwarderStateError", "ForwarderStats", "default_consumer"]

log: Final = logging.getLogger("aiopersonalize_events.redis")

_PROBE_WAIT: Final = 1.0
"""The least wait, in seconds, before held records go again as a probe (0 with ``set_testing(True)``)."""


class OperationClient(Protocol):
    """What a forwarder needs of its client: the client's retry policy, and the ``put_*`` method of its operation.

    A ``PersonalizeEventsClient`` is one; the method is looked up by the
    operation's name (``put_events``, ``put_items``, ...).
    """

    retry_policy: RetryPolicy


_TRIM: Final = """
-- KEYS[1]: the stream. Trim below the oldest entry any of its consumer groups still needs.
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local low_ms, low_seq
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local id = info['last-delivered-id']
  if tonumber(info['pending']) > 0 then
    id = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  ms = tonumber(ms)
  seq = tonumber(seq)
  if low_ms == nil or ms < low_ms or (ms == low_ms and seq < low_seq) then
    low_ms, low_seq = ms, seq
  end
end
if low_ms == nil or (low_ms == 0 and low_seq == 0) then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%.0f', low_ms, low_seq))
"""

_FORGET_CONSUMER: Final = """
-- KEYS[1]: the stream; ARGV: group, consumer. Delete the consumer only when it holds no pending entry.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""


@attrs.frozen
class ForwarderStats:
    """What a ``Forwarder`` did so far.

    ``read`` entries came from the stream (new, its own pending ones, or
    ``claimed`` from other consumers); ``sent`` records were accepted by the
    service and acknowledged; ``dead`` went to the dead-letter stream
    (poison entries and refused records); ``deleted`` were pending but no
    longer in the stream (trimmed by a producer's ``maxlen``) and could only
    be acknowledged; ``held`` are read and not settled yet. ``calls`` counts
    the calls made, ``retried`` those made again after a failure. ``lag``
    (entries no consumer of the group has read yet) and ``pending`` (read by
    the group's consumers and not acknowledged) are the group's, as Redis
    last said (``XINFO GROUPS``, every few seconds; None until known).
    """

    read: int
    claimed: int
    sent: int
    dead: int
    deleted: int
    held: int
    calls: int
    retried: int
    lag: int | None = None
    pending: int | None = None


class ForwarderStateError(PersonalizeEventsError, RuntimeError):
    """``run()`` called twice, or on a closed forwarder."""


class _Batch:
    """Entries of one call: their ids, their raw ``record`` fields (for dead letters), records and members."""

    __slots__ = ("ids", "members", "raws", "records", "since")

    def __init__(self, members: tuple[Any, ...], entries: Sequence[tuple[bytes, bytes, Any]], since: float) -> None:
        self.members = members
        self.ids = [entry[0] for entry in entries]
        self.raws = [entry[1] for entry in entries]
        self.records = [entry[2] for entry in entries]
        self.since = since

    def __len__(self) -> int:
        return len(self.ids)

    def split(self) -> list[_Batch]:
        return [
            _Batch(self.members, [(i, r, rec)], self.since)
            for i, r, rec in zip(self.ids, self.raws, self.records, strict=True)
        ]


class _Outcomes:
    """What the delivery engine tells the forwarder about each call's entries."""

    __slots__ = ("_forwarder",)

    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    def sent(self, batch: _Batch) -> None:
        self._forwarder._ack(batch)

    def refused(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._forwarder._refused(batch, error)

    def held(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._forwarder._retried += 1

    def unsent(self, batch: _Batch, error: PersonalizeEventsError | None) -> None:
        """Stopped with the entries unsent: they stay pending in Redis, for another forwarder or the next run."""


def default_consumer() -> str:
    """A consumer name unique to this process: ``HOST-PID``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Forwarder:
    """Drains the Redis stream ``stream`` as consumer ``consumer`` of group ``group`` into the service.

    ``client`` is an opened (or openable) ``PersonalizeEventsClient``; ``url``
    the Redis URL. ``operation`` is the call the stream's records go to
    (``"PutEvents"`` by default; each of the five works), with its tracker
    (``tracking_id``) or dataset (``dataset_arn``). ``consumer`` defaults to
    ``HOST-PID``; give a stable name to have a restarted forwarder take its
    own pending entries back at once. ``requests_per_second`` paces the calls
    (a number, None, ``DEFAULT_RATE`` for the service quota, or a shared
    limiter), at most ``max_concurrency`` at once. ``flush_interval`` and
    ``max_held`` bound how long and how many records wait to fill calls of
    ten (``read_count`` entries are read at a time, blocking ``block``
    seconds when there are none). ``claim_idle`` (seconds) is how long an
    entry may sit with another consumer before this one takes it over;
    ``dead_letters`` the dead-letter stream (default
    ``dead_letter_key(stream)``, in the stream's cluster slot); ``trim``
    turns trimming off; ``close_timeout`` bounds how long a stop waits for
    the calls in flight and their acknowledgement. ``clock`` (a ``Clock``:
    an event loop or a ``ManualClock``) measures the flush interval and the
    waits before a call is sent again; ``sleep`` and ``random`` (the waits
    while Redis is away, and the housekeeping rounds) are injectable for
    tests. See the module documentation for the life of an entry.
    """

    def __init__(
        self,
        client: OperationClient,
        url: str,
        *,
        stream: str,
        group: str,
        tracking_id: str | None = None,
        consumer: str | None = None,
        operation: str = "PutEvents",
        dataset_arn: str | None = None,
        requests_per_second: Rate = DEFAULT_RATE,
        max_concurrency: int = 8,
        read_count: int = 100,
        block: float = 1.0,
        flush_interval: float = 1.0,
        max_held: int = 5000,
        claim_idle: float = 30.0,
        dead_letters: str | None = None,
        trim: bool = True,
        trim_interval: float = 5.0,
        close_timeout: float = 30.0,
        socket_timeout: float = 5.0,
        backoff_max: float = 5.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        op = ops.BY_NAME.get(operation)
        if op is None:
            raise ValidationError("operation", f"must be one of {', '.join(ops.BY_NAME)}")
        if op.resource_field == "tracking_id":
            check_text("tracking_id", tracking_id, L.ID_MAX)
            resource = tracking_id
        else:
            check_arn("dataset_arn", dataset_arn)
            resource = dataset_arn
        check_url(url)
        if not url.startswith(("redis://", "rediss://", "unix://")):  # the URL itself may hold a password: not shown
            raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")
        check_text("stream", stream, 512)
        check_text("group", group, 512)
        if consumer is not None:
            check_text("consumer", consumer, 512)
        check_positive_int("max_concurrency", max_concurrency)
        check_positive_int("read_count", read_count)
        check_positive_int("max_held", max_held)
        for name, value in (
            ("block", block),
            ("flush_interval", flush_interval),
            ("claim_idle", claim_idle),
            ("trim_interval", trim_interval),
            ("socket_timeout", socket_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValidationError(name, "must be a positive number of seconds")
        if isinstance(close_timeout, bool) or not isinstance(close_timeout, (int, float)) or close_timeout < 0:
            raise ValidationError("close_timeout", "must be a number of seconds of at least 0")
        self._op = op
        self._resource = resource
        if clock is not None and not isinstance(clock, Clock):
            raise ValidationError("clock", "must have time() and call_at(when, callback, *args), as an event loop has")
        self._put: Callable[..., Awaitable[Any]] = getattr(client, op.snake_name)
        self._policy = client.retry_policy
        self._members = line_members(op)
        self._limiter: AcquireLimit | None = _limiter(op, requests_per_second)
        self._url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer if consumer is not None else default_consumer()
        self.dead_letters = dead_letters if dead_letters is not None else dead_letter_key(stream)
        self._max_concurrency = max_concurrency
        self._read_count = read_count
        self._max_held = max(max_held, read_count + L.RECORDS_PER_CALL * max_concurrency)
        self._block = float(block)
        self._flush_interval = float(flush_interval)
        self._claim_idle = float(claim_idle)
        self._trim = trim
        self._trim_interval = float(trim_interval)
        self._close_timeout = float(close_timeout)
        self._socket_timeout = float(socket_timeout)
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._caller = RedisCaller(
            f"forwarder {self.consumer}",
            backoff=Backoff(cap=backoff_max, random=random),
            backoff_max=backoff_max,
            sleep=sleep,
            now=self._now,
            recreate=self._create_group,
            url=url,
        )

        self._grouper: Grouper[tuple[Any, ...], tuple[bytes, bytes, Any]] = Grouper(
            op.records_per_call, max_records=self._max_held
        )
        self._grouped_since: float | None = None
        self._ready: deque[_Batch] = deque()
        self._held_ids: set[bytes] = set()
        self._kwargs: dict[str, Any] = {op.resource_field: resource}
        self._delivery: Delivery[_Batch] = Delivery(
            self._call,
            _Outcomes(self),
            policy=self._policy,
            max_concurrency=max_concurrency,
            limiter=self._limiter,
            clock=clock,
            min_wait=wait_floor(_PROBE_WAIT),
            split=_Batch.split,
            name=f"forwarder {self.consumer}",
            logger=log,
        )
        self._redis: redis.asyncio.Redis | None = None
        self._trim_script: Any = None
        self._forget_script: Any = None
        self._state = "new"  # new -> running -> closed
        self._room: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self._read = self._claimed = self._sent = self._dead = self._deleted = 0
        self._calls = self._retried = 0
        self._lag: int | None = None
        self._group_pending: int | None = None
        self._acks: list[_Batch] = []  # accepted by the service, waiting for XACK
        self._dead_queue: list[tuple[_Batch, str]] = []  # refused by the service, waiting for the dead letters
        self._ack_wake = asyncio.Event()
        self._acker: asyncio.Task[None] | None = None
        self._acks_closed = False
        _telemetry.watch_forwarder(self)

    def __repr__(self) -> str:
        return (
            f"Forwarder(stream={self.stream!r}, group={self.group!r}, consumer={self.consumer!r}, "
            f"operation={self._op.name}, state={self._state}, stats={self.stats})"
        )

    @property
    def stats(self) -> ForwarderStats:
        """A snapshot of the counters."""
        return ForwarderStats(
            self._read,
            self._claimed,
            self._sent,
            self._dead,
            self._deleted,
            self._held,
            self._calls,
            self._retried,
            self._lag,
            self._group_pending,
        )

    @property
    def running(self) -> bool:
        """True from ``run()`` until it returns."""
        return self._state == "running"

    @property
    def _held(self) -> int:
        """Entries read and not settled yet: derived from the ids held."""
        return len(self._held_ids)

    def _now(self) -> float:
        return self._clock.time() if self._clock is not None else asyncio.get_running_loop().time()

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- life cycle -------------------------------------------------------------------------------------

    @property
    def _stopping(self) -> bool:
        return self._caller.stopping

    def stop(self) -> None:
        """Stop reading and retrying; ``run()`` returns once the calls in flight are settled (signal-safe)."""
        self._caller.stop()
        self._delivery.halt()  # no new call from now on; what waits stays pending in Redis
        if self._room is not None:
            self._room.set()

    async def close(self) -> None:
        """``stop()``, then wait for ``run()`` to return (idempotent)."""
        self.stop()
        if self._done is not None:
            await asyncio.shield(self._done)
        self._state = "closed"

    async def run(self) -> None:
        """Forward until ``stop()``/``close()``: see the class and module documentation."""
        if self._state != "new":
            raise ForwarderStateError(f"this Forwarder is {self._state}; run() runs once per Forwarder")
        loop = asyncio.get_running_loop()
        self._state = "running"
        self._done = loop.create_future()
        self._caller.start()
        self._room = asyncio.Event()
        self._redis = connect(self._url, socket_timeout=self._block + self._socket_timeout)
        self._trim_script = self._redis.register_script(_TRIM)
        self._forget_script = self._redis.register_script(_FORGET_CONSUMER)
        log.info("forwarder %s: stream %s, group %s, to %s", self.consumer, self.stream, self.group, self._op.name)
        housekeeping = loop.create_task(self._housekeeping(), name="aiopersonalize_events-forwarder-housekeeping")
        self._acker = loop.create_task(self._acknowledge(), name="aiopersonalize_events-forwarder-acks")
        try:
            await self._caller.call(self._create_group)
            await self._read_loop()
        except Stopped:
            pass
        finally:
            await self._finish(housekeeping)

    async def _finish(self, housekeeping: asyncio.Task[None]) -> None:
        self._caller.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._close_timeout
        try:
            flying = self._delivery.in_flight
            await self._delivery.stop(grace=self._close_timeout)  # waiting ones stay pending in Redis now
            if flying and loop.time() >= deadline:
                log.warning(
                    "forwarder %s: call(s) not settled within close_timeout; their entries stay pending", self.consumer
                )
            acker, self._acker = self._acker, None
            if acker is not None:  # acknowledge what the service accepted (within what is left of close_timeout)
                self._acks_closed = True
                self._ack_wake.set()
                await asyncio.wait([acker], timeout=max(0.0, deadline - loop.time()))
                await _end(acker)
                if self._acks:
                    log.warning(
                        "forwarder %s: %d accepted record(s) not acknowledged within close_timeout; they stay pending "
                        "and will be sent again (the service keeps one copy)",
                        self.consumer,
                        sum(len(b.ids) for b in self._acks),
                    )
            await asyncio.wait([housekeeping], timeout=self._socket_timeout + self._block)
            await _end(housekeeping)
            if self._held:
                log.info(
                    "forwarder %s: %d entr(ies) read and not sent stay pending, for another forwarder or the next run",
                    self.consumer,
                    self._held,
                )
            elif self._forget_script is not None:
                try:  # no pending entry left: leave no dead consumer behind in the group
                    await self._forget_script(keys=[self.stream], args=[self.group, self.consumer])
                except Exception as exc:
                    log.debug("forwarder %s: could not delete the consumer: %s", self.consumer, describe(exc))
            log.info("forwarder %s stopped: %s", self.consumer, self.stats)
        finally:
            connection, self._redis = self._redis, None
            if connection is not None:
                try:
                    await connection.aclose()
                except Exception as exc:
                    log.debug("forwarder %s: closing the connection failed: %s", self.consumer, describe(exc))
            self._state = "closed"
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    async def _create_group(self) -> None:
        assert self._redis is not None
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        else:
            log.info("forwarder %s: created group %s on %s", self.consumer, self.group, self.stream)

    # -- reading ---------------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._redis is not None
        assert self._room is not None
        connection = self._redis
        cursor: bytes | str = b"0"  # this consumer's own pending entries first, then new ones (">")
        next_claim = self._now()
        while not self._stopping:
            if self._held >= self._max_held:  # send what is held before reading more
                if self._grouped_since is not None:
                    self._cut()
                if self._ready:
                    await self._dispatch()
                    continue
                self._room.clear()
                await self._room.wait()
                continue
            now = self._now()
            entries: list[tuple[Any, Any]] = []
            if now >= next_claim:
                next_claim = now + self._claim_interval
                entries.extend(await self._claim(self._max_held - self._held))
            room = self._max_held - self._held - len(entries)
            if room > 0:
                block: float | None = None
                if not entries and cursor == ">":
                    block = self._block
                    if self._grouped_since is not None:
                        block = max(0.001, min(block, self._grouped_since + self._flush_interval - now))
                    block = min(block, max(0.001, next_claim - now))
                count = min(self._read_count, room)
                stream_cursor = cursor

                async def read(count: int = count, block: float | None = block, at: Any = stream_cursor) -> Any:
                    return await connection.xreadgroup(
                        self.group,
                        self.consumer,
                        {self.stream: at},
                        count=count,
                        block=None if block is None else max(1, int(block * 1000)),
                    )

                got = _entries_of(await self._caller.until_stopped(self._caller.call(read)))
                if cursor != ">":
                    if got:
                        cursor = got[-1][0]
                    else:
                        cursor = ">"
                        log.debug("forwarder %s: own pending entries done; reading new ones", self.consumer)
                entries.extend(got)
            self._read += len(entries)
            await self._take_in(entries)
            if self._grouped_since is not None and self._now() - self._grouped_since >= self._flush_interval:
                self._cut()
            await self._dispatch()

    @property
    def _claim_interval(self) -> float:
        return self._claim_idle / 2

    async def _claim(self, room: int) -> list[tuple[Any, Any]]:
        """Take over entries other consumers held for more than ``claim_idle`` (XAUTOCLAIM, one pass)."""
        assert self._redis is not None
        connection = self._redis
        claimed: list[tuple[Any, Any]] = []
        start: Any = "0-0"
        while room > 0:

            async def autoclaim(start: Any = start, count: int = min(room, self._read_count)) -> Any:
                return await connection.xautoclaim(
                    self.stream, self.group, self.consumer, int(self._claim_idle * 1000), start, count=count
                )

            reply = await self._caller.call(autoclaim)
            start = reply[0]
            got = _entry_list(reply[1])
            if len(reply) > 2 and reply[2]:
                gone = list(reply[2])
                self._deleted += len(gone)
                log.warning(
                    "forwarder %s: %d pending entr(ies) were no longer in the stream (trimmed by maxlen?)",
                    self.consumer,
                    len(gone),
                )
            fresh = [entry for entry in got if entry[0] not in self._held_ids]
            claimed.extend(fresh)
            room -= len(fresh)
            if as_text(start) == "0-0" or not got:
                break
        if claimed:
            self._claimed += len(claimed)
            log.info("forwarder %s: took over %d entr(ies) idle for %gs", self.consumer, len(claimed), self._claim_idle)
        return claimed

    async def _take_in(self, entries: list[tuple[Any, Any]]) -> None:
        """Decode entries; poison to the dead letters now, the rest into groups."""
        poison: list[tuple[bytes, bytes, str]] = []
        gone: list[bytes] = []
        now = self._now()
        for entry_id, fields in entries:
            if entry_id in self._held_ids:
                continue
            if not fields:  # pending, but deleted from the stream meanwhile
                gone.append(entry_id)
                continue
            raw = fields.get(RECORD_FIELD, b"") if isinstance(fields, dict) else b""
            try:
                decoded = decode(self._op, fields)
            except PoisonEntry as exc:
                poison.append((entry_id, raw if isinstance(raw, bytes) else str(raw).encode(), exc.reason))
                continue
            self._held_ids.add(entry_id)
            if self._grouped_since is None:
                self._grouped_since = now
            for members, group in self._grouper.add(decoded.members, (entry_id, raw, decoded.record)):
                self._ready.append(_Batch(members, group, now))
        if gone:
            self._deleted += len(gone)
            connection = self._redis
            assert connection is not None

            async def ack() -> Any:
                return await connection.xack(self.stream, self.group, *gone)

            await self._caller.call(ack)
        for entry_id, raw, reason in poison:
            log.warning(
                "forwarder %s: entry %s is poison (%s); to %s",
                self.consumer,
                as_text(entry_id),
                reason,
                self.dead_letters,
            )
            await self._dead_letter([(entry_id, raw)], reason, until_stopped=True)

    def _cut(self) -> None:
        now = self._now()
        for members, group in self._grouper.cut():
            self._ready.append(_Batch(members, group, now))
        self._grouped_since = None

    async def _dispatch(self) -> None:
        """Hand the ready calls to the engine (it bounds them by ``max_concurrency``)."""
        while self._ready and not self._stopping:
            self._delivery.submit(self._ready.popleft())

    def _settled(self, batch: _Batch) -> None:
        self._held_ids.difference_update(batch.ids)
        if self._room is not None:
            self._room.set()

    async def _call(self, batch: _Batch) -> None:
        """The engine's send: one call with the batch's records and request members."""
        self._calls += 1
        kwargs = dict(self._kwargs)
        kwargs.update(zip(self._members, batch.members, strict=True))
        await self._put(**kwargs, **{self._op.record_field: batch.records})

    def _refused(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        """The service refused these records for good: to the dead-letter stream (by the acknowledging task)."""
        self._dead_queue.append((batch, _reason(error)))
        self._ack_wake.set()

    def _ack(self, batch: _Batch) -> None:
        """Queue ``batch`` for acknowledgement: one XACK takes the batches of every call accepted meanwhile."""
        self._acks.append(batch)
        self._ack_wake.set()

    async def _acknowledge(self) -> None:
        """The acknowledging task: XACK what the service accepted, many calls' entries per round trip."""
        while True:
            while self._dead_queue:
                batch, reason = self._dead_queue[0]
                await self._dead_letter(list(zip(batch.ids, batch.raws, strict=True)), reason, until_stopped=False)
                del self._dead_queue[0]
                self._settled(batch)
            if not self._acks:
                if self._acks_closed:  # ends by itself, as the housekeeping does
                    return
                self._ack_wake.clear()
                await self._ack_wake.wait()
                continue
            batches = self._acks[:]
            ids = [entry_id for batch in batches for entry_id in batch.ids]
            connection = self._redis
            assert connection is not None

            async def ack(ids: list[Any] = ids, connection: Any = connection) -> Any:
                pipe = connection.pipeline(transaction=False)
                for start in range(0, len(ids), 1000):
                    pipe.xack(self.stream, self.group, *ids[start : start + 1000])
                return await pipe.execute()

            await self._caller.call(ack, until_stopped=False)
            del self._acks[: len(batches)]
            for batch in batches:
                self._sent += len(batch.ids)
                self._settled(batch)

    async def _dead_letter(
        self, entries: list[tuple[bytes, bytes]], reason: str, *, until_stopped: bool = False
    ) -> None:
        connection = self._redis
        assert connection is not None
        text = reason.encode("utf-8", "replace")

        async def move() -> Any:
            pipe = connection.pipeline(transaction=True)  # one slot: the dead letters share the stream's hash tag
            for entry_id, raw in entries:
                pipe.xadd(
                    self.dead_letters,
                    {
                        RECORD_FIELD: raw,
                        b"reason": text,
                        b"stream": self.stream,
                        b"id": entry_id,
                        b"group": self.group,
                        b"consumer": self.consumer,
                    },
                )
            pipe.xack(self.stream, self.group, *(entry_id for entry_id, _ in entries))
            return await pipe.execute()

        await self._caller.call(move, until_stopped=until_stopped)
        self._dead += len(entries)

    # -- heartbeat and trimming ----------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        beat = self._claim_idle / 3
        every = min(beat, self._trim_interval)
        next_trim = self._now() + self._trim_interval
        while not self._stopping:  # ends by itself at stop(): redis-py may swallow a cancellation mid-command
            await self._caller.pause(every)
            if self._stopping:
                return
            try:
                await self._heartbeat(beat)
                await self._group_info()
                if self._trim and self._now() >= next_trim:
                    next_trim = self._now() + self._trim_interval
                    trimmed = await self._trim_script(keys=[self.stream])
                    if trimmed:
                        log.debug("forwarder %s: trimmed %s entries", self.consumer, trimmed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the next round tries again
                log.debug("forwarder %s: housekeeping skipped: %s", self.consumer, describe(exc))

    async def _group_info(self) -> None:
        """Refresh ``stats.lag`` and ``stats.pending`` from ``XINFO GROUPS``."""
        if self._redis is None:
            return
        for info in await self._redis.xinfo_groups(self.stream):
            if as_text(info.get("name")) == self.group:
                lag = info.get("lag")
                self._lag = int(lag) if lag is not None else None
                self._group_pending = int(info.get("pending", 0))

    async def _heartbeat(self, beat: float) -> None:
        """Reset the idle time of entries this forwarder still works on, so that nobody takes them over."""
        ids: list[Any] = list(self._held_ids)  # Redis touches only those idle for beat / 2 or more
        if not ids or self._redis is None:
            return
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            await self._redis.xclaim(self.stream, self.group, self.consumer, int(beat * 500), chunk, justid=True)


async def _end(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` if it still runs, and wait a little for it (redis-py may swallow the cancellation)."""
    if task.done():
        return
    task.cancel()
    await asyncio.wait([task], timeout=1.0)
    if not task.done():
        log.error("forwarder: task %s did not end when cancelled", task.get_name())


def _reason(error: PersonalizeEventsError) -> str:
    return f"{type(error).__name__}: {error}"


def _entry_list(entries: Any) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    for entry in entries or ():
        if entry is None:
            continue
        entry_id, fields = entry[0], entry[1]
        if entry_id is None:
            continue
        if isinstance(fields, list):  # a raw reply: [field, value, ...]
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        out.append((entry_id, fields))
    return out


def _entries_of(reply: Any) -> list[tuple[Any, Any]]:
    """The entries of an XREADGROUP reply, whichever shape redis-py gives it (RESP2 list, RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        out: list[tuple[Any, Any]] = []
        for value in reply.values():
            if value and isinstance(value[0], list) and value[0] and isinstance(value[0][0], (tuple, list)):
                value = value[0]
            out.extend(_entry_list(value))
        return out
    out = []
    for stream_reply in reply:
        out.extend(_entry_list(stream_reply[1]))
    return out
