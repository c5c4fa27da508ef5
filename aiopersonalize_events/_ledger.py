"""The recorder's books: its counters, the batches out, and what the engine and the spool say of them.

``Tally`` holds the counters; ``pending`` is derived from the others, so
``recorded == sent + failed + dropped + pending`` holds by construction.
``Ledger`` keeps the batches taken from the spool and not yet settled, and
hears how each ended: from the delivery engine (it is the engine's
``Outcomes``: sent, refused, held, unsent) and from the spool (it is the
spool's listener: ready, recovered, lost, handed off, unreadable). A batch
leaves the spool once: ``ack`` when sent, ``fail`` when refused for good (a
durable spool keeps it as a dead letter), ``release`` when the recorder
stops with it unsent and the spool is durable (it stays for the next
start). What fails for good goes to ``on_failure`` through ``Callbacks``.
Nothing here imports the recorder: it hands the ledger what it needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import attrs

from ._callbacks import Callbacks
from ._shapes import Event
from .errors import Fault, PersonalizeEventsError
from .spool import Spool, SpoolBatch

__all__ = ["Batch", "FailureCallback", "Ledger", "RecorderClosedError", "RecorderStats", "Tally"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

FailureCallback = Callable[[list[Event], PersonalizeEventsError], "Awaitable[None] | None"]


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
    process left; they are counted in ``recorded`` too. Stored events a
    durable spool found it cannot read back (damaged rows, kept there as
    dead letters) count in ``recorded`` and ``failed``.
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


class Tally:
    """The recorder's counters; ``pending`` is what the others leave."""

    __slots__ = ("dropped", "failed", "recorded", "recovered", "retried", "sent")

    def __init__(self) -> None:
        self.recorded = self.sent = self.failed = self.dropped = self.retried = self.recovered = 0

    @property
    def pending(self) -> int:
        """Events recorded and not yet sent, failed or dropped."""
        return self.recorded - self.sent - self.failed - self.dropped

    def stats(self) -> RecorderStats:
        """A snapshot of the counters."""
        return RecorderStats(
            self.recorded, self.sent, self.failed, self.dropped, self.pending, self.retried, self.recovered
        )


class Batch:
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


def _reason(error: PersonalizeEventsError) -> str:
    """Why a batch failed for good, as a dead letter keeps it: the error's message, led by its class name."""
    text = str(error)
    name = type(error).__name__
    return text if text.startswith(name) else f"{name}: {text}"


