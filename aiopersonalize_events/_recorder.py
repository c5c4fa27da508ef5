"""EventRecorder: buffer events in memory and send them to PutEvents in the background.

``record()`` is synchronous and cheap: it checks the event, appends it to
the group of its (session, user) and returns. One background task (started
on first use, inside the running loop) turns full groups of ten, and every
group when ``flush_interval`` passes, into batches, and sends them with at
most ``max_concurrency`` calls in flight. A failed call is retried with
backoff while its error is retryable and the recorder is open (or closing and
before its deadline); what finally fails goes to ``on_failure``. The counters
satisfy ``recorded == sent + failed + dropped + pending`` at every moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Literal

import attrs

from . import _limits as L
from . import _operations as ops
from ._shapes import Event, PutEventsRequest, check_event_size
from .errors import PersonalizeEventsError, ValidationError

if TYPE_CHECKING:
    from ._client import PersonalizeEventsClient

__all__ = ["EventRecorder", "RecorderClosedError", "RecorderStats"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

Overflow = Literal["drop_newest", "drop_oldest", "block"]
FailureCallback = Callable[[list[Event], PersonalizeEventsError], "Awaitable[None] | None"]
DropCallback = Callable[[Event, str], None]
_OVERFLOWS: Final = ("drop_newest", "drop_oldest", "block")
_Key = tuple[str, "str | None"]


@attrs.frozen
class RecorderStats:
    """A consistent snapshot of an ``EventRecorder``'s counters.

    ``recorded`` events were accepted by ``record()``/``put()``; each is then
    ``sent`` (accepted by the service), ``failed`` (handed to ``on_failure``),
    ``dropped`` (refused for lack of room, or after close; handed to
    ``on_drop``) or still ``pending`` (queued or in flight). ``retried``
    counts calls the recorder resent after a failure.
    """

    recorded: int
    sent: int
    failed: int
    dropped: int
    pending: int
    retried: int


class RecorderClosedError(PersonalizeEventsError):
    """The error ``on_failure`` receives for events still unsent when ``close()``'s deadline passed."""


class _Batch:
    """Up to ten events of one (session, user), with a future that resolves when they are settled."""

    __slots__ = ("done", "events", "session_id", "user_id")

    def __init__(self, session_id: str, user_id: str | None, events: list[Event], done: asyncio.Future[None]) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.events = events
        self.done = done


_EVENT_FIELDS: Final = tuple(a.name for a in attrs.fields(Event))


