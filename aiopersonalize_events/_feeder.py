"""The recorder's sending side: the background loop that takes the spool's batches to the delivery engine.

A ``Feeder`` builds the recorder's ``Delivery`` (the package's one engine,
with the client's ``RetryPolicy``; the ``Ledger`` hears each outcome) and
feeds it: full groups of ten as soon as the spool has them (``poke()``
wakes the loop; a sender whose call ended takes the next full group itself
through ``refill()``), and every group, full or not, each
``flush_interval`` or when ``flush_now`` asks. Time comes from one
``Clock`` (the event loop's when None). The loop never dies: an error is
logged and the loop goes on. It knows nothing of intake or life cycle: the
recorder says when it is closed through the ``closed`` callable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from ._batching import AcquireLimit
from ._clock import Clock
from ._delivery import Delivery
from ._ledger import Batch, Ledger
from ._retry import RetryPolicy
from .spool import Spool

__all__ = ["Feeder"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Feeder:
    """Takes batches from ``spool`` to its ``delivery`` engine, each ``interval`` and when woken (see the module)."""

    def __init__(
        self,
        spool: Spool,
        ledger: Ledger,
        send: Callable[[Batch], Awaitable[object]],
        *,
        policy: RetryPolicy,
        max_concurrency: int,
        limiter: AcquireLimit | None,
        clock: Clock | None,
        interval: float,
        closed: Callable[[], bool],
        logger: logging.Logger = log,
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._clock = clock  # None: the event loop's
        self._interval = interval
        self._closed = closed
        self.delivery: Delivery[Batch] = Delivery(
            send,
            ledger,
            policy=policy,
            max_concurrency=max_concurrency,
            limiter=limiter,
            clock=clock,
            min_wait=interval,
            refill=self.refill,
            name="event recorder",
            logger=logger,
        )
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the recorder starts
        self.flush_now = False  # take every group at the next turn of the loop
        self._waiter: asyncio.Future[None] | None = None

    def poke(self) -> None:
        """Wake the loop: the spool has batches, or a flush is asked."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self, *, flush: bool) -> None:
        """Take the spool's ready batches (every group, full or not, when ``flush``) and hand them to the engine."""
        loop = self.loop
        assert loop is not None
        for spooled in self._spool.take(flush=flush):
            self.delivery.submit(self._ledger.track(spooled, loop.create_future()))

    def refill(self) -> None:
        """The engine has no batch ready for a sender whose call ended: take the spool's full groups."""
        if not self._closed():
            self.take(flush=False)

    async def flush(self, sending: Callable[[], bool], *, durable: bool) -> None:
        """Send every event held now and wait until each is settled, while ``sending()`` (the recorder is open).

        A durable spool may hold more than its memory window: what it reads
        back as room frees up is taken too, until as many events as were
        pending at the call are settled.
        """
        tally = self._ledger.tally
        target = tally.pending
        settled = tally.sent + tally.failed + tally.dropped
        while sending():
            self.take(flush=True)
            waiting = [b.done for b in self._ledger.unsettled]
            self.flush_now = True
            self.poke()
            if not waiting:
                return
            # wait(), not gather(): cancelling this flush must not cancel the batches' futures,
            # which close() waits on to drain
            await asyncio.wait(waiting)
            if not durable or tally.sent + tally.failed + tally.dropped - settled >= target:
                return

    async def run(self) -> None:
        """Feed the engine until the recorder is closed (or this task is cancelled)."""
        loop = asyncio.get_running_loop()
        clock: Clock = self._clock or loop
        next_tick = clock.time() + self._interval
        while True:
            try:
                now = clock.time()
                if self.flush_now or now >= next_tick:
                    self.flush_now = False
                    self.take(flush=True)
                    next_tick = now + self._interval
                else:
                    self.take(flush=False)
                if self._closed():
                    return
                waiter = self._waiter = loop.create_future()
                timer = clock.call_at(next_tick, _wake, waiter)
                try:
                    await waiter  # no wait_for: a cancellation always reaches this task (Python 3.11's may not)
                finally:
                    timer.cancel()
                    self._waiter = None
            except asyncio.CancelledError:
                raise
            except Exception:  # never die: log and go on
                log.exception("event recorder loop error; continuing")
                await asyncio.sleep(0.1)
