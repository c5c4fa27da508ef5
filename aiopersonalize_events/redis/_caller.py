"""``RedisCaller``: one Redis command at a time, tried again with backoff while Redis is away, until stopped.

The forwarder makes every Redis command through it: ``call(fn)`` awaits
``fn()`` and, while Redis does not answer (``transient``: a refused
connection, a timeout, a failover reply), waits with capped exponential
backoff and tries again, logging once when Redis goes away and once when it
answers again (a set-up error, such as a wrong password, at ERROR with what
to fix; one line per condition). A ``NOGROUP`` reply (the stream or group was deleted) makes
the group again through ``recreate``. Once ``stop()`` was called, a call
made ``until_stopped`` raises ``Stopped`` instead of waiting, and a blocking
read given to ``until_stopped()`` is cut short, so that a stopping forwarder
never waits out an ``XREADGROUP BLOCK``. Its waits are measured on a
``Clock`` (the running loop's by default; a ``ManualClock`` in tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis.exceptions

from .. import _clock
from .._clock import Clock
from ._connect import Backoff, describe, say_waiting, transient

__all__ = ["RedisCaller", "Stopped"]

log: Final = logging.getLogger("aiopersonalize_events.redis")


class Stopped(Exception):
    """Internal: the forwarder stopped while waiting for Redis."""


class RedisCaller:
    """Makes Redis commands for ``name`` (a log prefix), waiting while Redis is away; see the module documentation."""

    def __init__(
        self,
        name: str,
        *,
        backoff: Backoff,
        backoff_max: float,
        clock: Clock | None,
        recreate: Callable[[], Awaitable[None]],
        url: str,
    ) -> None:
        self._name = name
        self._url = url  # shown redacted, in the line that says what waits
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._clock = clock
        self._recreate = recreate
        self._down_since: float | None = None
        self.stopping = False
        self.stop_event: asyncio.Event | None = None  # made in the loop, by start()

    def now(self) -> float:
        """The clock's time (seconds)."""
        return self._clock.time() if self._clock is not None else asyncio.get_running_loop().time()

    def start(self) -> None:
        """Make the stop event in the running loop (a stop before it is remembered)."""
        self.stop_event = asyncio.Event()
        if self.stopping:
            self.stop_event.set()

    def stop(self) -> None:
        """From now on, calls made ``until_stopped`` raise ``Stopped``, and pauses end (signal-safe)."""
        self.stopping = True
        if self.stop_event is not None:
            self.stop_event.set()

    async def call(self, call: Callable[[], Awaitable[Any]], *, until_stopped: bool = True) -> Any:
        """``call()``, tried again with backoff while Redis does not answer; ``Stopped`` once stopping.

        With ``until_stopped`` False it keeps trying after ``stop()`` (an
        acknowledgement of what the service accepted), until the owner's
        deadline cuts it short.
        """
        while True:
            if until_stopped and self.stopping:
                raise Stopped
            try:
                result = await call()
            except asyncio.CancelledError:
                raise
            except redis.exceptions.ResponseError as exc:
                if str(exc).startswith("NOGROUP"):  # the stream or group was deleted: make them again
                    log.warning("%s: the group is gone (%s); creating it again", self._name, exc)
                    try:
                        await self._recreate()
                    except Exception as again:
                        await self._away(again, until_stopped)
                    continue
                if transient(exc):
                    await self._away(exc, until_stopped)
                    continue
                log.error("%s: Redis refused a command: %s; trying again", self._name, describe(exc))
                await self.pause(min(30.0, self._backoff_max * 4), until_stopped)
                continue
            except Exception as exc:
                if not transient(exc):
                    raise
                await self._away(exc, until_stopped)
                continue
            if self._backoff.failing:
                self._backoff.reset()
                since, self._down_since = self._down_since, None
                if since is not None:
                    log.warning("%s: Redis answers again after %.1fs", self._name, self.now() - since)
            return result

    async def _away(self, exc: BaseException, until_stopped: bool) -> None:
        if not self._backoff.failing:
            self._down_since = self.now()
        if self._backoff.new_condition(exc):  # one line per condition: a WARNING, or an ERROR saying what to fix
            say_waiting(log, self._name, exc, self._url, "entries wait in the stream")
        await self.pause(self._backoff.next(), until_stopped)

    async def pause(self, delay: float, interruptible: bool = True) -> None:
        """Sleep ``delay`` seconds; with ``interruptible``, return early on ``stop()``."""
        if not interruptible or self.stop_event is None:
            await _clock.sleep(self._clock, delay)
            return
        if self.stop_event.is_set():
            return
        sleeper = asyncio.ensure_future(_clock.sleep(self._clock, delay))
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.wait([sleeper, stopper])

    async def until_stopped(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` (a blocking read), cut short by ``stop()``: ``Stopped`` then, the read cancelled.

        Entries a cut read had taken stay pending for this consumer in Redis
        (for its next run, or another forwarder's claim): nothing is lost.
        """
        assert self.stop_event is not None
        reading = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait([reading, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if reading.done():
            return reading.result()
        reading.cancel()
        await asyncio.wait([reading], timeout=0.1)  # a read redis-py does not let go ends when the connection closes
        raise Stopped
