"""The ``Spool`` contract: the protocol every spool keeps, the batch both sides meet in, its listener and errors.

A spool holds events; the recorder decides when to send, retries, and
reports. Both sides meet in ``SpoolBatch``: up to ten events of one
(session, user), with the handles a spool needs to acknowledge or fail
them later.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Final, Protocol, runtime_checkable

from .._shapes import Event
from ..errors import PersonalizeEventsError

__all__ = [
    "GivesBackUnsent",
    "HandOffListener",
    "Spool",
    "SpoolBatch",
    "SpoolError",
    "SpoolListener",
    "SpoolStateError",
]

_NO_HANDLES: Final[tuple[Hashable, ...]] = ()


class SpoolError(PersonalizeEventsError):
    """A spool could not open, or could not keep an event (full disk, read-only file, corrupted database).

    At open, the message says what is wrong and what to do; at run time the
    events that could not be kept reach ``on_failure`` with this error and
    are counted in ``stats.failed``.
    """


class SpoolStateError(SpoolError):
    """The spool was used in a state that cannot work: opened twice, or used after ``close()``."""


class SpoolBatch:
    """Up to ten events of one (session, user) taken from a spool to be sent in one call.

    ``events`` are what the call sends (in a durable spool each already has
    its ``event_id``); ``handles`` are the spool's own references to them
    (row ids, stream entry ids; empty for the memory spool), opaque to the
    recorder; ``nbytes`` is what they count against the spool's ``max_bytes``.
    """

    __slots__ = ("events", "handles", "nbytes", "session_id", "user_id")

    def __init__(
        self,
        session_id: str,
        user_id: str | None,
        events: list[Event],
        handles: Sequence[Hashable] = _NO_HANDLES,
        nbytes: int = 0,
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.events = events
        self.handles = handles
        self.nbytes = nbytes

    def __repr__(self) -> str:  # ids are sensitive per the service model: counts only
        return f"SpoolBatch(<{len(self.events)} events>)"


class SpoolListener(Protocol):
    """What a spool tells its recorder. Every call is made on the recorder's event loop thread.

    A spool that reads stored rows back (``SqliteSpool``) also calls
    ``spool_unreadable(count, *, taken_over)`` when the listener has it:
    ``count`` stored events could not be read (damaged rows, kept as dead
    letters) and are failed for good; ``taken_over`` says they were found
    while taking over another process's rows (so never counted before). A
    count only: no event can be handed on. The recorder's listener has it.
    """

    def spool_ready(self) -> None:
        """``take()`` may now return batches it would not have returned before (a full group, recovered rows)."""

    def spool_recovered(self, count: int) -> None:
        """``count`` events left by an earlier (or a dead) process are now held here, to be offered by ``take()``."""

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        """Events ``append()`` accepted could not be kept (full disk, I/O error): they are failed for good.

        They will never be offered by ``take()``; the recorder counts them as
        failed and hands them to ``on_failure``.
        """


@runtime_checkable
class HandOffListener(SpoolListener, Protocol):
    """A listener that also takes events a spool hands on to others (a spool with ``hands_off`` needs one)."""

    def spool_handed_off(self, count: int) -> None:
        """``count`` events ``append()`` accepted have left for a stream that others send from (a Redis stream).

        Only a spool with ``hands_off`` true calls it (its ``take()`` offers
        no batch: forwarders send its events); the recorder counts them as
        sent, oldest first.
        """


@runtime_checkable
class Spool(Protocol):
    """Where a recorder keeps events from ``record()`` until the service accepted them: the contract.

    Life cycle. A spool serves one recorder (one ``tracking_id``) at a time,
    in one event loop. ``await open(listener, tracking_id=...)`` prepares it
    (files, connections, threads) and raises ``SpoolError`` with a clear
    message when it cannot (read-only path, newer schema, locked or corrupted
    store). ``append()`` may be called before ``open()`` has finished; such
    events are kept in memory until the spool is open (and reported through
    ``spool_lost`` if opening fails). ``await close()`` makes everything
    appended durable (when the spool is), gives back what is unsent for a
    later process, and releases resources; it is idempotent.

    Intake. ``append(event, session_id, user_id)`` is synchronous, cheap (a
    few microseconds at most: no I/O, no lock held for long) and callable
    only from the loop thread. The recorder calls ``full()`` first and applies
    its overflow policy, so ``append()`` itself never refuses. When
    ``durable`` is true every event appended already carries its
    ``event_id`` (the recorder gives one at ``record()`` time), so an event
    sent before a crash and again after it is de-duplicated by the service.
    ``await sync()`` returns once every event appended before the call is
    durable, or raises ``SpoolError`` when one of them could not be kept
    (those events are also reported through ``spool_lost``); in a spool that
    is not durable it returns at once.

    Delivery. ``take(flush=...)`` returns batches ready to send (no I/O):
    always the full groups (ten events of one session and user), and with
    ``flush=True`` every group held, full or not. Each event is in at most
    one batch out at a time. Every batch taken comes back exactly once:
    ``ack(batch)`` after the service's 200 (the events leave the spool),
    ``fail(batch, reason)`` when they failed for good (a durable spool keeps
    them as dead letters, with the reason, until exported or cleared), or
    ``release(batch)`` when the recorder stops before settling it (a durable
    spool keeps them for the next ``open()``, here or in another process; a
    memory spool forgets them). A spool may be shared by several processes
    (one path, one stream): what one process has taken is never offered to
    another while the first lives; what a dead process held is taken over by
    another, or by the next ``open()``, and reported through
    ``spool_recovered``.

    Counting and bounds. ``len(spool)`` is the number of events this spool
    holds for this recorder (appended or recovered, not yet acknowledged,
    failed, released or dropped: queued, out in a batch, or waiting on disk),
    and ``nbytes`` their size as the spool counts it (0 when it does not).
    ``full()`` says the next ``append()`` would exceed the spool's bounds;
    ``pop_oldest()`` removes and returns the oldest event not out in a batch
    (for a drop-oldest policy), or None.

    Handing off. A spool may hand its events on instead (``hands_off``
    true, e.g. ``RedisStreamSpool``): its ``take()`` never offers a batch,
    it tells the recorder through ``spool_handed_off`` as events leave for
    the stream (its listener is a ``HandOffListener``), and ``flush()``
    waits on its ``sync()``. Without the attribute a spool does not hand off.

    Giving back. A durable spool that may be left, at its close deadline,
    with events it never wrote (``RedisStreamSpool``: a round trip cut off)
    also keeps ``GivesBackUnsent``: its ``unsent()`` returns them, so the
    recorder can say how many are not kept and its user can record them
    again elsewhere. Without the method, every event pending at close is
    taken to stay in the spool for the next start.

    Threads. Everything above is called on the recorder's loop thread; a
    spool that does I/O does it elsewhere (a thread, the loop's own
    non-blocking I/O), and calls its listener back on the loop thread.
    """

    @property
    def durable(self) -> bool:
        """True when appended events outlive the process (the recorder then gives ids at ``record()``)."""
        ...

    @property
    def nbytes(self) -> int:
        """The size of the events held, as the spool counts it against ``max_bytes`` (0 when it does not)."""
        ...

    async def open(self, listener: SpoolListener, *, tracking_id: str) -> None:
        """Get ready for the recorder of ``tracking_id``; recover what earlier processes left."""
        ...

    def append(self, event: Event, session_id: str, user_id: str | None) -> None:
        """Keep one event (synchronous, cheap, loop thread only)."""
        ...

    def full(self) -> bool:
        """True when one more event would exceed the spool's bounds."""
        ...

    def pop_oldest(self) -> Event | None:
        """Remove and return the oldest event held that is not out in a batch, or None."""
        ...

    def take(self, *, flush: bool) -> list[SpoolBatch]:
        """The batches ready to send: full groups, and every group when ``flush``."""
        ...

    def ack(self, batch: SpoolBatch) -> None:
        """The service accepted ``batch``: forget its events."""
        ...

    def fail(self, batch: SpoolBatch, reason: str) -> None:
        """``batch`` failed for good: forget it, or keep it as dead letters with ``reason``."""
        ...

    def release(self, batch: SpoolBatch) -> None:
        """``batch`` was not settled and the recorder is stopping: keep it for a later process if durable."""
        ...

    async def sync(self) -> None:
        """Return once every event appended before this call is durable (at once if not durable)."""
        ...

    async def close(self) -> None:
        """Make appended events durable, give back what is unsent, release resources; idempotent."""
        ...

    def __len__(self) -> int:
        """The number of events held for this recorder."""
        ...


@runtime_checkable
class GivesBackUnsent(Protocol):
    """A spool that may not keep everything appended by its close deadline, and gives back what it did not keep.

    ``unsent()`` returns, oldest first, the events ``close()`` could not
    write by its deadline, as ``(event, session_id, user_id)``; empty until
    then. The recorder counts them as pending, never failed, and its close
    says how many are not kept (``RedisStreamSpool`` keeps this; a spool
    that writes everything it accepted, or keeps it in a file, need not).
    """

    def unsent(self) -> Sequence[tuple[Event, str, str | None]]:
        """The events ``close()`` could not write by its deadline, oldest first (empty until then)."""
        ...