def _with_ids(events: list[Event]) -> list[Event]:
    """Give each event without an id a random UUID (version 4, as 32 hex digits).

    The copies are made field by field, without validating the event again,
    and the random bytes for the whole batch come from one ``os.urandom``.
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
        new = object.__new__(Event)
        for name in _EVENT_FIELDS:
            object.__setattr__(new, name, getattr(event, name))
        object.__setattr__(new, "event_id", ids[32 * n : 32 * n + 32])
        n += 1
        out.append(new)
    return out


def _check_id(path: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not 1 <= len(value) <= L.ID_MAX:
        raise ValidationError(path, f"must be a string of 1 to {L.ID_MAX} characters")


class EventRecorder:
    """Buffers events and sends them to ``PutEvents`` in the background; never blocks the caller.

    Create it with ``client.event_recorder(tracking_id=...)`` and use it as an
    async context manager. ``flush_interval`` (seconds) bounds how long an
    event waits; ``max_queue_size`` bounds the events held (queued, in flight
    or awaiting a retry); when full, ``overflow`` decides: ``"drop_newest"``
    (the default) refuses the new event, ``"drop_oldest"`` drops the oldest
    queued one, ``"block"`` makes ``record()`` drop and ``await put()`` wait
    for room. Drops are counted and reported to ``on_drop(event, reason)``.
    ``on_failure(events, error)`` (plain or async) receives what could not be
    delivered. ``retry_backoff_base``/``retry_backoff_max`` shape the
    recorder's own retries, on top of the client's.
    """

    def __init__(
        self,
        client: PersonalizeEventsClient,
        *,
        tracking_id: str,
        flush_interval: float = 1.0,
        max_queue_size: int = 10_000,
        overflow: Overflow = "drop_newest",
        max_concurrency: int = 8,
        on_failure: FailureCallback | None = None,
        on_drop: DropCallback | None = None,
        retry_backoff_base: float = 0.5,
        retry_backoff_max: float = 30.0,
        close_timeout: float = 30.0,
    ) -> None:
        _check_id("tracking_id", tracking_id, optional=False)
        if not flush_interval > 0:
            raise ValidationError("flush_interval", "must be a positive number of seconds")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValidationError("max_queue_size", "must be an integer of at least 1")
        if overflow not in _OVERFLOWS:
            raise ValidationError("overflow", f"must be one of {', '.join(_OVERFLOWS)}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValidationError("max_concurrency", "must be an integer of at least 1")
        self._client = client
        self._tracking_id = tracking_id
        self._flush_interval = float(flush_interval)
        self._max_queue_size = max_queue_size
        self._overflow = overflow
        self._max_concurrency = max_concurrency
        self._on_failure = on_failure
        self._on_drop = on_drop
        self._backoff_base = retry_backoff_base
        self._backoff_max = retry_backoff_max
        self._close_timeout = close_timeout
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        """The sleep used between the recorder's retries (tests replace it)."""
        self.random: Callable[[], float] = random.random
        """The random source of the retry jitter (tests replace it)."""

        self._groups: dict[_Key, list[Event]] = {}
        self._ready: deque[_Batch] = deque()
        self._unsettled: set[_Batch] = set()
        self._in_flight: dict[asyncio.Task[None], _Batch] = {}
        self._recorded = self._sent = self._failed = self._dropped = self._pending = self._retried = 0
        self._grouped = 0  # events in _groups (not yet in a batch)
        self._state = "new"  # new -> running -> closing -> closed
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._failing: asyncio.Task[None] | None = None
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
        self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _start(self) -> None:
        if self._state != "new":
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
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
        would refuse raises ``ValidationError`` and is not recorded.
        """
        if not isinstance(event, Event):
            raise ValidationError("event", f"must be an Event, not {type(event).__name__}")
        _check_id("session_id", session_id, optional=False)
        _check_id("user_id", user_id, optional=True)
        check_event_size(event, "event")
        if self._state != "running":
            if self._state == "new":
                self._start()
            else:
                self._recorded += 1
                self._drop(event, "closed")
                return False
        self._recorded += 1
        if self._pending >= self._max_queue_size and not self._make_room(event):
            return False
        self._pending += 1
        key = (session_id, user_id)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = [event]
        else:
            group.append(event)
            if len(group) >= L.RECORDS_PER_CALL:
                del self._groups[key]
                self._enqueue(key, group)
                self._grouped -= len(group) - 1
                return True
        self._grouped += 1
        return True

    async def put(self, event: Event, *, session_id: str, user_id: str | None = None) -> None:
        """Queue one event, waiting for room when the queue is full (whatever ``overflow`` says).

        Raises ``RecorderClosedError`` when the recorder is closed, without
        counting the event.
        """
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
        if self._overflow == "drop_oldest" and self._grouped:
            key = next(iter(self._groups))
            group = self._groups[key]
            oldest = group.pop(0)
            if not group:
                del self._groups[key]
            self._grouped -= 1
            self._pending -= 1
            self._drop(oldest, "queue full (dropped oldest)")
            return True
        self._drop(event, "queue full")
        return False

    def _drop(self, event: Event, reason: str) -> None:
        self._dropped += 1
        if self._dropped == 1 or self._dropped % 1000 == 0:
            log.warning("event recorder dropped an event (%s); %d dropped so far", reason, self._dropped)
        if self._on_drop is not None:
            try:
                self._on_drop(event, reason)
            except Exception:
                log.exception("on_drop callback raised; ignored")

    def _enqueue(self, key: _Key, events: list[Event]) -> None:
        loop = asyncio.get_running_loop()
        batch = _Batch(key[0], key[1], events, loop.create_future())
        self._ready.append(batch)
        self._unsettled.add(batch)
        if self._wake is not None:
            self._wake.set()

    def _cut_groups(self) -> None:
        """Turn every group, full or not, into a batch."""
        groups, self._groups = self._groups, {}
        self._grouped = 0
        for key, events in groups.items():
            self._enqueue(key, events)

    # -- the background task ----------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self._flush_interval
        while True:
            try:
                timeout = max(0.0, next_tick - loop.time())
                can_send = self._ready and len(self._in_flight) < self._max_concurrency
                if not can_send and not self._flush_now:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                if self._flush_now or loop.time() >= next_tick:
                    self._flush_now = False
                    self._cut_groups()
                    next_tick = loop.time() + self._flush_interval
                while self._ready and len(self._in_flight) < self._max_concurrency:
                    batch = self._ready.popleft()
                    task = loop.create_task(self._deliver(batch))
                    self._in_flight[task] = batch
                    task.add_done_callback(self._sent_done)
                if self._state == "closed":
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # never die: log and go on
                log.exception("event recorder loop error; continuing")
                await asyncio.sleep(0.1)

    def _sent_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if self._wake is not None:
            self._wake.set()  # a slot is free

    async def _deliver(self, batch: _Batch) -> None:
        """Send one batch until it is accepted, finally fails, or the close deadline passes."""
        events = _with_ids(batch.events)
        batch.events = events
        request = PutEventsRequest(
            tracking_id=self._tracking_id, session_id=batch.session_id, event_list=events, user_id=batch.user_id
        )
        loop = asyncio.get_running_loop()
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    await self._client._invoke(ops.PUT_EVENTS, request)
                except PersonalizeEventsError as error:
                    if not error.retryable or not self._may_retry(loop):
                        await self._settle_failed(batch, error)
                        return
                    delay = self.random() * min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
                    if self._deadline is not None:
                        delay = min(delay, max(0.0, self._deadline - loop.time()))
                    self._retried += 1
                    log.debug("recorder retrying a batch of %d in %.2fs after %s", len(events), delay, error)
                    await self.sleep(delay)
                    if not self._may_retry(loop):
                        await self._settle_failed(batch, error)
                        return
                    continue
                except Exception as exc:  # a bug or misuse (client closed): fail loudly, never lose
                    log.exception("recorder send failed unexpectedly")
                    wrapped = PersonalizeEventsError(f"unexpected error while sending: {type(exc).__name__}: {exc}")
                    await self._settle_failed(batch, wrapped)
                    return
                self._settle(batch, sent=True)
                return
        except asyncio.CancelledError:
            if batch in self._unsettled:
                await self._settle_failed(batch, RecorderClosedError("the recorder closed before delivery"))
            raise

    def _may_retry(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self._state == "running":
            return True
        return self._deadline is not None and loop.time() < self._deadline

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

    async def _settle_failed(self, batch: _Batch, error: PersonalizeEventsError) -> None:
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
        if self._on_failure is None:
            return
        try:
            result = self._on_failure(list(batch.events), error)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_failure callback raised; ignored")

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # cannot happen by design; if it does, fail everything pending loudly rather than lose it
        log.error("event recorder task died: %r; failing pending events", task.exception())
        loop = task.get_loop()
        # kept referenced: the loop holds tasks only weakly
        self._failing = loop.create_task(
            self._fail_everything(RecorderClosedError("the recorder's background task died"))
        )

    async def _fail_everything(self, error: PersonalizeEventsError) -> None:
        self._cut_groups()
        while self._ready:
            await self._settle_failed(self._ready.popleft(), error)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))
        for batch in list(self._unsettled):
            await self._settle_failed(batch, error)

    # -- flush and close ----------------------------------------------------------

    async def flush(self) -> None:
        """Send every event recorded so far and wait until each is sent or failed."""
        if self._state not in ("running", "closing"):
            return
        self._cut_groups()
        waiting = [b.done for b in self._unsettled]
        self._flush_now = True
        assert self._wake is not None
        self._wake.set()
        if waiting:
            # wait(), not gather(): cancelling this flush must not cancel the batches' futures,
            # which close() waits on to drain
            await asyncio.wait(waiting)

    async def close(self, timeout: float | None = None) -> None:
        """Stop intake, send what is queued, and wait at most ``timeout`` seconds (default ``close_timeout``).

        Events still unsent at the deadline go to ``on_failure`` with a
        ``RecorderClosedError``. Idempotent; never raises. If the caller is
        cancelled meanwhile, the recorder stops at once (unsent events go to
        ``on_failure``) and the cancellation is passed on.
        """
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        try:
            await self._close(timeout if timeout is not None else self._close_timeout, loop)
        except asyncio.CancelledError:
            # the caller was cancelled while we drained: stop at once, so that nothing keeps running and every
            # unsent event reaches on_failure, then let the cancellation through (shielded: a second cancel
            # cannot cut the stop short)
            await asyncio.shield(self._stop(RecorderClosedError("close() was cancelled with events undelivered")))
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
        self._state = "closing"
        self._deadline = loop.time() + timeout
        if self._room is not None:
            self._room.set()  # wake put() callers: they raise RecorderClosedError
        self._cut_groups()
        assert self._wake is not None
        self._wake.set()
        waiting = [b.done for b in self._unsettled]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, self._deadline - loop.time()))
        await self._stop(RecorderClosedError(f"the recorder closed after {timeout:g}s with events undelivered"))

    async def _stop(self, error: RecorderClosedError) -> None:
        """Stop now: end the background loop, cancel the calls in flight, fail every event still unsent."""
        self._state = "closed"
        runner, self._runner = self._runner, None  # a finished task keeps its frames (and so this recorder) alive
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        while self._ready:
            await self._settle_failed(self._ready.popleft(), error)
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for batch in list(self._unsettled):
            await self._settle_failed(batch, error)

    def __del__(self) -> None:
        if self._state in ("running", "closing") and self._pending:
            warnings.warn(
                f"EventRecorder garbage-collected with {self._pending} pending event(s); use `async with` or close()",
                ResourceWarning,
                stacklevel=1,
            )
