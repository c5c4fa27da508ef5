"""EventRecorder: keep events in a spool and send them to PutEvents in the background.

``record()`` is synchronous and cheap: it checks the event's session and user
(the event itself was checked when it was made), gives it an ``eventId`` when
the spool outlives the process, hands it to the spool (``_spool``: the memory
spool by default, grouping by (session, user) with the package's one
``Grouper``; or a durable one such as ``SqliteSpool``), and returns. One
background task (started on first use, inside the running loop) opens the
spool and then feeds the package's one delivery engine (``_delivery``) with
the spool's batches: full groups of ten at once, every group each
``flush_interval``; at most ``max_concurrency`` calls at once, with the
client's ``RetryPolicy`` (transient failures sent again after its wait,
``Retry-After`` honoured, the client-wide budget, one probe at a time when it
is empty). A set-up error (no credentials, credentials the service rejects,
no permission, an unknown tracker, the wrong region) is not the events' fault:
they are held (counted in ``pending``, bounded by ``max_queue_size`` or the
spool's limits), logged once at ERROR with what to fix, and sent once a call
gets through; at the close deadline they are unsent (a durable spool keeps
them). What the service refuses for good (``InvalidInputException``) goes to
``on_failure``.

Where each concern lives (imports point down this list, never back up):

- ``_recorder`` (this module): intake (``record``/``put``), event ids,
  overflow (``drop_newest``/``drop_oldest``/``block``), the life cycle
  (start, ``flush``, ``close`` within its deadline, the loop ending without
  ``close()``, ``fork()``);
- ``_feeder``: the background loop taking the spool's batches to the engine;
- ``_ledger``: the counters (``pending`` derived: ``recorded == sent + failed
  + dropped + pending`` at every moment, by construction), the batches out,
  and what the engine (``Outcomes``) and the spool (its listener) say of
  them: ack, dead letter, release for the next start, lost, unreadable;
- ``_callbacks``: the user's ``on_failure``/``on_drop``, run safely and
  bounded by the close deadline, in one place.

Events recovered from a durable spool count in ``recorded`` (and in
``recovered``). The recorder belongs to the event loop it started in;
``record()`` may be called from other threads (it hands the event over to
that loop thread-safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal, Protocol, TypeAlias

from . import _limits as L
from . import _operations as ops
from . import _telemetry
from ._batching import Rate, _limiter
from ._callbacks import Callbacks
from ._clock import Clock
from ._feeder import Feeder
from ._ids import IdPool, copy_with_id
from ._ledger import Batch, FailureCallback, Ledger, RecorderClosedError, RecorderStats, Tally
from ._retry import RetryPolicy
from ._shapes import Event
from ._shutdown import Shutdown
from ._validators import check_positive_int, check_text
from .errors import PersonalizeEventsError, ValidationError
from .spool import MemorySpool, Spool, SpoolError

__all__ = [
    "DropCallback",
    "EventRecorder",
    "FailureCallback",
    "Overflow",
    "RecorderClosedError",
    "RecorderStateError",
    "RecorderStats",
    "SpoolOption",
]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

Overflow = Literal["drop_newest", "drop_oldest", "block"]
DropCallback = Callable[[Event, str], "Awaitable[None] | None"]
_OVERFLOWS: Final = ("drop_newest", "drop_oldest", "block")
_ID_MAX: Final = L.ID_MAX

SpoolOption: TypeAlias = "Spool | str | os.PathLike[str] | None"
"""The recorder's ``spool``: a ``Spool``, a path (short for ``SqliteSpool(path)``), or None for memory."""


class EventSender(Protocol):
    """What the recorder needs of a client: the public ``put_events`` and the shared retry policy."""

    retry_policy: RetryPolicy

    async def put_events(
        self, *, tracking_id: str, session_id: str, event_list: Sequence[Event], user_id: str | None = None
    ) -> object:
        """Send 1 to 10 events of one session in one call."""


class RecorderStateError(PersonalizeEventsError, RuntimeError):
    """The recorder was used where it cannot work: from another event loop than the one it started in.

    A recorder (like its client) belongs to one event loop. ``record()`` from
    a thread other than the loop's is fine once the recorder has started.
    """


