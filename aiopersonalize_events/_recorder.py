"""EventRecorder: buffer events in memory and send them to PutEvents in the background.

``record()`` is synchronous and cheap: it checks the event's session and user
(the event itself was checked when it was made), hands it to the package's
one ``Grouper`` under its (session, user), and returns. One background task
(started on first use, inside the running loop) turns full groups of ten, and
every group when ``flush_interval`` passes, into batches, and sends each with
the client's public ``put_events``, at most ``max_concurrency`` at once.

Retries have one engine, the client's ``RetryPolicy``: within a call the
client retries as usual; a batch whose call still failed with a retryable
error goes back into the queue with a ``RetryToken`` from the same policy
(its wait honours ``Retry-After``; its cost comes out of the client-wide
retry budget) and is sent again when its wait is over, while the recorder is
open. When the budget cannot pay for a retry, the batch stays queued (still
counted in ``pending`` and against ``max_queue_size``), and the waiting
batches go out one at a time as probes (a probe costs no token, like a first
attempt): an outage never turns into a retry storm, each success refills the
budget by a token, and once it can pay for retries again the rest go out as
usual. What finally fails goes to ``on_failure``.

The counters satisfy ``recorded == sent + failed + dropped + pending`` at
every moment. The recorder belongs to the event loop it started in;
``record()`` may be called from other threads (it hands the event over to
that loop thread-safely).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import os
import threading
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, Protocol

import attrs

from . import _limits as L
from ._batching import Grouper
from ._retry import RetryPolicy, RetryToken
from ._shapes import Event
from ._validators import check_positive_int, check_text
from .errors import PersonalizeEventsError, ValidationError

__all__ = ["EventRecorder", "RecorderClosedError", "RecorderStateError", "RecorderStats"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

Overflow = Literal["drop_newest", "drop_oldest", "block"]
FailureCallback = Callable[[list[Event], PersonalizeEventsError], "Awaitable[None] | None"]
DropCallback = Callable[[Event, str], "Awaitable[None] | None"]
_OVERFLOWS: Final = ("drop_newest", "drop_oldest", "block")
_Key = tuple[str, "str | None"]
_ID_MAX: Final = L.ID_MAX


class EventSender(Protocol):
    """What the recorder needs of a client: the public ``put_events`` and the shared retry policy."""

    retry_policy: RetryPolicy

    async def put_events(
        self, *, tracking_id: str, session_id: str, event_list: Sequence[Event], user_id: str | None = None
    ) -> object:
        """Send 1 to 10 events of one session in one call."""


@attrs.frozen
class RecorderStats:
    """A consistent snapshot of an ``EventRecorder``'s counters.

    ``recorded`` events were accepted by ``record()``/``put()``; each is then
    ``sent`` (accepted by the service), ``failed`` (handed to ``on_failure``),
    ``dropped`` (refused for lack of room, or after close; handed to
    ``on_drop``) or still ``pending`` (queued, waiting to be retried, or in
    flight). ``retried`` counts calls the recorder resent after a failure.
    """

    recorded: int
    sent: int
    failed: int
    dropped: int
    pending: int
    retried: int


class RecorderClosedError(PersonalizeEventsError):
    """The error ``on_failure`` receives for events still unsent when ``close()``'s deadline passed."""


class RecorderStateError(PersonalizeEventsError, RuntimeError):
    """The recorder was used where it cannot work: from another event loop than the one it started in.

    A recorder (like its client) belongs to one event loop. ``record()`` from
    a thread other than the loop's is fine once the recorder has started.
    """


class _Batch:
    """Up to ten events of one (session, user), their retry token, and a future settled with them."""

    __slots__ = ("done", "error", "events", "session_id", "token", "user_id", "waiting_for_budget")

    def __init__(self, session_id: str, user_id: str | None, events: list[Event], done: asyncio.Future[None]) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.events = events
        self.done = done
        self.token = RetryToken()
        self.error: PersonalizeEventsError | None = None
        self.waiting_for_budget = False


