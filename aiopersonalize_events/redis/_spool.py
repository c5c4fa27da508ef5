"""``RedisStreamSpool``: the recorder's events go to a Redis stream, and forwarders send them from there.

The recorder hands each event to ``append()`` (synchronous: a deque append);
one background task writes what is queued to the stream with ``XADD``, up to
``batch_size`` entries per pipelined round trip, and tells the recorder
(``spool_handed_off``) once Redis has them: from then on they are the
forwarders' to send, and the recorder counts them as sent. ``sync()`` (what
``await recorder.put()`` waits on) returns once Redis has every event
appended before it.

While Redis does not answer (refused, dropped, timed out, loading, out of
memory, read-only or without its master during a failover, a cluster
resharding: sorted by redis-py's exception classes, ``_connect.fault``) the
events wait in memory, bounded by ``max_events`` (the recorder applies its
overflow policy, and counts what it drops), and the task tries again with
capped exponential backoff, after one WARNING. While Redis refuses the
password, the user or a permission (the operator's to fix), the events wait
the same way, after one ERROR line saying what to fix; they go once it is
fixed. Drop-oldest only ever drops events of ``record()``: the event of an
``await recorder.put()`` is never dropped, so a ``put()`` that returned is
in Redis. A batch
whose round trip failed midway is written again whole: an event may be in the
stream twice, never lost, and the service keeps one (events carry their
``eventId`` from ``record()``). An event Redis refuses for good (the key
holds another type) is reported to the recorder as lost (counted as failed,
passed to ``on_failure``); so is what is still in memory when the event
loop ends without ``close()``. What Redis has not taken when ``close()``
reaches its deadline (``close(timeout=)``, at most ``close_timeout``) is
*unsent*, not failed: the round trip on its way is cut off, the events stay
counted as pending (neither sent nor failed), one ERROR line gives their
number, and ``unsent()`` gives them back, to record again elsewhere (an
event of a cut round trip may still reach the stream; its ``eventId`` makes
the service keep one).

Nothing here survives the process: what Redis does not have yet is gone
with it. ``await recorder.put(...)`` returns only once Redis has the event.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import attrs
import redis.asyncio

from .._lines import event_line
from .._shapes import Event
from .._spool import HandOffListener, SpoolBatch, SpoolError, SpoolListener, SpoolStateError
from .._validators import check_positive_int, check_text
from ..errors import ValidationError
from ._connect import Backoff, check_url, connect, describe, say_waiting, transient
from ._entries import RECORD_FIELD

__all__ = ["RedisSpoolStats", "RedisStreamSpool"]

log: Final = logging.getLogger("aiopersonalize_events.redis")

_Item = tuple[int, Event, str, "str | None"]  # (sequence number, event, session id, user id)


@attrs.frozen
class RedisSpoolStats:
    """What a ``RedisStreamSpool`` did: events ``written`` to the stream, ``lost`` (not written, reported
    to the recorder as failed), ``queued`` now in memory, ``outages`` (times Redis stopped answering),
    ``retries`` (round trips tried again) and ``unsent`` (not written by ``close()``'s deadline: still
    pending for the recorder, given back by ``unsent()``)."""

    written: int
    lost: int
    queued: int
    outages: int
    retries: int
    unsent: int = 0


class _Waiter:
    __slots__ = ("error", "future", "target")

    def __init__(self, target: int, future: asyncio.Future[None]) -> None:
        self.target = target
        self.future = future
        self.error: SpoolError | None = None


class RedisStreamSpool:
    """A spool that appends the recorder's events to the Redis stream ``stream``, for forwarders to send.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL;
    ``maxlen`` caps the stream (``XADD MAXLEN ~``: Redis then drops the
    oldest entries, forwarded or not; None keeps everything until the
    forwarders trim what the service accepted). ``max_events`` bounds the
    events waiting in memory for Redis; ``batch_size`` the entries per round
    trip; ``socket_timeout`` how long a round trip may take before it counts
    as failed; ``close_timeout`` how long ``close()`` keeps trying to write
    what is left at most (``close(timeout=)`` may give it less: a recorder
    gives what is left of its own deadline); what Redis has not taken then
    is unsent (see ``unsent()``); ``backoff_max`` the longest wait between
    tries. ``sleep`` and ``random`` are injectable for tests.

    Use it with ``client.event_recorder(tracking_id=..., spool=RedisStreamSpool(url, stream=...))``;
    one stream per tracking id (the forwarder sends a stream to one tracker).
    """

    durable = True
    hands_off = True
    nbytes = 0

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        maxlen: int | None = None,
        max_events: int = 10_000,
        batch_size: int = 256,
        socket_timeout: float = 5.0,
        close_timeout: float = 4.0,
        backoff_max: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        check_url(url)
        check_text("stream", stream, 512)
        if maxlen is not None:
            check_positive_int("maxlen", maxlen)
        check_positive_int("max_events", max_events)
        check_positive_int("batch_size", batch_size)
        for name, value in (("socket_timeout", socket_timeout), ("close_timeout", close_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValidationError(name, "must be a positive number of seconds")
        self._url = url
        self._stream = stream
        self._maxlen = maxlen
        self._max_events = max_events
        self._batch_size = batch_size
        self._socket_timeout = float(socket_timeout)
        self._close_timeout = float(close_timeout)
        self._sleep = sleep
        self._backoff = Backoff(cap=backoff_max, random=random)
        self._queue: deque[_Item] = deque()
        self._sending: list[_Item] = []
        self._seq = 0
        self._waiters: list[_Waiter] = []
        self._wake = asyncio.Event()
        self._listener: HandOffListener | None = None
        self._redis: redis.asyncio.Redis | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._give_up = False
        self._written = self._lost = self._outages = self._retries = 0
        self._unsent: list[_Item] = []  # not written by close()'s deadline: given back by unsent()
        self._hung_up: asyncio.Task[None] | None = None  # a disconnect still running past the deadline
        self._down_since: float | None = None

    def __repr__(self) -> str:
        return (
            f"RedisStreamSpool(stream={self._stream!r}, state={self._state}, queued={len(self)}, "
            f"written={self._written}, lost={self._lost})"
        )

    def __len__(self) -> int:
        return len(self._queue) + len(self._sending)

    @property
    def stream(self) -> str:
        """The stream's key."""
        return self._stream

    @property
    def stats(self) -> RedisSpoolStats:
        """A snapshot of the counters."""
        return RedisSpoolStats(
            self._written, self._lost, len(self), self._outages, self._retries, unsent=len(self._unsent)
        )

    def unsent(self) -> list[tuple[Event, str, str | None]]:
        """The events ``close()`` could not write by its deadline, oldest first, as ``(event, session_id,
        user_id)``: the recorder counts them as pending (never failed); record them again elsewhere to keep
        them (each keeps its ``eventId``). Empty until then."""
        return [(event, session_id, user_id) for _, event, session_id, user_id in self._unsent]

    # -- the Spool protocol ---------------------------------------------------------------------

    async def open(self, listener: SpoolListener, *, tracking_id: str) -> None:
        """Connect lazily (an unreachable Redis is waited for, not an error) and start writing."""
        del tracking_id  # one stream per tracker: the forwarder names the tracker
        if self._state != "new":
            raise SpoolStateError(f"this RedisStreamSpool is {self._state}; make one spool per recorder")
        error: SpoolError | None = None
        if not isinstance(listener, HandOffListener):
            error = SpoolError("RedisStreamSpool needs a recorder that counts events handed off (spool_handed_off)")
        else:
            try:
                self._redis = connect(self._url, socket_timeout=self._socket_timeout)
            except ValidationError as exc:
                error = SpoolError(f"RedisStreamSpool: {exc.message}")
        if error is not None:  # what was appended before open() is reported lost, as the contract says
            self._state = "closed"
            items = self._take_all()
            if items:
                self._lost += len(items)
                self._resolve()
                listener.spool_lost([item[1] for item in items], error)
            raise error
        assert isinstance(listener, HandOffListener)
        self._listener = listener
        self._state = "open"
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="aiopersonalize_events-redis")
        self._writer.add_done_callback(self._writer_done)

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Queue one event for the writer (a deque append; wakes the writer when it was idle)."""
        self._seq += 1
        self._queue.append((self._seq, event, session_id, user_id))
        if len(self._queue) == 1:
            self._wake.set()

    def full(self) -> bool:
        """True when ``max_events`` events wait in memory for Redis."""
        return len(self._queue) + len(self._sending) >= self._max_events

    def pop_oldest(self) -> Event | None:
        """Take back the oldest event not yet on its way to Redis (the recorder's drop-oldest policy).

        Never one a ``sync()`` waits for as its last (the event of an
        ``await recorder.put()``): ``put()`` returns only once Redis has its
        event, or raises, so drop-oldest applies to ``record()``'s events
        only. None when every event in memory is awaited so.
        """
        queue = self._queue
        if not queue:
            return None
        if self._waiters:
            awaited = {waiter.target for waiter in self._waiters}
            for index, item in enumerate(queue):
                if item[0] not in awaited:
                    del queue[index]
                    break
            else:
                return None
        else:
            item = queue.popleft()
        self._resolve()
        return item[1]

    def take(self, *, flush: bool) -> list[SpoolBatch]:
        """Nothing: the forwarders send this spool's events, not the recorder."""
        del flush
        return []

    def ack(self, batch: SpoolBatch) -> None:
        """Never called: ``take()`` offers no batch."""
        del batch

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """Never called: ``take()`` offers no batch."""
        del batch, reason

    def release(self, batch: SpoolBatch) -> None:
        """Never called: ``take()`` offers no batch."""
        del batch

    async def sync(self) -> None:
        """Return once Redis has every event appended before this call; ``SpoolError`` if one was lost."""
        if not self._queue and not self._sending:
            return
        waiter = _Waiter(self._seq, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        await asyncio.shield(waiter.future)
        if waiter.error is not None:
            raise waiter.error

    async def close(self, *, timeout: float | None = None) -> None:
        """Write what is queued, within ``timeout`` seconds (at most ``close_timeout``; ``close_timeout`` when
        None), then disconnect; idempotent. Returns by the deadline whatever Redis does (frozen, away): a round
        trip still on its way is cut off, and what Redis has not taken is unsent (see ``unsent()``)."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
        ):
            raise ValidationError("timeout", "must be a number of seconds of at least 0")
        if self._state == "closed":
            return
        limit = self._close_timeout if timeout is None else min(float(timeout), self._close_timeout)
        if self._closer is None:
            loop = asyncio.get_running_loop()
            self._closer = loop.create_task(self._close(loop.time() + limit))
        await asyncio.shield(self._closer)

    # -- the writer ---------------------------------------------------------------------------------

    async def _close(self, deadline: float) -> None:
        """Let the writer write until the deadline, cut it off then, and keep what Redis has not taken as unsent.

        The writer gets the time up to a short reserve before the deadline;
        then it is cancelled (``_give_up`` ends it at its next step should
        redis-py swallow the cancel), and the connection is closed, each
        within what is left.
        """
        loop = asyncio.get_running_loop()
        self._state = "closing"
        self._wake.set()
        writer = self._writer
        reserve = min(0.2, 0.2 * max(0.0, deadline - loop.time()))  # for the cut-off and the disconnect
        try:
            if writer is not None and not writer.done():
                await asyncio.wait([writer], timeout=max(0.0, deadline - reserve - loop.time()))
                if not writer.done():
                    self._give_up = True
                    writer.cancel()
                    await asyncio.wait([writer], timeout=max(0.0, deadline - reserve / 2 - loop.time()))
        finally:
            self._keep_unsent()
            self._state = "closed"
            connection, self._redis = self._redis, None
            if connection is not None:
                await self._hang_up(connection, max(0.0, deadline - loop.time()))
            self._listener = None

    def _keep_unsent(self) -> None:
        """Close's deadline: what is still in memory is unsent (pending for the recorder, never failed)."""
        items = self._take_all()
        if not items:
            return
        self._unsent.extend(items)
        error = SpoolError(
            f"{len(items)} event(s) not written to the Redis stream by close()'s deadline: unsent (not failed)"
        )
        for waiter in self._waiters:
            if waiter.error is None:
                waiter.error = error
        self._resolve()
        log.error(
            "redis spool %s: %d event(s) not written to the Redis stream by close()'s deadline: unsent, not "
            "failed (the recorder counts them pending; RedisStreamSpool.unsent() gives them back, this process "
            "does not keep them)",
            self._stream,
            len(items),
        )

    async def _hang_up(self, connection: redis.asyncio.Redis, limit: float) -> None:
        """Close the connection within ``limit`` seconds; one that takes longer goes on closing in the background."""
        closing = asyncio.ensure_future(connection.aclose())
        await asyncio.wait([closing], timeout=limit)
        if not closing.done():
            self._hung_up = closing  # kept: a task must not be collected while it runs
            closing.add_done_callback(self._hung_up_done)
            return
        self._hung_up_done(closing)

    def _hung_up_done(self, closing: asyncio.Future[None]) -> None:
        if self._hung_up is closing:
            self._hung_up = None
        exc = None if closing.cancelled() else closing.exception()
        if exc is not None:  # closing a broken connection: nothing is lost
            log.debug("redis spool %s: closing the connection failed: %s", self._stream, describe(exc))

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self._state == "open" and len(self):  # the event loop ended without close()
                self._lose(self._take_all(), "the event loop ended before the spool was closed")
            return
        exc = task.exception()
        if exc is not None:  # cannot happen by design; never leave events unaccounted for
            log.error("redis spool %s: the writer task died: %r", self._stream, exc)
            self._lose(self._take_all(), f"the spool's writer failed ({type(exc).__name__})")

    def _take_all(self) -> list[_Item]:
        items = [*self._sending, *self._queue]
        self._sending = []
        self._queue.clear()
        return items

    async def _write_loop(self) -> None:
        queue = self._queue
        while not self._give_up:
            if not queue:
                if self._state != "open":
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._sending = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
            try:
                results = await self._xadd(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._give_up:  # close() has accounted for every event held
                    return
                self._sending = []
                if transient(exc):
                    queue.extendleft(reversed(batch))  # still the oldest: written first when Redis is back
                    await self._wait(exc)
                else:
                    self._lose(batch, f"Redis refused them: {describe(exc)}")
                continue
            if self._give_up:
                return
            self._sending = []
            written: list[_Item] = []
            again: list[_Item] = []
            refused: list[_Item] = []
            passing: BaseException | None = None
            refusal: BaseException | None = None
            for item, result in zip(batch, results, strict=True):
                if not isinstance(result, BaseException):
                    written.append(item)
                elif transient(result):
                    again.append(item)
                    passing = result
                else:
                    refused.append(item)
                    refusal = result
            if written:
                self._handed_off(written)
            if refusal is not None:
                self._lose(refused, f"Redis refused them: {describe(refusal)}")
            if passing is not None:
                queue.extendleft(reversed(again))
                await self._wait(passing)
            elif self._backoff.failing:
                self._recovered()

    async def _xadd(self, batch: Sequence[_Item]) -> list[Any]:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        stream, maxlen = self._stream, self._maxlen
        for _, event, session_id, user_id in batch:
            pipe.xadd(stream, {RECORD_FIELD: event_line(event, session_id, user_id)}, maxlen=maxlen)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _wait(self, exc: BaseException) -> None:
        self._retries += 1
        if not self._backoff.failing:
            self._outages += 1
            self._down_since = asyncio.get_running_loop().time()
        if self._backoff.new_condition(exc):
            held = f"{len(self)} event(s) wait in memory (at most {self._max_events})"
            say_waiting(log, f"redis spool {self._stream}", exc, self._url, held)
        await self._sleep(self._backoff.next())

    def _recovered(self) -> None:
        self._backoff.reset()
        since, self._down_since = self._down_since, None
        if since is not None:
            elapsed = asyncio.get_running_loop().time() - since
            log.warning("redis spool %s: Redis answers again after %.1fs", self._stream, elapsed)

    def _handed_off(self, items: list[_Item]) -> None:
        self._written += len(items)
        self._resolve()
        listener = self._listener
        if listener is not None:
            listener.spool_handed_off(len(items))

    def _lose(self, items: list[_Item], why: str) -> None:
        """Account for events taken out of memory that Redis does not have: the recorder counts them as failed."""
        if not items:
            return
        error = SpoolError(f"{len(items)} event(s) not written to the Redis stream: {why}")
        self._lost += len(items)
        first = min(item[0] for item in items)
        for waiter in self._waiters:
            if waiter.target >= first and waiter.error is None:
                waiter.error = error
        log.error("redis spool %s: %s", self._stream, error)
        self._resolve()
        listener = self._listener
        if listener is not None:
            listener.spool_lost([item[1] for item in items], error)

    def _resolve(self) -> None:
        """Settle every ``sync()`` whose events have all left memory (written, lost or dropped)."""
        if not self._waiters:
            return
        if self._sending:
            done = self._sending[0][0] - 1
        elif self._queue:
            done = self._queue[0][0] - 1
        else:
            done = self._seq
        keep: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.target <= done:
                if not waiter.future.done():
                    waiter.future.set_result(None)
            else:
                keep.append(waiter)
        self._waiters = keep