class Ledger:
    """The batches out and how each ended (the engine's ``Outcomes``, the spool's listener); see the module."""

    __slots__ = ("_callbacks", "_durable", "_on_failure", "_spool", "_wake", "room", "stop_error", "tally", "unsettled")

    def __init__(
        self,
        spool: Spool,
        tally: Tally,
        callbacks: Callbacks,
        on_failure: FailureCallback | None,
        wake: Callable[[], None],
    ) -> None:
        self._spool = spool
        self._durable = bool(spool.durable)
        self.tally = tally
        self._callbacks = callbacks
        self._on_failure = on_failure
        self._wake = wake  # the recorder's background task: the spool has batches
        self.unsettled: set[Batch] = set()
        self.room: asyncio.Event | None = None  # set when the spool has room (put() waits on it); None until started
        self.stop_error: PersonalizeEventsError | None = None  # once stopping: what unsent batches fail with

    def free_room(self) -> None:
        """Wake ``put()`` callers when the spool has room again."""
        if self.room is not None and not self._spool.full():
            self.room.set()

    def track(self, spooled: SpoolBatch, done: asyncio.Future[None]) -> Batch:
        """A batch taken from the spool, out until settled."""
        batch = Batch(spooled, done)
        self.unsettled.add(batch)
        return batch

    # -- what the engine tells (Outcomes) --------------------------------------------------------

    def sent(self, batch: Batch) -> None:
        """The service accepted ``batch``."""
        self.settle(batch, None)

    def refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """The service refused ``batch``'s records for good."""
        self.settle_failed(batch, error)

    def held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """``batch`` will be sent again: one more call resent."""
        self.tally.retried += 1

    def unsent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        """The engine stopped with ``batch`` undelivered: it stays in a durable spool, else it fails."""
        stop_error = self.stop_error
        if error is not None and error.fault is Fault.SETUP:  # held on a set-up error: closed before delivery
            closed = RecorderClosedError(f"{stop_error or 'the recorder closed before delivery'} (held: {error})")
            closed.__cause__ = error
            self.give_up(batch, closed)
        elif stop_error is not None:
            self.give_up(batch, stop_error)
        elif error is not None:
            self.give_up(batch, error)
        else:  # stopped mid-call
            self.give_up(batch, RecorderClosedError("the recorder closed before delivery"))

    # -- settling ------------------------------------------------------------------------------------

    def settle(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        """The batch leaves the spool: sent (``error`` None) or failed for good (a durable spool keeps it dead)."""
        if batch not in self.unsettled:
            return
        self.unsettled.discard(batch)
        n = len(batch.events)
        spooled = batch.spooled
        spooled.events = batch.events
        if error is None:
            self.tally.sent += n
            self._spool.ack(spooled)
        else:
            self.tally.failed += n
            self._spool.fail(spooled, _reason(error))
        if not batch.done.done():
            batch.done.set_result(None)
        self.free_room()

    def give_up(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """The recorder stops with ``batch`` unsent: a durable spool keeps it for the next start; else it fails."""
        if not self._durable:
            self.settle_failed(batch, error)
            return
        if batch not in self.unsettled:
            return
        self.unsettled.discard(batch)
        spooled = batch.spooled
        spooled.events = batch.events
        self._spool.release(spooled)  # still pending: in the spool, for the next start
        if not batch.done.done():
            batch.done.set_result(None)

    def give_up_all(self, error: PersonalizeEventsError) -> None:
        """Every batch still out is given up with ``error`` (kept by a durable spool, else failed)."""
        for batch in list(self.unsettled):
            self.give_up(batch, error)

    def settle_failed(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """``batch`` failed for good: settled, logged (the first, then one line per 1000), given to ``on_failure``."""
        if batch not in self.unsettled:
            return
        tally = self.tally
        before = tally.failed
        self.settle(batch, error)
        if before == 0 or before // 1000 != tally.failed // 1000:
            log.warning(
                "event recorder could not deliver %d event(s): %s; %d failed so far",
                len(batch.events),
                error,
                tally.failed,
            )
        if self._on_failure is not None:
            self._callbacks.call("on_failure", self._on_failure, list(batch.events), error)

    # -- what the spool tells (SpoolListener, HandOffListener), on the loop thread ----------------------

    def spool_ready(self) -> None:
        """The spool has batches to take: wake the background task."""
        self._wake()

    def spool_recovered(self, count: int) -> None:
        """The spool took over ``count`` events an earlier process left: count them in."""
        self.tally.recorded += count
        self.tally.recovered += count
        log.info("event recorder: %d event(s) recovered from the spool", count)
        self._wake()

    def spool_lost(self, events: Sequence[Event], error: PersonalizeEventsError) -> None:
        """The spool could not keep events it had accepted: they failed for good."""
        n = len(events)
        self.tally.failed += n
        log.error(
            "event recorder: the spool could not keep %d event(s): %s; %d failed so far", n, error, self.tally.failed
        )
        self.free_room()
        if self._on_failure is not None:
            self._callbacks.call("on_failure", self._on_failure, list(events), error)

    def spool_unreadable(self, count: int, *, taken_over: bool) -> None:
        """``count`` stored events could not be read back (damaged rows): dead letters in the spool, failed.

        ``taken_over``: found while taking over another process's rows, so not
        counted yet (they count in ``recorded`` too). A count only: the events
        cannot be read, so ``on_failure`` has nothing to receive.
        """
        tally = self.tally
        if taken_over:
            tally.recorded += count
        tally.failed += count
        log.error(
            "event recorder: %d stored event(s) could not be read back; kept as dead letters, %d failed so far",
            count,
            tally.failed,
        )
        self.free_room()

    def spool_handed_off(self, count: int) -> None:
        """The spool handed ``count`` events on to a stream that others send from: sent, as far as we are concerned."""
        self.tally.sent += count
        self.free_room()
