"""``Forwarder``: one member of a consumer group that drains a Redis stream into the service.

What lives where: this module reads, groups, hands calls to the package's
delivery engine (``_delivery``) and acknowledges; the group's commands
(create, read, claim, take over, heartbeat, release, survey, trim, ack, dead
letters) are ``_group.ConsumerGroup``'s; every command that must get through
goes through ``_caller.RedisCaller`` (backoff while Redis is away, cut short
at stop); entries are decoded by ``_entries``.

The loop (``run()``): make sure the group exists (``XGROUP CREATE ... 0
MKSTREAM``: a new group starts at the stream's first entry); read this
consumer's own pending entries first (left by an earlier run under the same
name), then new ones (``XREADGROUP ... >``); every ``claim_idle / 2``
seconds take over entries another consumer has held for more than
``claim_idle`` seconds without settling them (``XAUTOCLAIM``), and at once
the entries of consumers found dead (no command for ``dead_after`` seconds,
while a live forwarder's heartbeat touches the group every ``dead_after /
3``) or released by a forwarder that stopped. Each entry is decoded and
checked (``_entries``); one that cannot become a record is poison and goes
to the dead-letter stream at once. The rest are grouped with the package's
``Grouper`` (events by session and user) into calls of at most ten: a full
group goes at once, the others once ``flush_interval`` passed since the
oldest was read (as the recorder does), or when more than ``max_held``
records wait (the oldest groups go first).

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
backoff.

Housekeeping, every ``dead_after / 3`` seconds at most: the idle time of
entries waiting here is reset (``XCLAIM ... JUSTID``), so a live
forwarder's entries are not taken over; consumers dead or released with
nothing pending are removed from the group (``XGROUP DELCONSUMER``); every
``trim_interval`` seconds the stream is trimmed (``XTRIM MINID``) below the
oldest entry any consumer group of the stream still needs.

``stop()`` (what SIGTERM does in ``aiopersonalize-events forward``) stops
reading (a blocking ``XREADGROUP`` is cut short) and retrying; calls in
flight finish and are acknowledged; what was read and not sent is released
(handed to this consumer's released twin with a long idle time), so another
forwarder takes it over at once; all within ``close_timeout``, whatever
Redis does (a frozen Redis included). Delivery is at least once: an entry
sent by a forwarder that died before its ``XACK`` is sent again by the one
that claims it, and the service keeps one copy (events carry their
``eventId``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random as _random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, Protocol

import attrs

from .. import _limits as L
from .. import _operations as ops
from .. import _telemetry
from .._batching import DEFAULT_RATE, Grouper, Rate, _limiter
from .._clock import Clock, SleepClock
from .._delivery import Delivery
from .._retry import RetryPolicy, wait_floor
from .._validators import check_arn, check_positive_int, check_text
from ..errors import PersonalizeEventsError, ValidationError
from ._caller import RedisCaller, Stopped
from ._connect import Backoff, as_text, check_url, connect, describe
from ._entries import RECORD_FIELD, PoisonEntry, decode, line_members
from ._group import ConsumerGroup, Entry, Housekeeping
from ._keys import dead_letter_key

__all__ = ["Forwarder", "ForwarderStateError", "ForwarderStats", "OperationClient", "default_consumer"]

log: Final = logging.getLogger("aiopersonalize_events.redis")

_PROBE_WAIT: Final = 1.0
"""The least wait, in seconds, before held records go again as a probe (0 with ``set_testing(True)``)."""

_SETTLE_RESERVE: Final = 1.0
"""The part of ``close_timeout`` (at most a quarter of it) a stop keeps from the calls in flight, for the Redis
commands after them: acknowledging what was accepted, releasing the rest."""

_CANCEL_WAIT: Final = 0.5
"""How long a stop waits, at most, for a cancelled task (redis-py may swallow a cancellation mid-command)."""


class OperationClient(Protocol):
    """What a forwarder needs of its client: the client's retry policy, and the ``put_*`` method of its operation.

    A ``PersonalizeEventsClient`` is one; the method is looked up by the
    operation's name (``put_events``, ``put_items``, ...).
    """

    @property
    def retry_policy(self) -> RetryPolicy:
        """The client's retry policy (its budget is shared with the forwarder's re-sends)."""
        ...


@attrs.frozen
class ForwarderStats:
    """What a ``Forwarder`` did so far.

    ``read`` entries came from the stream (new, its own pending ones, or
    ``claimed`` from other consumers: idle past ``claim_idle``, dead, or
    released); ``sent`` records were accepted by the service and
    acknowledged; ``dead`` went to the dead-letter stream (poison entries
    and refused records); ``deleted`` entries left the stream by this
    forwarder's doing: trimmed once every group was done with them, or found
    pending but already deleted (trimmed by a producer's ``maxlen``) and
    acknowledged; ``held`` are read and not settled yet (after a stop:
    released for the others). ``calls`` counts the calls made, ``retried``
    those made again after a failure. ``lag`` (entries no consumer of the
    group has read yet) and ``pending`` (read by the group's consumers and
    not acknowledged) are the group's, as Redis last said (``XINFO GROUPS``,
    every few seconds and once more as the forwarder stops; None until
    known, or when that last reading failed).
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
        self._forwarder._acks.accept(batch)

    def refused(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._forwarder._acks.refuse(batch, error)

    def held(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._forwarder._retried += 1

    def unsent(self, batch: _Batch, error: PersonalizeEventsError | None) -> None:
        """Stopped with the entries unsent: they stay held, and are released as the forwarder stops."""


class _Acknowledger:
    """The acknowledging task: XACK what the service accepted (many calls' entries per round trip), and move what
    it refused to the dead-letter stream; ``settled(batch)`` hears of each batch done."""

    __slots__ = ("_closed", "_group", "_settled", "_wake", "accepted", "dead", "refused", "sent")

    def __init__(self, group: ConsumerGroup, settled: Callable[[_Batch], None]) -> None:
        self._group = group
        self._settled = settled
        self.accepted: list[_Batch] = []  # accepted by the service, waiting for XACK
        self.refused: list[tuple[_Batch, str]] = []  # refused by the service, waiting for the dead letters
        self._wake = asyncio.Event()
        self._closed = False
        self.sent = 0
        self.dead = 0

    def accept(self, batch: _Batch) -> None:
        self.accepted.append(batch)
        self._wake.set()

    def refuse(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self.refused.append((batch, f"{type(error).__name__}: {error}"))
        self._wake.set()

    def close(self) -> None:
        """``run()`` returns once nothing is left to settle."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            while self.refused:
                batch, reason = self.refused[0]
                entries = list(zip(batch.ids, batch.raws, strict=True))
                await self._group.dead_letter(entries, reason, until_stopped=False)
                del self.refused[0]
                self.dead += len(batch.ids)
                self._settled(batch)
            if not self.accepted:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batches = self.accepted[:]
            await self._group.acknowledge([entry_id for batch in batches for entry_id in batch.ids])
            del self.accepted[: len(batches)]
            for batch in batches:
                self.sent += len(batch.ids)
                self._settled(batch)


def default_consumer() -> str:
    """A consumer name unique to this process: ``HOST-PID``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _check_seconds(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValidationError(name, "must be a positive number of seconds")


def _check_numbers(
    *,
    max_concurrency: int,
    read_count: int,
    max_held: int,
    claim_idle: float,
    dead_after: float | None,
    close_timeout: float,
    clock: object,
    **seconds: float,
) -> float:
    """Check the forwarder's numbers (``ValidationError`` naming the first wrong one); ``dead_after`` as given or
    its default (``claim_idle / 3``)."""
    check_positive_int("max_concurrency", max_concurrency)
    check_positive_int("read_count", read_count)
    check_positive_int("max_held", max_held)
    _check_seconds(claim_idle=claim_idle, **seconds)
    if dead_after is None:
        dead_after = claim_idle / 3
    _check_seconds(dead_after=dead_after)
    if isinstance(close_timeout, bool) or not isinstance(close_timeout, (int, float)) or close_timeout < 0:
        raise ValidationError("close_timeout", "must be a number of seconds of at least 0")
    if clock is not None and not isinstance(clock, Clock):
        raise ValidationError("clock", "must have time() and call_at(when, callback, *args), as an event loop has")
    return float(dead_after)


def _check_names(url: str, stream: str, group: str, consumer: str | None) -> None:
    check_url(url)
    if not url.startswith(("redis://", "rediss://", "unix://")):  # the URL itself may hold a password: not shown
        raise ValidationError("url", "must be a redis://, rediss:// or unix:// URL")
    check_text("stream", stream, 512)
    check_text("group", group, 512)
    if consumer is not None:
        check_text("consumer", consumer, 512)


def _target(operation: str, tracking_id: str | None, dataset_arn: str | None) -> tuple[ops.Operation, str]:
    op = ops.BY_NAME.get(operation)
    if op is None:
        raise ValidationError("operation", f"must be one of {', '.join(ops.BY_NAME)}")
    if op.resource_field == "tracking_id":
        check_text("tracking_id", tracking_id, L.ID_MAX)
        assert tracking_id is not None
        return op, tracking_id
    check_arn("dataset_arn", dataset_arn)
    assert dataset_arn is not None
    return op, dataset_arn


class Forwarder:
    """Drains the Redis stream ``stream`` as consumer ``consumer`` of group ``group`` into the service.

    ``client`` is an opened (or openable) ``PersonalizeEventsClient`` (any
    ``OperationClient``); ``url`` the Redis URL. ``operation`` is the call
    the stream's records go to (``"PutEvents"`` by default; each of the five
    works), with its tracker (``tracking_id``) or dataset (``dataset_arn``).
    ``consumer`` defaults to ``HOST-PID``; give a stable name to have a
    restarted forwarder take its own pending entries back at once.
    ``requests_per_second`` paces the calls (a number, None, ``DEFAULT_RATE``
    for the service quota, or a shared limiter), at most ``max_concurrency``
    at once. ``flush_interval`` and ``max_held`` bound how long and how many
    records wait to fill calls of ten (``read_count`` entries are read at a
    time, blocking ``block`` seconds when there are none). ``claim_idle``
    (seconds) is how long an entry may sit with another consumer before this
    one takes it over; ``dead_after`` (default ``claim_idle / 3``) how long a
    consumer may send no command before it counts as dead (its entries taken
    over at once, the consumer removed once it holds none).
    ``dead_letters`` is the dead-letter stream (default
    ``dead_letter_key(stream)``, in the stream's cluster slot); ``trim``
    turns trimming off; ``close_timeout`` bounds a stop, counted from
    ``stop()``: the calls in flight (cancelled, and their entries released,
    when they still run with a quarter of it, or a second, left), their
    acknowledgement, and the release of the rest. ``clock`` (a
    ``Clock``: an event loop or a ``ManualClock``) measures every wait: the
    flush interval, the waits before a call is sent again, the waits while
    Redis is away and the housekeeping rounds. ``sleep`` (kept for
    compatibility; prefer ``clock``) makes the Redis-side waits instead, and
    ``random`` draws their jitter. See the module documentation for the life
    of an entry.
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
        dead_after: float | None = None,
        dead_letters: str | None = None,
        trim: bool = True,
        trim_interval: float = 5.0,
        close_timeout: float = 30.0,
        socket_timeout: float = 5.0,
        backoff_max: float = 5.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._op, resource = _target(operation, tracking_id, dataset_arn)
        _check_names(url, stream, group, consumer)
        dead_after = _check_numbers(
            max_concurrency=max_concurrency,
            read_count=read_count,
            max_held=max_held,
            block=block,
            flush_interval=flush_interval,
            claim_idle=claim_idle,
            dead_after=dead_after,
            trim_interval=trim_interval,
            socket_timeout=socket_timeout,
            close_timeout=close_timeout,
            clock=clock,
        )
        self._url = url
        self.consumer = consumer if consumer is not None else default_consumer()
        self._read_count = read_count
        self._max_held = max(max_held, read_count + L.RECORDS_PER_CALL * max_concurrency)
        self._block = float(block)
        self._flush_interval = float(flush_interval)
        self._claim_interval = float(claim_idle) / 2
        self._close_timeout = float(close_timeout)
        self._socket_timeout = float(socket_timeout)
        self._clock = clock
        redis_clock = SleepClock(sleep, clock) if sleep is not None else clock  # sleep=: the older way, one clock
        self._caller = RedisCaller(f"forwarder {self.consumer}", backoff=Backoff(cap=backoff_max, random=random),
                                   backoff_max=backoff_max, clock=redis_clock, recreate=self._create_group,
                                   url=url)  # fmt: skip
        self._join(stream, group, dead_letters, claim_idle=float(claim_idle), dead_after=dead_after, trim=trim,
                   trim_interval=float(trim_interval))  # fmt: skip
        self._put: Callable[..., Awaitable[Any]] = getattr(client, self._op.snake_name)
        self._members = line_members(self._op)
        self._kwargs: dict[str, Any] = {self._op.resource_field: resource}
        self._delivery: Delivery[_Batch] = Delivery(self._call, _Outcomes(self), policy=client.retry_policy,
                                                    max_concurrency=max_concurrency, clock=clock,
                                                    limiter=_limiter(self._op, requests_per_second),
                                                    min_wait=wait_floor(_PROBE_WAIT), split=_Batch.split,
                                                    name=f"forwarder {self.consumer}", logger=log)  # fmt: skip
        self._grouper: Grouper[tuple[Any, ...], tuple[bytes, bytes, Any]] = Grouper(
            self._op.records_per_call, max_records=self._max_held
        )
        self._grouped_since: float | None = None
        self._ready: deque[_Batch] = deque()
        self._held_ids: set[bytes] = set()  # read and not settled: stats.held is its length
        self._state = "new"  # new -> running -> closed
        self._stopped_at: float | None = None  # time.monotonic() of the first stop(): the close deadline counts from it
        self._room: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self._read = self._claimed = self._dead = self._deleted = self._calls = self._retried = 0
        _telemetry.watch_forwarder(self)

    def _join(self, stream: str, group: str, dead_letters: str | None, *, claim_idle: float, dead_after: float,
              trim: bool, trim_interval: float) -> None:  # fmt: skip
        """Set up the group side: the group's commands, the housekeeping rounds beside it, the acknowledgements."""
        dead_letters = dead_letters if dead_letters is not None else dead_letter_key(stream)
        self._group = ConsumerGroup(self._caller, stream=stream, group=group, consumer=self.consumer,
                                    dead_letters=dead_letters, claim_idle=claim_idle, dead_after=dead_after,
                                    read_count=self._read_count)  # fmt: skip
        self._housekeeping = Housekeeping(self._group, self._caller, beat=dead_after / 3, trim=trim,
                                          trim_interval=trim_interval, held=lambda: self._held_ids,
                                          wake=self._wake)  # fmt: skip
        self._acks = _Acknowledger(self._group, self._settled)

    @property
    def stream(self) -> str:
        """The stream this forwarder drains."""
        return self._group.stream

    @property
    def group(self) -> str:
        """The consumer group it is a member of."""
        return self._group.group

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream."""
        return self._group.dead_letters

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
            self._acks.sent,
            self._dead + self._acks.dead,  # poison entries, and refused records
            self._deleted + self._housekeeping.trimmed,  # found deleted, and trimmed
            self._held,
            self._calls,
            self._retried,
            self._housekeeping.lag,
            self._housekeeping.pending,
        )

    @property
    def running(self) -> bool:
        """True from ``run()`` until it returns."""
        return self._state == "running"

    @property
    def _held(self) -> int:
        """Entries read and not settled yet: derived from the ids held, never counted beside them."""
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
        """Stop reading and retrying; ``run()`` returns within ``close_timeout`` from now (signal-safe)."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._caller.stop()
        self._delivery.halt()  # no new call from now on; what waits is released as run() ends
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
        self._group.connected(connect(self._url, socket_timeout=self._block + self._socket_timeout))
        log.info("forwarder %s: stream %s, group %s, to %s", self.consumer, self.stream, self.group, self._op.name)
        housekeeping = loop.create_task(self._housekeeping.run(), name="aiopersonalize_events-forwarder-housekeeping")
        acker = loop.create_task(self._acks.run(), name="aiopersonalize_events-forwarder-acks")
        try:
            await self._caller.call(self._create_group)
            await self._read_loop()
        except Stopped:
            pass
        finally:
            await self._finish(housekeeping, acker)

    async def _finish(self, housekeeping: asyncio.Task[None], acker: asyncio.Task[None]) -> None:
        """The stop, within ``close_timeout`` whatever Redis does: settle, acknowledge, release, forget, close."""
        self.stop()
        assert self._stopped_at is not None
        deadline = self._stopped_at + self._close_timeout  # from the stop (SIGTERM), not from here

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        def step() -> float:  # one closing round trip: Redis answers within its socket timeout, or not at all
            return min(left(), self._block + self._socket_timeout)

        try:
            await _end(housekeeping, 0.0)  # nothing of it is needed to stop; it ends with the stop event anyway
            reserve = min(_SETTLE_RESERVE, self._close_timeout / 4)  # kept for acknowledging and releasing
            await self._delivery.stop(grace=max(0.0, left() - reserve))  # what waits is unsent now: released below
            self._acks.close()  # acknowledge what the service accepted
            await asyncio.wait([acker], timeout=step())
            answered = acker.done()
            await _end(acker, min(_CANCEL_WAIT, left()))
            if self._acks.accepted:
                log.warning(
                    "forwarder %s: %d accepted record(s) not acknowledged as the forwarder stopped (Redis did not "
                    "answer in time); they are sent again by whoever takes them (the service keeps one copy)",
                    self.consumer,
                    sum(len(b.ids) for b in self._acks.accepted),
                )
            await self._release(step, redis_answers=answered)
            log.info("forwarder %s stopped: %s", self.consumer, self.stats)
        finally:
            await self._disconnect(step())
            self._state = "closed"
            _telemetry.forget_forwarder(self)
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    async def _release(self, step: Callable[[], float], *, redis_answers: bool) -> None:
        """Hand what was read and not settled to the others at once; forget this consumer; read the group's counts.

        Each step needs Redis's answer to the one before: once Redis did not
        answer (``step()`` seconds at most each), the rest is skipped (it
        would not answer either), and the group's pending count is unknown.
        """
        held = list(self._held_ids)
        answered = redis_answers
        if held:
            answered = answered and bool(await _within(self._group.release(held), step()))
            if answered:
                log.info(
                    "forwarder %s: %d entr(ies) read and not sent released, for another forwarder to take at once",
                    self.consumer,
                    len(held),
                )
            else:
                log.warning(
                    "forwarder %s: %d entr(ies) read and not sent could not be released (Redis did not answer in "
                    "time); they stay pending, taken over after dead_after or claim_idle",
                    self.consumer,
                    len(held),
                )
        if answered:  # holding nothing now: leave no consumer behind
            answered = bool(await _within(self._group.forget(), step()))
        reading = await _within(self._group.info(), step(), result=True) if answered else None
        if isinstance(reading, tuple):  # the group's counts as the forwarder leaves
            self._housekeeping.lag, self._housekeeping.pending = reading
        else:  # Redis did not answer in time: what it last said is not true any more
            self._housekeeping.pending = None

    async def _disconnect(self, timeout: float) -> None:
        connection, self._group.connection = self._group.connection, None
        if connection is None:
            return
        if not await _within(connection.aclose(), max(timeout, 0.05)):
            log.debug("forwarder %s: the connection did not close in time; dropped", self.consumer)

    async def _create_group(self) -> None:
        await self._group.create()

    # -- reading ---------------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._room is not None
        cursor: bytes | str = b"0"  # this consumer's own pending entries first, then new ones (">")
        next_claim = self._now()
        while not self._stopping:
            if self._held >= self._max_held:  # send what is held before reading more
                await self._wait_for_room()
                continue
            now = self._now()
            entries: list[Entry] = []
            due = now >= next_claim
            if due or self._housekeeping.takeover:
                if due:
                    next_claim = now + self._claim_interval
                entries.extend(await self._claim(self._max_held - self._held, xautoclaim=due))
            room = self._max_held - self._held - len(entries)
            if room > 0:
                block: float | None = None
                if not entries and cursor == ">":
                    block = self._block
                    if self._grouped_since is not None:
                        block = max(0.001, min(block, self._grouped_since + self._flush_interval - now))
                    block = min(block, max(0.001, next_claim - now))
                got = await self._group.read(cursor, min(self._read_count, room), block)
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
            self._dispatch()

    async def _wait_for_room(self) -> None:
        assert self._room is not None
        if self._grouped_since is not None:
            self._cut()
        if self._ready:
            self._dispatch()
            return
        self._room.clear()
        await self._room.wait()

    async def _claim(self, room: int, *, xautoclaim: bool) -> list[Entry]:
        """Take over entries idle past ``claim_idle`` (when due), and those of dead or released consumers."""
        claimed: list[Entry] = []
        if xautoclaim:
            claimed, gone = await self._group.claim(room, self._held_ids)
            if gone:
                self._deleted += gone
                log.warning(
                    "forwarder %s: %d pending entr(ies) were no longer in the stream (trimmed by maxlen?)",
                    self.consumer,
                    gone,
                )
            if claimed:
                idle = self._claim_interval * 2
                log.info("forwarder %s: took over %d entr(ies) idle for %gs", self.consumer, len(claimed), idle)
        takeover = self._housekeeping.takeover
        if takeover and room > len(claimed):
            names = sorted(takeover)
            takeover.clear()
            taken = await self._group.take_over(names, room - len(claimed), self._held_ids)
            if taken:
                who = ", ".join(names)
                log.info("forwarder %s: took over %d entr(ies) of dead or released %s", self.consumer, len(taken), who)
            claimed.extend(taken)
        self._claimed += len(claimed)
        return claimed

    async def _take_in(self, entries: list[Entry]) -> None:
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
            await self._group.acknowledge(gone, until_stopped=True)
        for entry_id, raw, reason in poison:
            log.warning(
                "forwarder %s: entry %s is poison (%s); to %s",
                self.consumer,
                as_text(entry_id),
                reason,
                self.dead_letters,
            )
            await self._group.dead_letter([(entry_id, raw)], reason, until_stopped=True)
            self._dead += 1

    def _cut(self) -> None:
        now = self._now()
        for members, group in self._grouper.cut():
            self._ready.append(_Batch(members, group, now))
        self._grouped_since = None

    def _dispatch(self) -> None:
        """Hand the ready calls to the engine (it bounds them by ``max_concurrency``)."""
        while self._ready and not self._stopping:
            self._delivery.submit(self._ready.popleft())

    # -- sending and settling --------------------------------------------------------------------------------

    def _settled(self, batch: _Batch) -> None:
        self._held_ids.difference_update(batch.ids)
        self._wake()

    def _wake(self) -> None:
        """Wake the read loop if it waits for room (a batch settled, or entries to take over)."""
        if self._room is not None:
            self._room.set()

    async def _call(self, batch: _Batch) -> None:
        """The engine's send: one call with the batch's records and request members."""
        self._calls += 1
        kwargs = dict(self._kwargs)
        kwargs.update(zip(self._members, batch.members, strict=True))
        await self._put(**kwargs, **{self._op.record_field: batch.records})


async def _end(task: asyncio.Task[None], wait: float = _CANCEL_WAIT) -> None:
    """Cancel ``task`` if it still runs, and wait ``wait`` seconds at most for it (redis-py may swallow that)."""
    if task.done():
        return
    task.cancel()
    await asyncio.wait([task], timeout=max(wait, 0.01))
    if not task.done():
        log.debug("forwarder: task %s did not end when cancelled; left to end by itself", task.get_name())


async def _within(call: Coroutine[Any, Any, Any], timeout: float, *, result: bool = False) -> Any:
    """Run ``call`` for ``timeout`` seconds at most: True (or its result) when it answered, None when not."""
    task = asyncio.ensure_future(call)
    if timeout > 0:
        await asyncio.wait([task], timeout=timeout)
    if not task.done():
        await _end(task, 0.01)
        return None
    if task.cancelled() or task.exception() is not None:
        if not task.cancelled():
            log.debug("forwarder: a closing command failed: %s", describe(task.exception()))  # type: ignore[arg-type]
        return None
    return task.result() if result else True
