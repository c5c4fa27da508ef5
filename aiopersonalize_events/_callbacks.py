"""The recorder's user callbacks (``on_failure``, ``on_drop``): run safely, and bounded by the close deadline.

The one place where the recorder calls code of the user's. A plain
function runs at once; a coroutine function's awaitable runs as a task of
the recorder's loop, kept here until it ends. An exception from either is
logged and ignored (a callback never stops the recorder). ``finish(timeout)``
is how ``close()`` bounds them: it waits at most ``timeout`` seconds for the
tasks still running, then cancels the rest and says so at ERROR.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Callbacks"]


class Callbacks:
    """Runs user callbacks on ``loop`` (set once the recorder starts) and bounds the async ones with ``finish``."""

    __slots__ = ("_log", "_tasks", "loop")

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def call(self, name: str, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)``: a plain one now, a coroutine one as a task that ``finish()`` bounds."""
        try:
            result = callback(*args)
        except Exception:
            self._log.exception("%s callback raised; ignored", name)
            return
        if not inspect.isawaitable(result):
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            if inspect.iscoroutine(result):
                result.close()
            self._log.error("%s callback is a coroutine but the recorder's loop is gone; it did not run", name)
            return
        task = loop.create_task(self._await(name, result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, name: str, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            self._log.exception("%s callback raised; ignored", name)

    async def finish(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the callbacks still running; cancel (and log) those that are late."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), set(tasks))
        if late:
            for task in late:
                task.cancel()
            await asyncio.wait(late)
            self._log.error(
                "event recorder: %d callback(s) had not finished at the close deadline; cancelled", len(late)
            )
