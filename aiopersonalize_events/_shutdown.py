"""How the recorder's sending side ends, every step within ``close()``'s deadline.

``Shutdown`` runs the steps the recorder's life cycle asks for, in order:
``drain`` (send what is queued, wait for the batches out until the drain
deadline), ``stop`` (end the background task, give up what is unsent: a
durable spool keeps it, else it fails to ``on_failure``; end the calls in
flight; give the async callbacks what is left), and ``close_spool`` (once,
with what is left of the deadline: a spool whose ``close()`` takes
``timeout=``, such as ``SqliteSpool``, is given it and bounds its own
writer, and is cut off ``SPOOL_GRACE`` seconds past it; one whose
``close()`` takes no deadline is given at least ``LEGACY_CLOSE_TIME``
seconds, since cutting such a close short could leave events neither
written nor reported). A durable
spool has unsent events to write once delivery stops, so the drain ends a
share of the time (``SPOOL_SHARE``, at most ``SPOOL_SHARE_MAX`` seconds)
before the deadline. The states (running, closing, closed) stay the
recorder's; nothing here imports it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from ._callbacks import Callbacks
from ._feeder import Feeder
from ._ledger import Ledger
from .errors import PersonalizeEventsError
from .spool import GivesBackUnsent, Spool

__all__ = ["LEGACY_CLOSE_TIME", "SPOOL_GRACE", "SPOOL_SHARE", "SPOOL_SHARE_MAX", "Shutdown"]

log: Final = logging.getLogger("aiopersonalize_events.recorder")

SPOOL_GRACE: Final = 0.5
"""Seconds past ``close()``'s deadline a spool gets to hand over (its last statement, its answer to the loop)."""
SPOOL_SHARE: Final = 0.2
"""The share of ``close()``'s time kept for a durable spool to write what is unsent (at most ``SPOOL_SHARE_MAX``)."""
SPOOL_SHARE_MAX: Final = 1.0
LEGACY_CLOSE_TIME: Final = 5.0
"""Seconds at least a spool whose ``close()`` takes no ``timeout=`` gets (it bounds its close by itself)."""


def _close_takes_timeout(spool: Spool) -> bool:
    """True when the spool's ``close()`` takes ``timeout=`` (``SqliteSpool`` does: it bounds its own writer)."""
    try:
        return "timeout" in inspect.signature(spool.close).parameters
    except (TypeError, ValueError):
        return False


class Shutdown:
    """The bounded end of a recorder's sending side: drain, stop, close the spool (see the module)."""

    __slots__ = ("_callbacks", "_closing_spool", "_durable", "_feeder", "_ledger", "_spool", "_with_timeout")

    def __init__(self, spool: Spool, feeder: Feeder, ledger: Ledger, callbacks: Callbacks) -> None:
        self._spool = spool
        self._durable = bool(spool.durable)
        self._with_timeout = _close_takes_timeout(spool)
        self._feeder = feeder
        self._ledger = ledger
        self._callbacks = callbacks
        self._closing_spool: asyncio.Task[None] | None = None

    def drain_deadline(self, deadline: float, timeout: float) -> float:
        """When draining ends for a close of ``timeout`` seconds due at ``deadline`` (earlier for a durable spool)."""
        return deadline - (min(SPOOL_SHARE * timeout, SPOOL_SHARE_MAX) if self._durable else 0.0)

    async def drain(self, until: float, loop: asyncio.AbstractEventLoop) -> None:
        """Hand every group to the engine and wait for the batches out, until ``until`` (loop time)."""
        self._feeder.take(flush=True)
        self._feeder.poke()
        waiting = [b.done for b in self._ledger.unsettled]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, until - loop.time()))

    def give_up(self, error: PersonalizeEventsError) -> None:
        """Give up every unsent event, now (no await): queued, waiting and in flight.

        With the memory spool they fail (to ``on_failure``); a durable spool
        keeps them, taken or not, for the next start.
        """
        self._ledger.stop_error = error
        self._feeder.delivery.abandon()  # queued, waiting: unsent now; in flight: cancelled (unsent when they end)
        if not self._durable:
            self._feeder.take(flush=True)  # the engine reports them unsent at once
        self._ledger.give_up_all(error)

    async def stop(
        self, error: PersonalizeEventsError, runner: asyncio.Task[None] | None, callback_time: float
    ) -> None:
        """End the background task, give up what is unsent, end the calls in flight, bound the callbacks."""
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        self.give_up(error)
        await self._feeder.delivery.stop()  # the calls in flight were cancelled: wait for them to end
        await self._callbacks.finish(callback_time)

    def close_spool(
        self, loop: asyncio.AbstractEventLoop, deadline: float, reopen: Callable[[], Awaitable[object]] | None
    ) -> asyncio.Task[None]:
        """The one task closing the spool (kept here: a shielded task must not be collected mid-way).

        ``reopen``: a spool that hands off, closed before it was opened, is
        opened first so that its close hands off what it holds.
        """
        if self._closing_spool is None:
            self._closing_spool = loop.create_task(self._close_spool(loop, deadline, reopen))
        return self._closing_spool

    async def _close_spool(
        self, loop: asyncio.AbstractEventLoop, deadline: float, reopen: Callable[[], Awaitable[object]] | None
    ) -> None:
        if reopen is not None:
            await reopen()
        limit = max(0.0, deadline - loop.time())
        spool = self._spool
        try:
            if self._with_timeout:
                await asyncio.wait_for(spool.close(timeout=limit), limit + SPOOL_GRACE)  # type: ignore[call-arg]
            else:
                limit = max(LEGACY_CLOSE_TIME, limit)
                await asyncio.wait_for(spool.close(), limit)
        except asyncio.TimeoutError:
            log.error("event recorder: the spool did not close within %.1fs", limit)
        except Exception:
            log.exception("event recorder: the spool failed to close")
        pending = self._ledger.tally.pending
        if not (self._durable and pending):
            return
        lost = min(pending, len(spool.unsent())) if isinstance(spool, GivesBackUnsent) else 0
        if pending > lost:
            log.warning("event recorder closed; %d event(s) stay in the spool for the next start", pending - lost)
        if lost:
            log.warning(
                "event recorder closed; %d event(s) were not taken by the spool by its close deadline and are not "
                "kept: the spool's unsent() gives them back while this process runs",
                lost,
            )