def _make_copier() -> Callable[[Event, str], Event]:
    """A function copying an Event with a new ``event_id``, member by member, without validating it again.

    Generated once from the attrs fields (one statement per member, no loop),
    since the recorder copies every event that arrives without an id.
    """
    lines = ["def copy_with_id(event, event_id):", "    new = new_event(Event)"]
    for field in attrs.fields(Event):
        value = "event_id" if field.name == "event_id" else f"event.{field.name}"
        lines.append(f"    set_member(new, {field.name!r}, {value})")
    lines.append("    return new")
    namespace: dict[str, Any] = {"Event": Event, "new_event": object.__new__, "set_member": object.__setattr__}
    exec("\n".join(lines), namespace)
    copier: Callable[[Event, str], Event] = namespace["copy_with_id"]
    return copier


_copy_with_id: Final = _make_copier()


def _with_ids(events: list[Event]) -> list[Event]:
    """Give each event without an id a random UUID (version 4, as 32 hex digits).

    The copies are made without validating the event again, and the random
    bytes for the whole batch come from one ``os.urandom``.
    """
    missing = sum(1 for e in events if e.event_id is None)
    if not missing:
        return events
    raw = bytearray(os.urandom(16 * missing))
    for i in range(missing):  # the version 4 and RFC 4122 variant bits, as uuid.uuid4() sets them
        raw[16 * i + 6] = (raw[16 * i + 6] & 0x0F) | 0x40
        raw[16 * i + 8] = (raw[16 * i + 8] & 0x3F) | 0x80
    ids = raw.hex()
    out: list[Event] = []
    n = 0
    for event in events:
        if event.event_id is not None:
            out.append(event)
            continue
        out.append(_copy_with_id(event, ids[n : n + 32]))
        n += 32
    return out


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventRecorder:
    """Buffers events and sends them to ``PutEvents`` in the background; never blocks the caller.

    Create it with ``client.event_recorder(tracking_id=...)`` and use it as an
    async context manager. ``flush_interval`` (seconds) bounds how long an
    event waits; ``max_queue_size`` bounds the events held (queued, in flight
    or waiting to be retried); when full, ``overflow`` decides:
    ``"drop_newest"`` (the default) refuses the new event, ``"drop_oldest"``
    drops the oldest queued one, ``"block"`` makes ``record()`` drop and
    ``await put()`` wait for room. Drops are counted and reported to
    ``on_drop(event, reason)``; ``on_failure(events, error)`` receives what
    could not be delivered. Both may be plain functions or coroutine
    functions. ``close(timeout)`` bounds everything it does, callbacks
    included. Retries use the client's policy and budget (see the module
    documentation).
    """

    def __init__(
        self,
        client: EventSender,
        *,
        tracking_id: str,
        flush_interval: float = 1.0,
        max_queue_size: int = 10_000,
        overflow: Overflow = "drop_newest",
        max_concurrency: int = 8,
        on_failure: FailureCallback | None = None,
        on_drop: DropCallback | None = None,
        close_timeout: float = 30.0,
    ) -> None:
        self._state = "new"  # new -> running -> closing -> closed; set first so __del__ works after a failed init
        self._pending = 0
        check_text("tracking_id", tracking_id, _ID_MAX)
        if isinstance(flush_interval, bool) or not isinstance(flush_interval, (int, float)) or not flush_interval > 0:
            raise ValidationError("flush_interval", "must be a positive number of seconds")
        check_positive_int("max_queue_size", max_queue_size)
        if overflow not in _OVERFLOWS:
            raise ValidationError("overflow", f"must be one of {', '.join(_OVERFLOWS)}")
        check_positive_int("max_concurrency", max_concurrency)
        for name, callback in (("on_failure", on_failure), ("on_drop", on_drop)):
            if callback is not None and not callable(callback):
                raise ValidationError(name, "must be callable")
        if isinstance(close_timeout, bool) or not isinstance(close_timeout, (int, float)) or close_timeout < 0:
            raise ValidationError("close_timeout", "must be a number of seconds of at least 0")
        self._client = client
        self._policy = client.retry_policy
        self._tracking_id = tracking_id
        self._flush_interval = float(flush_interval)
        self._max_queue_size = max_queue_size
        self._overflow = overflow
        self._max_concurrency = max_concurrency
        self._on_failure = on_failure
        self._on_drop = on_drop
        self._close_timeout = float(close_timeout)

        self._grouper: Grouper[_Key, Event] = Grouper(L.RECORDS_PER_CALL)
        self._ready: deque[_Batch] = deque()
        self._later: list[tuple[float, int, _Batch]] = []  # batches waiting to be retried, by due time
        self._order = itertools.count()
        self._unsettled: set[_Batch] = set()
        self._in_flight: dict[asyncio.Task[None], _Batch] = {}
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._probe: _Batch | None = None  # the one batch sent while the retry budget is empty
        self._recorded = self._sent = self._failed = self._dropped = self._retried = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._flush_now = False
        self._deadline: float | None = None
        self._closed: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"EventRecorder(tracking_id={self._tracking_id!r}, state={self._state}, stats={self.stats})"

    @property
    def stats(self) -> RecorderStats:
        """A snapshot of the counters; ``recorded == sent + failed + dropped + pending``."""
        return RecorderStats(self._recorded, self._sent, self._failed, self._dropped, self._pending, self._retried)

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun: further events are dropped."""
        return self._state in ("closing", "closed")

    async def __aenter__(self) -> EventRecorder:
        self._check_loop()
        self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise RecorderStateError(
                "this EventRecorder started in another event loop; make one recorder (and client) per loop"
            )
        return loop

    def _start(self) -> None:
        if self._state != "new":
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._thread = threading.get_ident()
        self._room = asyncio.Event()
        self._room.set()
        self._state = "running"
        self._runner = loop.create_task(self._run(), name="aiopersonalize_events-recorder")
        self._runner.add_done_callback(self._runner_done)

    # -- intake ---------------------------------------------------------------

    def record(self, event: Event, *, session_id: str, user_id: str | None = None) -> bool:
        """Queue one event of ``session_id`` (and ``user_id``); returns at once, never awaits.

        Returns True when the event was queued and False when it was dropped
        (queue full, or the recorder closed), which is counted in
        ``stats.dropped`` and reported to ``on_drop``. A value the service
        would refuse raises ``ValidationError`` and is not recorded. From a
        thread other than the recorder's event loop, the event is handed to
        that loop (True means handed over; a drop there is still counted and
        reported).
        """
        if type(event) is not Event and not isinstance(event, Event):
            raise ValidationError("event", f"must be an Event, not {type(event).__name__}")
        if not (type(session_id) is str and 0 < len(session_id) <= _ID_MAX and session_id.isascii()):
            check_text("session_id", session_id, _ID_MAX)
        if user_id is not None and not (type(user_id) is str and 0 < len(user_id) <= _ID_MAX and user_id.isascii()):
            check_text("user_id", user_id, _ID_MAX)
        if self._thread == threading.get_ident():
            try:
                here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is self._loop:
                return self._take(event, session_id, user_id)
        return self._record_elsewhere(event, session_id, user_id)

    def _record_elsewhere(self, event: Event, session_id: str, user_id: str | None) -> bool:
        """``record()`` outside the recorder's loop thread: start here, hand over, or refuse clearly."""
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if self._loop is None:
            if here is None:
                raise RecorderStateError(
                    "record() outside an event loop needs the recorder started first (`async with` in its loop)"
                )
            self._start()
            return self._take(event, session_id, user_id)
        if here is not None and here is not self._loop:
            raise RecorderStateError(
                "this EventRecorder started in another event loop; make one recorder (and client) per loop"
            )
        if self._loop.is_running():
            try:
                self._loop.call_soon_threadsafe(self._take, event, session_id, user_id)
                return True
            except RuntimeError:  # the loop closed meanwhile
                pass
        # its loop has stopped or closed: nothing would ever send this event
        self._recorded += 1
        self._drop(event, "closed (the recorder's event loop is not running)")
        return False

    def _take(self, event: Event, session_id: str, user_id: str | None) -> bool:
        self._recorded += 1
        if self._state != "running":
            if self._state != "new":
                self._drop(event, "closed")
                return False
            self._start()
        if self._pending >= self._max_queue_size and not self._make_room(event):
            return False
        self._pending += 1
        for key, events in self._grouper.add((session_id, user_id), event):
            self._enqueue(key, events)
        return True

    async def put(self, event: Event, *, session_id: str, user_id: str | None = None) -> None:
        """Queue one event, waiting for room when the queue is full (whatever ``overflow`` says).

        Raises ``RecorderClosedError`` when the recorder is closed, without
        counting the event.
        """
        self._check_loop()
        if self._state == "new":
            self._start()
        while self._state == "running" and self._pending >= self._max_queue_size:
            assert self._room is not None
            self._room.clear()
            await self._room.wait()
        if self._state != "running":
            raise RecorderClosedError("the recorder is closed")
        self.record(event, session_id=session_id, user_id=user_id)

    def _make_room(self, event: Event) -> bool:
        """The queue is full: apply the overflow policy. True when ``event`` may now be queued."""
        if self._overflow == "drop_oldest":
            oldest = self._grouper.pop_oldest()
            if oldest is not None:
                self._pending -= 1
                self._drop(oldest[1], "queue full (dropped oldest)")
                return True
        self._drop(event, "queue full")
        return False

    def _drop(self, event: Event, reason: str) -> None:
        self._dropped += 1
        if self._dropped == 1 or self._dropped % 1000 == 0:
            log.warning("event recorder dropped an event (%s); %d dropped so far", reason, self._dropped)
        if self._on_drop is not None:
            self._call_back("on_drop", self._on_drop, event, reason)

    def _call_back(self, name: str, callback: Callable[..., Any], *args: Any) -> None:
        """Run a user callback: a plain one now, a coroutine one as a task that ``close()`` bounds."""
        try:
            result = callback(*args)
        except Exception:
            log.exception("%s callback raised; ignored", name)
            return
        if inspect.isawaitable(result):
            loop = self._loop
            if loop is None or loop.is_closed():
                if inspect.iscoroutine(result):
                    result.close()
                log.error("%s callback is a coroutine but the recorder's loop is gone; it did not run", name)
                return
            task = loop.create_task(self._await_callback(name, result))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    @staticmethod
    async def _await_callback(name: str, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("%s callback raised; ignored", name)

    def _enqueue(self, key: _Key, events: list[Event]) -> None:
        assert self._loop is not None
        batch = _Batch(key[0], key[1], events, self._loop.create_future())
        self._ready.append(batch)
        self._unsettled.add(batch)
        self._poke()

    def _poke(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _cut_groups(self) -> None:
        """Turn every group, full or not, into a batch."""
        for key, events in self._grouper.cut():
            self._enqueue(key, events)

    # -- the background task ----------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self._flush_interval
        while True:
            try:
                now = loop.time()
                if self._flush_now or now >= next_tick:
                    self._flush_now = False
                    self._cut_groups()
                    next_tick = now + self._flush_interval
                while self._later and self._later[0][0] <= now:
                    self._ready.append(heapq.heappop(self._later)[2])
                while self._ready and len(self._in_flight) < self._max_concurrency:
                    batch = self._ready.popleft()
                    if batch.waiting_for_budget and not self._take_budget(batch):
                        continue
                    task = loop.create_task(self._deliver(batch))
                    self._in_flight[task] = batch
                    task.add_done_callback(self._sent_done)
                if self._state == "closed":
                    return
                if self._ready and len(self._in_flight) < self._max_concurrency:
                    continue
                wake_at = next_tick if not self._later else min(next_tick, self._later[0][0])
                waiter = self._waiter = loop.create_future()
                timer = loop.call_at(wake_at, _wake, waiter)
                try:
                    await waiter  # no wait_for: a cancellation always reaches this task (Python 3.11's may not)
                finally:
                    timer.cancel()
                    self._waiter = None
            except asyncio.CancelledError:
                if self._state == "running":
                    self._abandoned()
                raise
            except Exception:  # never die: log and go on
                log.exception("event recorder loop error; continuing")
                await asyncio.sleep(0.1)

    def _take_budget(self, batch: _Batch) -> bool:
        """A batch that waited for the retry budget asks again; False puts it back to wait once more."""
        assert batch.error is not None
        assert self._loop is not None
        token = self._policy.retry_token(batch.token, batch.error, bounded=False)
        if token is None:
            if self._probe is None:  # send one waiting batch as a probe: its success refills the budget
                self._probe = batch
                batch.token = RetryToken(batch.token.attempt + 1)
                batch.waiting_for_budget = False
                return True
            self._later_add(batch, self._budget_wait(batch))
            return False
        batch.token = token
        batch.waiting_for_budget = False
        return True

    def _budget_wait(self, batch: _Batch) -> float:
        assert batch.error is not None
        return max(self._policy.delay(batch.token.attempt, batch.error), self._flush_interval)

    def _later_add(self, batch: _Batch, delay: float) -> None:
        assert self._loop is not None
        heapq.heappush(self._later, (self._loop.time() + delay, next(self._order), batch))

    def _sent_done(self, task: asyncio.Task[None]) -> None:
        batch = self._in_flight.pop(task, None)
        if batch is not None and batch is self._probe:
            self._probe = None
            if batch not in self._unsettled and self._later:  # it got through: the next may go now
                due, order, first = heapq.heappop(self._later)
                heapq.heappush(self._later, (min(due, self._loop_time()), order, first))
        self._poke()  # a slot is free

    def _loop_time(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def _deliver(self, batch: _Batch) -> None:
        """Make one call for a batch; settle it, or put it back to be retried later."""
        try:
            events = batch.events = _with_ids(batch.events)
            await self._client.put_events(
                tracking_id=self._tracking_id, session_id=batch.session_id, event_list=events, user_id=batch.user_id
            )
        except asyncio.CancelledError:
            if batch in self._unsettled:
                self._settle_failed(batch, RecorderClosedError("the recorder closed before delivery"))
            raise
        except PersonalizeEventsError as error:
            self._failed_call(batch, error)
            return
        except Exception as exc:  # a bug or misuse (client closed): fail loudly, never lose
            log.exception("recorder send failed unexpectedly")
            wrapped = PersonalizeEventsError(f"unexpected error while sending: {type(exc).__name__}: {exc}")
            self._settle_failed(batch, wrapped)
            return
        if batch.token.cost:
            self._policy.record_success(batch.token)
        self._settle(batch, sent=True)

    def _failed_call(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        batch.token.attempt += max(0, error.attempts - 1)  # the client's own attempts count too
        if not error.retryable or not self._may_retry():
            self._settle_failed(batch, error)
            return
        batch.error = error
        token = self._policy.retry_token(batch.token, error, bounded=False)
        self._retried += 1
        if token is None:  # the budget is empty: keep the batch, ask again later
            batch.waiting_for_budget = True
            delay = self._budget_wait(batch)
            log.debug("recorder: retry budget empty; a batch of %d waits %.2fs", len(batch.events), delay)
        else:
            batch.token = token
            delay = token.delay
            log.debug("recorder retrying a batch of %d in %.2fs after %s", len(batch.events), delay, error)
        if self._deadline is not None:
            assert self._loop is not None
            delay = min(delay, max(0.0, self._deadline - self._loop.time()))
        self._later_add(batch, delay)
        self._poke()

    def _may_retry(self) -> bool:
        if self._state == "running":
            return True
        return self._deadline is not None and self._loop is not None and self._loop.time() < self._deadline

    def _settle(self, batch: _Batch, *, sent: bool) -> None:
        if batch not in self._unsettled:
            return
        self._unsettled.discard(batch)
        n = len(batch.events)
        self._pending -= n
        if sent:
            self._sent += n
        else:
            self._failed += n
        if not batch.done.done():
            batch.done.set_result(None)
        if self._room is not None and self._pending < self._max_queue_size:
            self._room.set()

    def _settle_failed(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        if batch not in self._unsettled:
            return
        before = self._failed
        self._settle(batch, sent=False)
        if before == 0 or before // 1000 != self._failed // 1000:  # the first failure, then one line per 1000 events
            log.warning(
                "event recorder could not deliver %d event(s): %s; %d failed so far",
                len(batch.events),
                error,
                self._failed,
            )
        if self._on_failure is not None:
            self._call_back("on_failure", self._on_failure, list(batch.events), error)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self._state == "running":  # cancelled before it ever ran (the loop is ending)
                self._abandoned()
            return
        if task.exception() is None:
            return
        # cannot happen by design; if it does, fail everything pending loudly rather than lose it
        log.error("event recorder task died: %r; failing pending events", task.exception())
        self._fail_everything(RecorderClosedError("the recorder's background task died"))

    def _fail_everything(self, error: PersonalizeEventsError) -> None:
        """Settle every unsent event as failed, now (no await): queued, waiting and in flight."""
        self._cut_groups()
        while self._later:
            self._ready.append(heapq.heappop(self._later)[2])
        while self._ready:
            self._settle_failed(self._ready.popleft(), error)
        for task in list(self._in_flight):
            task.cancel()
        for batch in list(self._unsettled):
            self._settle_failed(batch, error)

    def _abandoned(self) -> None:
        """The loop is ending with the recorder still open (no ``close()``): say so, and account for the rest."""
        self._state = "closed"
        if self._room is not None:
            self._room.set()
        if self._pending:
            log.error(
                "event recorder: its event loop ended without close(); %d event(s) were not delivered "
                "and are counted as failed (use `async with` or await close())",
                self._pending,
            )
        self._fail_everything(RecorderClosedError("the event loop ended before the recorder was closed"))

    # -- flush and close ----------------------------------------------------------

    async def flush(self) -> None:
        """Send every event recorded so far and wait until each is sent or failed."""
        self._check_loop()
        if self._state not in ("running", "closing"):
            return
        self._cut_groups()
        waiting = [b.done for b in self._unsettled]
        self._flush_now = True
        self._poke()
        if waiting:
            # wait(), not gather(): cancelling this flush must not cancel the batches' futures,
            # which close() waits on to drain
            await asyncio.wait(waiting)

    async def close(self, timeout: float | None = None) -> None:
        """Stop intake, send what is queued, and wait at most ``timeout`` seconds (default ``close_timeout``).

        The deadline bounds everything: delivery, retries and the async
        ``on_failure``/``on_drop`` callbacks; events still unsent at the
        deadline go to ``on_failure`` with a ``RecorderClosedError``, and
        callbacks still running then are cancelled (and logged). Idempotent;
        never raises. If the caller is cancelled meanwhile, the recorder stops
        at once (unsent events go to ``on_failure``) and the cancellation is
        passed on.
        """
        loop = self._check_loop()
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = loop.create_future()
        limit = timeout if timeout is not None else self._close_timeout
        self._deadline = loop.time() + limit
        try:
            await self._close(limit, loop)
        except asyncio.CancelledError:
            # the caller was cancelled while we drained: stop at once, so that nothing keeps running and every
            # unsent event reaches on_failure, then let the cancellation through (shielded: a second cancel
            # cannot cut the stop short)
            await asyncio.shield(self._stop(RecorderClosedError("close() was cancelled with events undelivered"), 0))
            raise
        except Exception:
            log.exception("event recorder close failed; pending events were failed")
        finally:
            self._state = "closed"
            if self._room is not None:
                self._room.set()
            if not self._closed.done():
                self._closed.set_result(None)

    async def _close(self, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._state == "new":
            self._state = "closed"
            return
        if self._state == "closed":  # the loop it ran in ended; nothing is left to send
            return
        self._state = "closing"
        if self._room is not None:
            self._room.set()  # wake put() callers: they raise RecorderClosedError
        self._cut_groups()
        self._poke()
        assert self._deadline is not None
        waiting = [b.done for b in self._unsettled]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, self._deadline - loop.time()))
        await self._stop(
            RecorderClosedError(f"the recorder closed after {timeout:g}s with events undelivered"),
            max(0.0, self._deadline - loop.time()),
        )

    async def _stop(self, error: RecorderClosedError, callback_time: float) -> None:
        """Stop: end the background loop, fail every event still unsent, give callbacks what time is left."""
        self._state = "closed"
        runner, self._runner = self._runner, None  # a finished task keeps its frames (and so this recorder) alive
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        tasks = list(self._in_flight)
        self._fail_everything(error)
        if tasks:
            await asyncio.wait(tasks)
        callbacks = list(self._callbacks)
        if callbacks:
            _, late = await asyncio.wait(callbacks, timeout=callback_time) if callback_time > 0 else (set(), callbacks)
            if late:
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
                log.error("event recorder: %d callback(s) had not finished at the close deadline; cancelled", len(late))

    def __del__(self) -> None:
        if self._state in ("running", "closing") and self._pending:
            warnings.warn(
                f"EventRecorder garbage-collected with {self._pending} pending event(s); use `async with` or close()",
                ResourceWarning,
                stacklevel=1,
            )
