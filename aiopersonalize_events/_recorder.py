"""EventRecorder: keep events in a spool and send them to PutEvents in the background.

``record()`` is synchronous and cheap: it checks the event's session and user
(the event itself was checked when it was made), gives it an ``eventId`` when
the spool outlives the process, hands it to the spool (``_spool``: the memory
spool by default, grouping by (session, user) with the package's one
``Grouper``; or a durable one such as ``SqliteSpool``), and returns. One
background task (started on first use, inside the running loop) opens the
spool, takes full groups of ten, and every group when ``flush_interval``
passes, as batches, and sends each with the client's public ``put_events``,
at most ``max_concurrency`` at once (a sender whose call ends goes straight on
to the next ready batch, without a task per call). A batch leaves the spool when the service
accepted it (``ack``) or when it failed for good (``fail``: a durable spool
keeps it as a dead letter); one unsettled when the recorder stops goes back
to a durable spool (``release``) for the next start.

Sending and re-sending are the package's one delivery engine (``_delivery``),
with the client's ``RetryPolicy``: within a call the client retries as usual;
a batch whose call still failed with a transient error (throttling, 5xx, a
timeout) is sent again after the policy's wait (``Retry-After`` honoured, its
cost from the client-wide retry budget), while the recorder is open; with the
budget empty, waiting batches go out one at a time as probes. A set-up error
(no credentials, credentials the service rejects, no permission, an unknown
tracker, the wrong region) is not the events' fault: they are held (counted
in ``pending``, bounded by ``max_queue_size`` or the spool's limits), the
condition is logged once at ERROR with what to fix, and they go once a call
gets through; at the close deadline they are unsent (a durable spool keeps
them). What the service refuses for good (``InvalidInputException``) goes to
``on_failure``. This module keeps intake, ids, overflow and the life cycle;
the engine tells it each batch's outcome (``_Outcomes``).

The counters satisfy ``recorded == sent + failed + dropped + pending`` at
every moment, by construction (``pending`` is what the others leave);
events recovered from a durable spool count in ``recorded`` (and in
``recovered``). The recorder belongs to the event loop it started in;
``record()`` may be called from other threads (it hands the event over to
that loop thread-safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal, Protocol, TypeAlias

import attrs

from . import _limits as L
from . import _operations as ops
from . import _telemetry
from ._batching import Rate, _limiter
from ._clock import Clock
from ._delivery import Delivery
from ._retry import RetryPolicy
from ._shapes import Event
from ._validators import check_positive_int, check_text
from .errors import Fault, PersonalizeEventsError, ValidationError
from .spool import MemorySpool, Spool, SpoolBatch, SpoolError

__all__ = ["EventRecorder", "RecorderClosedError", "RecorderStateError", "RecorderStats"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

Overflow = Literal["drop_newest", "drop_oldest", "block"]
FailureCallback = Callable[[list[Event], PersonalizeEventsError], "Awaitable[None] | None"]
DropCallback = Callable[[Event, str], "Awaitable[None] | None"]
_OVERFLOWS: Final = ("drop_newest", "drop_oldest", "block")
_ID_MAX: Final = L.ID_MAX
_IDS_AT_ONCE: Final = 256  # event ids made from one os.urandom call
SPOOL_CLOSE_TIME: Final = 5.0
"""Seconds ``close()`` gives a spool to close at least, even past its deadline (to write what it holds)."""

SpoolOption: TypeAlias = "Spool | str | os.PathLike[str] | None"
"""The recorder's ``spool``: a ``Spool``, a path (short for ``SqliteSpool(path)``), or None for memory."""


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
    ``on_drop``) or still ``pending`` (queued, waiting to be retried, in
    flight, or left in a durable spool for the next start). ``retried``
    counts calls the recorder resent after a failure. ``recovered`` counts
    events taken over from a durable spool that an earlier (or a dead)
    process left; they are counted in ``recorded`` too.
    """

    recorded: int
    sent: int
    failed: int
    dropped: int
    pending: int
    retried: int
    recovered: int = 0


class RecorderClosedError(PersonalizeEventsError):
    """The error ``on_failure`` receives for events still unsent when ``close()``'s deadline passed."""