def _seconds(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _check_options(
    tracking_id: str,
    flush_interval: float,
    max_queue_size: int,
    overflow: str,
    max_concurrency: int,
    close_timeout: float,
    clock: object,
    **callbacks: object,
) -> None:
    """Refuse a bad option with a ``ValidationError`` naming it, before anything starts."""
    check_text("tracking_id", tracking_id, _ID_MAX)
    if not (_seconds(flush_interval) and flush_interval > 0):
        raise ValidationError("flush_interval", "must be a positive number of seconds")
    check_positive_int("max_queue_size", max_queue_size)
    if overflow not in _OVERFLOWS:
        raise ValidationError("overflow", f"must be one of {', '.join(_OVERFLOWS)}")
    check_positive_int("max_concurrency", max_concurrency)
    for name, callback in callbacks.items():  # on_failure, on_drop
        if callback is not None and not callable(callback):
            raise ValidationError(name, "must be callable")
    if not (_seconds(close_timeout) and close_timeout >= 0):
        raise ValidationError("close_timeout", "must be a number of seconds of at least 0")
    if clock is not None and not isinstance(clock, Clock):
        raise ValidationError("clock", "must have time() and call_at(when, callback, *args), as an event loop has")


def _choose_spool(spool: SpoolOption, max_queue_size: int) -> Spool:
    """The ``spool`` option as a ``Spool``: memory when None, ``SqliteSpool`` for a path."""
    if spool is None:
        return MemorySpool(max_events=max_queue_size)
    if isinstance(spool, (str, os.PathLike)):
        from .spool.sqlite import SqliteSpool

        return SqliteSpool(spool)
    if isinstance(spool, Spool):
        return spool
    raise ValidationError("spool", f"must be a Spool, a path or None, not {type(spool).__name__}")


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
        _check_options(
            tracking_id, flush_interval, max_queue_size, overflow, max_concurrency, close_timeout, clock,
            on_failure=on_failure, on_drop=on_drop,
        )  # fmt: skip
        chosen = self._spool = _choose_spool(spool, max_queue_size)
        self._durable = bool(chosen.durable)
        self._hands_off = bool(getattr(chosen, "hands_off", False))
        self._full = chosen.full  # bound once: record() calls them for every event
        self._append = chosen.append
        # below this many pending events the spool cannot be full: the memory spool holds exactly the
        # pending events and is bounded by max_queue_size, so record() asks it only near its bound
        self._unchecked = max_queue_size if spool is None else 0
        self._ids = IdPool()
        self._client = client
        self._tracking_id = tracking_id
        self._overflow = overflow
        self._on_drop = on_drop
        self._close_timeout = float(close_timeout)
        self._clock: Clock | None = clock  # None: the event loop's
        self._tally = Tally()
        self._callbacks = Callbacks(log)
        self._ledger = Ledger(chosen, self._tally, self._callbacks, on_failure, lambda: self._feeder.poke())
        self._feeder = Feeder(
            chosen,
            self._ledger,
            self._send,
            policy=client.retry_policy,
            max_concurrency=max_concurrency,
            limiter=_limiter(ops.PUT_EVENTS, requests_per_second),
            clock=clock,
            interval=float(flush_interval),
            closed=lambda: self._state == "closed",
        )
        self._delivery = self._feeder.delivery
        self._shutdown = Shutdown(chosen, self._feeder, self._ledger, self._callbacks)
        self._opened: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._room: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._deadline: float | None = None
        self._closed: asyncio.Future[None] | None = None
        _telemetry.watch_recorder(self)  # weakly, for the gauges of aiopersonalize_events.otel

    def __repr__(self) -> str:
        return f"EventRecorder(tracking_id={self._tracking_id!r}, state={self._state}, stats={self.stats})"

    @property
    def _pending(self) -> int:
        """Events recorded and not yet sent, failed or dropped: derived, so the invariant holds by construction."""
        return self._tally.pending

    @property
    def stats(self) -> RecorderStats:
        """A snapshot of the counters; ``recorded == sent + failed + dropped + pending``."""
        return self._tally.stats()

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
        self._loop = self._feeder.loop = self._callbacks.loop = loop
        self._thread = threading.get_ident()
        self._room = self._ledger.room = asyncio.Event()
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
        self._tally.recorded += 1
        self._drop(event, "closed (the recorder's event loop is not running)")
        return False

    def _take(self, event: Event, session_id: str, user_id: str | None) -> bool:
        tally = self._tally
        tally.recorded += 1
        if self._state != "running":
            if self._state != "new":
                self._drop(event, "closed")
                return False
            self._start()
        # pending, this event counted in: the spool is asked whether it is full only near its bound
        if (
            tally.recorded - tally.sent - tally.failed - tally.dropped > self._unchecked
            and self._full()
            and not self._make_room(event)
        ):
            return False
        if self._durable and event.event_id is None:  # the id goes to disk with the event: a resend is de-duplicated
            event = copy_with_id(event, self._ids.next())
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
        tally = self._tally
        tally.dropped += 1
        if tally.dropped == 1 or tally.dropped % 1000 == 0:
            log.warning("event recorder dropped an event (%s); %d dropped so far", reason, tally.dropped)
        if self._on_drop is not None:
            self._callbacks.call("on_drop", self._on_drop, event, reason)

    # -- sending --------------------------------------------------------------

    async def _send(self, batch: Batch) -> None:
        """The engine's send: one ``put_events`` call for a batch (its events get their ids first)."""
        events = batch.events = self._ids.with_ids(batch.events)
        await self._client.put_events(
            tracking_id=self._tracking_id, session_id=batch.session_id, event_list=events, user_id=batch.user_id
        )

    # -- the background task ----------------------------------------------------

    async def _open_spool(self) -> bool:
        """Open the spool; on failure, say so once and stop (the spool reports the events it held as lost)."""
        assert self._opened is not None
        try:
            await self._spool.open(self._ledger, tracking_id=self._tracking_id)
        except asyncio.CancelledError:
            if not self._opened.done():
                self._opened.cancel()
            if self._state == "running":
                self._abandoned()
            raise
        except Exception as exc:
            error = exc if isinstance(exc, PersonalizeEventsError) else SpoolError(f"the spool could not open: {exc}")
            log.error("event recorder: %s; the recorder is closed, later events are dropped", error)
            self._set_closed()
            if not self._opened.done():
                self._opened.set_exception(error)
                self._opened.exception()  # retrieved here: a lazily started recorder has nobody awaiting it
            return False
        if not self._opened.done():
            self._opened.set_result(None)
        return True

    async def _run(self) -> None:
        """The background task: open the spool, then feed the engine until closed."""
        if not await self._open_spool():
            return
        try:
            await self._feeder.run()
        except asyncio.CancelledError:
            if self._state == "running":
                self._abandoned()
            raise

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self._state == "running":  # cancelled before it ever ran (the loop is ending)
                self._abandoned()
            return
        if task.exception() is None:
            return
        # cannot happen by design; if it does, fail everything pending loudly rather than lose it
        log.error("event recorder task died: %r; failing pending events", task.exception())
        self._shutdown.give_up(RecorderClosedError("the recorder's background task died"))

    def _abandoned(self) -> None:
        """The loop is ending with the recorder still open (no ``close()``): say so, and account for the rest."""
        self._set_closed()
        pending = self._pending
        if pending:
            log.error(
                "event recorder: its event loop ended without close(); %d event(s) were not delivered "
                "and %s (use `async with` or await close())",
                pending,
                "stay in the spool for the next start" if self._durable else "are counted as failed",
            )
        self._shutdown.give_up(RecorderClosedError("the event loop ended before the recorder was closed"))

    def _set_closed(self) -> None:
        """Closed: intake refuses from now on, and ``put()`` callers waiting for room wake (and raise)."""
        self._state = "closed"
        if self._room is not None:
            self._room.set()

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
        await self._feeder.flush(lambda: self._state in ("running", "closing"), durable=self._durable)

    async def close(self, timeout: float | None = None) -> None:
        """Stop intake, send what is queued, and wait at most ``timeout`` seconds (default ``close_timeout``).

        The deadline bounds everything: delivery, retries, the async
        ``on_failure``/``on_drop`` callbacks and the spool's own close (a
        durable spool gets the last fifth of the time, at most a second, to
        write what is unsent; a spool whose ``close()`` takes no ``timeout=``
        gets at least ``LEGACY_CLOSE_TIME`` seconds); events still unsent at
        the deadline go to ``on_failure`` with a ``RecorderClosedError`` (with
        a durable spool they stay in the spool instead, for the next start;
        what a ``RedisStreamSpool`` could not write by then is its ``unsent()``),
        and callbacks still running then are cancelled (and logged).
        Idempotent; never raises. If the caller is cancelled meanwhile, the
        recorder stops at once (unsent events go to ``on_failure``, or stay
        in a durable spool) and the cancellation is passed on.
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
                await asyncio.shield(
                    self._stop(RecorderClosedError("close() was cancelled with events undelivered"), 0)
                )
                await self._close_spool(loop)
                raise
            except Exception:
                log.exception("event recorder close failed; pending events were failed")
            await self._close_spool(loop)
        finally:
            self._set_closed()
            if not self._closed.done():
                self._closed.set_result(None)

    async def _close_spool(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the spool (one task, shielded), within what is left of the deadline; not if it never opened."""
        if self._opened is not None:
            assert self._deadline is not None
            reopen = self._open_spool if self._hands_off and not self._opened.done() else None
            await asyncio.shield(self._shutdown.close_spool(loop, self._deadline, reopen))

    async def _close(self, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._state in ("new", "closed"):  # never started, or the loop it ran in ended: nothing to send
            self._state = "closed"
            return
        self._state = "closing"
        if self._room is not None:
            self._room.set()  # wake put() callers: they raise RecorderClosedError
        assert self._deadline is not None
        drained_by = self._shutdown.drain_deadline(self._deadline, timeout)
        await self._shutdown.drain(drained_by, loop)
        await self._stop(
            RecorderClosedError(f"the recorder closed after {timeout:g}s with events undelivered"),
            max(0.0, drained_by - loop.time()),
        )

    async def _stop(self, error: RecorderClosedError, callback_time: float) -> None:
        """Stop: end the background loop, fail every event still unsent, give callbacks what time is left."""
        self._state = "closed"
        runner, self._runner = self._runner, None  # a finished task keeps its frames (and so this recorder) alive
        await self._shutdown.stop(error, runner, callback_time)

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
