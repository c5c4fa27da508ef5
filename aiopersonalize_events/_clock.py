"""The recorder's clock: the event loop's by default, a ``ManualClock`` in tests.

The recorder measures its flush interval and the waits before re-sending a
batch on a ``Clock``: something with ``time()`` and ``call_at(when,
callback, *args)`` returning a handle with ``cancel()``, which an asyncio
event loop already is. ``ManualClock`` moves only when a test advances it,
so a test of the recorder's timing says "a second passes" instead of
sleeping for one. ``sleep(clock, delay)`` waits on a clock (the Redis
components' backoff and pacing), and ``SleepClock`` turns a plain ``sleep``
function (the older way to inject time, kept for compatibility) into a clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "ManualTimer", "SleepClock", "sleep"]


class _Handle(Protocol):
    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """What the recorder needs of a clock: the time in seconds, and callbacks at a given time.

    An asyncio event loop is one (``loop.time()``, ``loop.call_at()``).
    """

    def time(self) -> float:
        """The current time, in seconds (any origin; only differences matter)."""
        ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _Handle:
        """Run ``callback(*args)`` at ``time() == when``; the handle's ``cancel()`` stops it."""
        ...


class ManualTimer:
    """A callback a ``ManualClock`` runs when it is advanced to ``when``; ``cancel()`` stops it."""

    __slots__ = ("_args", "_callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (a no-op once it ran)."""
        self.cancelled = True

    def _run(self) -> None:
        self._callback(*self._args)

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<ManualTimer at {self.when:g}{state}>"


class ManualClock:
    """A clock that moves only when ``advance()`` is called, for tests of the recorder's timing.

    Give it to ``client.event_recorder(..., clock=clock)``: the recorder's
    flush interval and its waits before re-sending a failed batch (backoff,
    ``Retry-After``) are then measured on this clock. ``advance(seconds)``
    moves the time and runs, in time order, the callbacks that came due (the
    recorder's task then resumes at the loop's next turn); ``next_due()`` says
    when the next callback is due, so a test can check how long the recorder
    chose to wait without waiting. Sending itself stays real I/O: a test
    still awaits what the emulator or server receives.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        """The current time, in seconds."""
        return self._now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> ManualTimer:
        """Run ``callback(*args)`` once the clock has been advanced to ``when`` (at once if already past)."""
        timer = ManualTimer(float(when), callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def next_due(self) -> float | None:
        """When the next callback not cancelled is due, or None when none is waiting."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` and run the callbacks due by then, earliest first."""
        if not seconds >= 0:
            raise ValueError("a clock only moves forward: seconds must be at least 0")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.cancelled = True  # ran: a later cancel() is a no-op
            timer._run()
        self._now = target

    def __repr__(self) -> str:
        return f"ManualClock(time={self._now:g}, waiting={sum(1 for *_, t in self._timers if not t.cancelled)})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep(clock: Clock | None, delay: float) -> None:
    """Wait ``delay`` seconds as ``clock`` measures them (the running loop's ``asyncio.sleep`` when None).

    Cancellation cancels the timer too, so a ``ManualClock`` keeps no
    callback of a wait nobody awaits any more.
    """
    loop = asyncio.get_running_loop()
    if clock is None or clock is loop:
        await asyncio.sleep(delay)
        return
    future: asyncio.Future[None] = loop.create_future()
    handle = clock.call_at(clock.time() + max(0.0, delay), _resolve, future)
    try:
        await future
    finally:
        handle.cancel()


class _SleepTimer:
    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()


class SleepClock:
    """A ``Clock`` whose waits are made by ``sleep(seconds)``: how a component given a ``sleep=`` still has one clock.

    ``time()`` is ``base``'s (the running loop's when None); ``call_at(when,
    callback)`` awaits ``sleep(when - time())`` in a task, then runs the
    callback (unless cancelled).
    """

    __slots__ = ("_base", "_sleep")

    def __init__(self, sleep: Callable[[float], Awaitable[None]], base: Clock | None = None) -> None:
        self._sleep = sleep
        self._base = base

    def time(self) -> float:
        """``base``'s time, or the running loop's."""
        return self._base.time() if self._base is not None else asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> _SleepTimer:
        """Run ``callback(*args)`` once ``sleep(when - time())`` returned."""

        async def wait() -> None:
            await self._sleep(max(0.0, when - self.time()))
            callback(*args)

        return _SleepTimer(asyncio.get_running_loop().create_task(wait()))