class RecorderStateError(PersonalizeEventsError, RuntimeError):
    """The recorder was used where it cannot work: from another event loop than the one it started in.

    A recorder (like its client) belongs to one event loop. ``record()`` from
    a thread other than the loop's is fine once the recorder has started.
    """


class _Batch:
    """A spool's batch (up to ten events of one session and user), and a future settled with it."""

    __slots__ = ("done", "events", "session_id", "spooled", "user_id")

    def __init__(self, spooled: SpoolBatch, done: asyncio.Future[None]) -> None:
        self.spooled = spooled
        self.session_id = spooled.session_id
        self.user_id = spooled.user_id
        self.events = spooled.events
        self.done = done

    def __len__(self) -> int:
        return len(self.events)


class _Outcomes:
    """What the delivery engine tells the recorder about each batch (the engine's ``Outcomes``)."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    def sent(self, batch: _Batch) -> None:
        self._recorder._settle(batch, None)

    def refused(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._recorder._settle_failed(batch, error)

    def held(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        self._recorder._retried += 1

    def unsent(self, batch: _Batch, error: PersonalizeEventsError | None) -> None:
        recorder = self._recorder
        stop_error = recorder._stop_error
        if error is not None and error.fault is Fault.SETUP:  # held on a set-up error: closed before delivery
            closed = RecorderClosedError(f"{stop_error or 'the recorder closed before delivery'} (held: {error})")
            closed.__cause__ = error
            recorder._give_up(batch, closed)
        elif stop_error is not None:
            recorder._give_up(batch, stop_error)
        elif error is not None:
            recorder._give_up(batch, error)
        else:  # stopped mid-call
            recorder._give_up(batch, RecorderClosedError("the recorder closed before delivery"))


def _make_copier() -> Callable[[Event, str], Event]:
    """A function copying an Event with a new ``event_id``, member by member, without validating it again.

    Generated once from the attrs fields (one statement per member, no loop),
    since the recorder copies every event that arrives without an id.
    """
    names = [field.name for field in attrs.fields(Event)]
    # each member's slot descriptor setter is bound once, as a default argument (a local, not a global lookup)
    setters = ", ".join(f"set_{name}=slots[{name!r}].__set__" for name in names)
    lines = [
        f"def copy_with_id(event, event_id, new_event=new_event, cls=Event, {setters}):",
        "    new = new_event(cls)",
    ]
    for name in names:
        lines.append(f"    set_{name}(new, {'event_id' if name == 'event_id' else f'event.{name}'})")
    lines.append("    return new")
    namespace: dict[str, Any] = {"Event": Event, "new_event": object.__new__, "slots": Event.__dict__}
    exec("\n".join(lines), namespace)
    copier: Callable[[Event, str], Event] = namespace["copy_with_id"]
    return copier


_copy_with_id: Final = _make_copier()


def _uuid_masks() -> tuple[int, int]:
    """The masks that make ``_IDS_AT_ONCE`` concatenated 16-byte strings version 4 UUIDs: (bits kept, bits set)."""
    keep = bytearray(b"\xff" * 16)
    set_ = bytearray(16)
    keep[6], set_[6] = 0x0F, 0x40  # the version, 4
    keep[8], set_[8] = 0x3F, 0x80  # the RFC 4122 variant
    return int.from_bytes(bytes(keep) * _IDS_AT_ONCE, "big"), int.from_bytes(bytes(set_) * _IDS_AT_ONCE, "big")


_UUID_KEEP, _UUID_SET = _uuid_masks()


def _new_ids() -> list[str]:
    """``_IDS_AT_ONCE`` random UUIDs (version 4, as 32 hex digits) from one ``os.urandom``.

    The version and variant bits of all of them are set with two big-integer
    operations, as ``uuid.uuid4()`` sets them one by one.
    """
    size = 16 * _IDS_AT_ONCE
    raw = int.from_bytes(os.urandom(size), "big") & _UUID_KEEP | _UUID_SET
    text = raw.to_bytes(size, "big").hex()
    return [text[n : n + 32] for n in range(0, 2 * size, 32)]


def _reason(error: PersonalizeEventsError) -> str:
    """Why a batch failed for good, as a dead letter keeps it: the error's message, led by its class name."""
    text = str(error)
    name = type(error).__name__
    return text if text.startswith(name) else f"{name}: {text}"


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

    ``spool`` is where events wait: ``None`` for memory (bounded by
    ``max_queue_size``), a ``Spool`` such as ``SqliteSpool(path)`` (bounded by
    its own ``max_events``/``max_bytes``; ``max_queue_size`` does not apply),
    or a path, short for ``SqliteSpool(path)``. With a durable spool each
    event gets its ``event_id`` at ``record()``, ``await put()`` returns once
    the event is durable, events left unsent at close stay in the spool for
    the next start, and a recorder opened on an existing spool first sends
    what an earlier process left there.

    ``requests_per_second`` paces the calls (every one, retries included):
    a number, None (the default: unpaced) or an object with ``async def
    acquire()`` shared with others, such as ``RedisRateLimiter``.
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
        spool: SpoolOption = None,
        requests_per_second: Rate = None,
        clock: Clock | None = None,
    ) -> None:
        self._state = "new"  # new -> running -> closing -> closed; set first so __del__ works after a failed init
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
        chosen: Spool
        if spool is None:
            chosen = MemorySpool(max_events=max_queue_size)
        elif isinstance(spool, (str, os.PathLike)):
            from .spool.sqlite import SqliteSpool

            chosen = SqliteSpool(spool)
        elif isinstance(spool, Spool):
            chosen = spool
        else:
            raise ValidationError("spool", f"must be a Spool, a path or None, not {type(spool).__name__}")
        self._spool = chosen
        self._durable = bool(chosen.durable)
        self._hands_off = bool(getattr(chosen, "hands_off", False))
        self._full = chosen.full  # bound once: record() calls them for every event
        self._append = chosen.append
        # below this many pending events the spool cannot be full: the memory spool holds exactly the
        # pending events and is bounded by max_queue_size, so record() asks it only near its bound
        self._unchecked = max_queue_size if type(chosen) is MemorySpool and spool is None else 0
        self._ids: list[str] = []
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
        self._limiter = _limiter(ops.PUT_EVENTS, requests_per_second)
        if clock is not None and not isinstance(clock, Clock):
            raise ValidationError("clock", "must have time() and call_at(when, callback, *args), as an event loop has")
        self._clock: Clock | None = clock  # None: the event loop's
        self._delivery: Delivery[_Batch] = Delivery(
            self._send,
            _Outcomes(self),
            policy=self._policy,
            max_concurrency=max_concurrency,
            limiter=self._limiter,
            clock=clock,
            min_wait=self._flush_interval,
            refill=self._refill,
            name="event recorder",
            logger=log,
        )
        self._stop_error: PersonalizeEventsError | None = None  # once stopping: what unsent batches fail with

        self._unsettled: set[_Batch] = set()
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._recorded = self._sent = self._failed = self._dropped = self._retried = self._recovered = 0
        self._opened: asyncio.Future[None] | None = None
        self._closing_spool: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._flush_now = False
        self._deadline: float | None = None
        self._closed: asyncio.Future[None] | None = None
        _telemetry.watch_recorder(self)  # weakly, for the gauges of aiopersonalize_events.otel

    def __repr__(self) -> str:
        return f"EventRecorder(tracking_id={self._tracking_id!r}, state={self._state}, stats={self.stats})"

    @property
    def _pending(self) -> int:
        """Events recorded and not yet sent, failed or dropped: derived, so the invariant holds by construction."""
        return self._recorded - self._sent - self._failed - self._dropped

    @property
    def stats(self) -> RecorderStats:
        """A snapshot of the counters; ``recorded == sent + failed + dropped + pending``."""
        return RecorderStats(
            self._recorded, self._sent, self._failed, self._dropped, self._pending, self._retried, self._recovered
        )

    @property
    def spool(self) -> Spool:
        """Where this recorder keeps its events (a ``MemorySpool`` unless one was given)."""
        return self._spool

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun: further events are dropped."""
        return self._state in ("closing", "closed")

    async def __aenter__(self) -> EventRecorder:
        """Start, and open the spool: a spool that cannot open raises its ``SpoolError`` here."""
        _refuse_if_inherited(self)
        self._check_loop()
        self._start()
        if self._opened is not None:
            try:
                await asyncio.shield(self._opened)
            except BaseException:
                await self.close()
                raise
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
        self._opened = loop.create_future()
        self._state = "running"
        _STARTED.add(self)
        # in a context of its own: the sends are nobody's request (not the span or context vars of the first record())
        self._runner = contextvars.Context().run(loop.create_task, self._run(), name="aiopersonalize_events-recorder")
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
        _refuse_if_inherited(self)
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
        # pending, this event counted in: the spool is asked whether it is full only near its bound
        if (
            self._recorded - self._sent - self._failed - self._dropped > self._unchecked
            and self._full()
            and not self._make_room(event)
        ):
            return False
        if self._durable and event.event_id is None:  # the id goes to disk with the event: a resend is de-duplicated
            event = _copy_with_id(event, self._next_id())
        self._append(event, session_id, user_id)
        return True

    async def put(self, event: Event, *, session_id: str, user_id: str | None = None) -> None:
        """Queue one event, waiting for room when the queue is full (whatever ``overflow`` says).

        With a durable spool it returns once the event is durable (on disk),
        and raises the spool's ``SpoolError`` when it could not be kept (the
        event is then counted as failed and handed to ``on_failure``).
        Raises ``RecorderClosedError`` when the recorder is closed, without
        counting the event.
        """
        _refuse_if_inherited(self)
        self._check_loop()
        if self._state == "new":
            self._start()
        while self._state == "running" and self._spool.full():
            assert self._room is not None
            self._room.clear()
            await self._room.wait()
        if self._state != "running":
            raise RecorderClosedError("the recorder is closed")
        self.record(event, session_id=session_id, user_id=user_id)
        if self._durable:
            await self._spool.sync()

    def _make_room(self, event: Event) -> bool:
        """The queue is full: apply the overflow policy. True when ``event`` may now be queued."""
        if self._overflow == "drop_oldest":
            while True:
                oldest = self._spool.pop_oldest()
                if oldest is None:
                    break
                self._drop(oldest, "queue full (dropped oldest)")
                if not self._spool.full():
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

    # -- what the spool tells us (SpoolListener), on the loop thread --------------------

    def spool_ready(self) -> None:
        """The spool has batches to take: wake the background task."""
        self._poke()

    def spool_recovered(self, count: int) -> None:
        """The spool took over ``count`` events an earlier process left: count them in."""
        self._recorded += count
        self._recovered += count
        log.info("event recorder: %d event(s) recovered from the spool", count)
        self._poke()

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        """The spool could not keep events it had accepted: they failed for good."""
        n = len(events)
        self._failed += n
        log.error("event recorder: the spool could not keep %d event(s): %s; %d failed so far", n, error, self._failed)
        if self._room is not None and not self._spool.full():
            self._room.set()
        if self._on_failure is not None:
            self._call_back("on_failure", self._on_failure, list(events), error)

    def spool_handed_off(self, count: int) -> None:
        """The spool handed ``count`` events on to a stream that others send from: sent, as far as we are concerned."""
        self._sent += count
        if self._room is not None and not self._spool.full():
            self._room.set()

    def _enqueue(self, spooled: SpoolBatch) -> None:
        assert self._loop is not None
        batch = _Batch(spooled, self._loop.create_future())
        self._unsettled.add(batch)
        self._delivery.submit(batch)

    def _poke(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take_batches(self, *, flush: bool) -> None:
        """Take the spool's ready batches (every group, full or not, when ``flush``) and hand them to the engine."""
        for spooled in self._spool.take(flush=flush):
            self._enqueue(spooled)

    def _refill(self) -> None:
        """The engine has no batch ready for a sender whose call ended: take the spool's full groups."""
        if self._state != "closed":
            self._take_batches(flush=False)

    # -- the background task ----------------------------------------------------

    async def _open_spool(self) -> bool:
        """Open the spool; on failure, say so once and stop (the spool reports the events it held as lost)."""
        assert self._opened is not None
        try:
            await self._spool.open(self, tracking_id=self._tracking_id)
        except asyncio.CancelledError:
            if not self._opened.done():
                self._opened.cancel()
            if self._state == "running":
                self._abandoned()
            raise
        except Exception as exc:
            error = exc if isinstance(exc, PersonalizeEventsError) else SpoolError(f"the spool could not open: {exc}")
            log.error("event recorder: %s; the recorder is closed, later events are dropped", error)
            self._state = "closed"
            if self._room is not None:
                self._room.set()
            if not self._opened.done():
                self._opened.set_exception(error)
                self._opened.exception()  # retrieved here: a lazily started recorder has nobody awaiting it
            return False
        if not self._opened.done():
            self._opened.set_result(None)
        return True

    async def _run(self) -> None:
        """The background task: open the spool, then hand its batches to the engine, every group each interval."""
        if not await self._open_spool():
            return
        loop = asyncio.get_running_loop()
        clock: Clock = self._clock or loop
        next_tick = clock.time() + self._flush_interval
        while True:
            try:
                now = clock.time()
                if self._flush_now or now >= next_tick:
                    self._flush_now = False
                    self._take_batches(flush=True)
                    next_tick = now + self._flush_interval
                else:
                    self._take_batches(flush=False)
                if self._state == "closed":
                    return
                waiter = self._waiter = loop.create_future()
                timer = clock.call_at(next_tick, _wake, waiter)
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

    def _next_id(self) -> str:
        """A random UUID (version 4, as 32 hex digits) from the recorder's pool, made ``_IDS_AT_ONCE`` at a time."""
        if not self._ids:
            self._ids = _new_ids()
        return self._ids.pop()

    def _with_ids(self, events: list[Event]) -> list[Event]:
        """The events, each one without an id copied with a random UUID (version 4, as 32 hex digits).

        A batch keeps these ids when it is sent again, so the service counts a
        resent event once. The copies are not validated again, and the ids come
        from the recorder's pool, made ``_IDS_AT_ONCE`` at a time.
        """
        given: list[Event] = []
        for event in events:
            if event.event_id is None:
                event = _copy_with_id(event, self._next_id())
            given.append(event)
        return given

    async def _send(self, batch: _Batch) -> None:
        """The engine's send: one ``put_events`` call for a batch (its events get their ids first)."""
        events = batch.events = self._with_ids(batch.events)
        await self._client.put_events(
            tracking_id=self._tracking_id, session_id=batch.session_id, event_list=events, user_id=batch.user_id
        )

    def _settle(self, batch: _Batch, error: PersonalizeEventsError | None) -> None:
        """The batch leaves the spool: sent (``error`` None) or failed for good (a durable spool keeps it dead)."""
        if batch not in self._unsettled:
            return
        self._unsettled.discard(batch)
        n = len(batch.events)
        spooled = batch.spooled
        spooled.events = batch.events
        if error is None:
            self._sent += n
            self._spool.ack(spooled)
        else:
            self._failed += n
            self._spool.fail(spooled, _reason(error))
        if not batch.done.done():
            batch.done.set_result(None)
        if self._room is not None and not self._spool.full():
            self._room.set()

    def _give_up(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        """The recorder stops with ``batch`` unsent: a durable spool keeps it for the next start; else it fails."""
        if not self._durable:
            self._settle_failed(batch, error)
            return
        if batch not in self._unsettled:
            return
        self._unsettled.discard(batch)
        spooled = batch.spooled
        spooled.events = batch.events
        self._spool.release(spooled)  # still pending: in the spool, for the next start
        if not batch.done.done():
            batch.done.set_result(None)

    def _settle_failed(self, batch: _Batch, error: PersonalizeEventsError) -> None:
        if batch not in self._unsettled:
            return
        before = self._failed
        self._settle(batch, error)
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
        """Give up every unsent event, now (no await): queued, waiting and in flight.

        With the memory spool they fail (to ``on_failure``); a durable spool
        keeps them, taken or not, for the next start.
        """
        self._stop_error = error
        self._delivery.abandon()  # queued and waiting: unsent now; calls in flight: cancelled (unsent when they end)
        if not self._durable:
            self._take_batches(flush=True)  # the engine reports them unsent at once
        for batch in list(self._unsettled):
            self._give_up(batch, error)

    def _abandoned(self) -> None:
        """The loop is ending with the recorder still open (no ``close()``): say so, and account for the rest."""
        self._state = "closed"
        if self._room is not None:
            self._room.set()
        if self._pending and self._durable:
            log.error(
                "event recorder: its event loop ended without close(); %d event(s) were not delivered "
                "and stay in the spool for the next start (use `async with` or await close())",
                self._pending,
            )
        elif self._pending:
            log.error(
                "event recorder: its event loop ended without close(); %d event(s) were not delivered "
                "and are counted as failed (use `async with` or await close())",
                self._pending,
            )
        self._fail_everything(RecorderClosedError("the event loop ended before the recorder was closed"))

    # -- flush and close ----------------------------------------------------------

    async def flush(self) -> None:
        """Send every event recorded so far and wait until each is sent or failed.

        With a durable spool this includes what it recovered (as far as its
        memory window holds; the rest follow as room frees up).
        """
        self._check_loop()
        if self._state not in ("running", "closing"):
            return
        if self._opened is not None and not self._opened.done():
            await asyncio.wait([self._opened])
        if self._hands_off:  # a spool that others send from (a stream): flushed once it has every event
            with contextlib.suppress(SpoolError):  # what it could not keep was reported as failed
                await self._spool.sync()
            return
        target = self._pending
        settled = self._sent + self._failed + self._dropped
        while self._state in ("running", "closing"):
            self._take_batches(flush=True)
            waiting = [b.done for b in self._unsettled]
            self._flush_now = True
            self._poke()
            if not waiting:
                return
            # wait(), not gather(): cancelling this flush must not cancel the batches' futures,
            # which close() waits on to drain
            await asyncio.wait(waiting)
            if not self._durable or self._sent + self._failed + self._dropped - settled >= target:
                return

    async def close(self, timeout: float | None = None) -> None:
        """Stop intake, send what is queued, and wait at most ``timeout`` seconds (default ``close_timeout``).

        The deadline bounds everything: delivery, retries and the async
        ``on_failure``/``on_drop`` callbacks; events still unsent at the
        deadline go to ``on_failure`` with a ``RecorderClosedError`` (with a
        durable spool they stay in the spool instead, for the next start),
        and callbacks still running then are cancelled (and logged). Then the
        spool closes (a durable one writes what it holds first; it gets at
        least ``SPOOL_CLOSE_TIME`` seconds for that). Idempotent; never
        raises. If the caller is cancelled meanwhile, the recorder stops at
        once (unsent events go to ``on_failure``, or stay in a durable spool)
        and the cancellation is passed on.
        """
        if self in _INHERITED:
            return  # started before os.fork(): its queue, task and loop are the parent's, not ours to close
        loop = self._check_loop()
        if self._closed is not None:
            await asyncio.shield(self._closed)
            return
        self._closed = loop.create_future()
        limit = timeout if timeout is not None else self._close_timeout
        self._deadline = loop.time() + limit
        self._delivery.deadline = (self._clock or loop).time() + limit  # no re-send after it
        try:
            try:
                await self._close(limit, loop)
            except asyncio.CancelledError:
                # the caller was cancelled while we drained: stop at once, so that nothing keeps running and
                # every unsent event reaches on_failure, then let the cancellation through (shielded: a second
                # cancel cannot cut the stop short)
                error = RecorderClosedError("close() was cancelled with events undelivered")
                await asyncio.shield(self._stop(error, 0))
                await asyncio.shield(self._spool_closer(loop))
                raise
            except Exception:
                log.exception("event recorder close failed; pending events were failed")
            await asyncio.shield(self._spool_closer(loop))
        finally:
            self._state = "closed"
            if self._room is not None:
                self._room.set()
            if not self._closed.done():
                self._closed.set_result(None)

    def _spool_closer(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        """The one task closing the spool (kept here: a shielded task must not be collected mid-way)."""
        if self._closing_spool is None:
            self._closing_spool = loop.create_task(self._close_spool(loop))
        return self._closing_spool

    async def _close_spool(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the spool once, within what is left of the deadline but at least ``SPOOL_CLOSE_TIME``."""
        if self._opened is None:
            return
        assert self._deadline is not None
        if self._hands_off and not self._opened.done():  # closed before the task ran: open so close() hands off
            await self._open_spool()
        limit = max(SPOOL_CLOSE_TIME, self._deadline - loop.time())
        try:
            await asyncio.wait_for(self._spool.close(), limit)
        except asyncio.TimeoutError:
            log.error("event recorder: the spool did not close within %.1fs", limit)
        except Exception:
            log.exception("event recorder: the spool failed to close")
        if self._durable and self._pending:
            log.warning("event recorder closed; %d event(s) stay in the spool for the next start", self._pending)

    async def _close(self, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._state == "new":
            self._state = "closed"
            return
        if self._state == "closed":  # the loop it ran in ended; nothing is left to send
            return
        self._state = "closing"
        if self._room is not None:
            self._room.set()  # wake put() callers: they raise RecorderClosedError
        self._take_batches(flush=True)
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
        self._fail_everything(error)
        await self._delivery.stop()  # the calls in flight were cancelled: wait for them to end
        callbacks = list(self._callbacks)
        if callbacks:
            _, late = await asyncio.wait(callbacks, timeout=callback_time) if callback_time > 0 else (set(), callbacks)
            if late:
                for task in late:
                    task.cancel()
                await asyncio.wait(late)
                log.error("event recorder: %d callback(s) had not finished at the close deadline; cancelled", len(late))

    def __del__(self) -> None:
        # getattr: a TypeError while binding the arguments (an unknown keyword) leaves even _state unset
        if getattr(self, "_state", None) in ("running", "closing") and self._pending:
            warnings.warn(
                f"EventRecorder garbage-collected with {self._pending} pending event(s); use `async with` or close()",
                ResourceWarning,
                stacklevel=1,
            )


_STARTED: Final[weakref.WeakSet[EventRecorder]] = weakref.WeakSet()
_INHERITED: Final[list[EventRecorder]] = []
"""Recorders a forked child inherited started: refused there, kept (never collected or closed) in the child."""


def _refuse_if_inherited(recorder: EventRecorder) -> None:
    if _INHERITED and recorder in _INHERITED:
        raise RecorderStateError(
            "this EventRecorder was started before os.fork(): its queue and background task stay with the parent "
            "process; create (or start) the recorder in each child, e.g. in the app's startup or lifespan hook"
        )


def _after_fork_in_child() -> None:
    """A recorder started before the fork (running, or since closed) belongs to the parent: every use says so."""
    for recorder in list(_STARTED):
        recorder._thread = None  # off record()'s fast path, onto the path that refuses
        _INHERITED.append(recorder)
    _STARTED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
