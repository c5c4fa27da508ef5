"""Reading the input: lines read in a thread, so the event loop never blocks on a pipe, a terminal or a disk.

The thread reads the descriptor itself (``os.read``, never ``sys.stdin``'s
buffered reader, whose lock a daemon thread would hold at interpreter exit)
and, on POSIX, waits for input together with a wake-up pipe, so ``stop()``
ends it at once even when the input is a pipe kept open (``tail -f``) with
nothing to read. What it has read when it stops is handed over, the start
of a line whose end was not read included, and nothing more is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Final, NamedTuple

from .status import UsageError

__all__ = [
    "COUNT_LIMIT_BYTES",
    "MAX_LINE_BYTES",
    "Input",
    "InputReadError",
    "Line",
    "LineCounter",
    "LineFeed",
    "describe_os_error",
    "open_input",
]

MAX_LINE_BYTES: Final = 1024 * 1024
"""A longer line is refused without being held in memory (the largest valid record is far smaller)."""
_BUFFER_BYTES: Final = 2 * 1024 * 1024  # bytes of lines read ahead of the parser, about at most
_CHUNK: Final = 64 * 1024  # bytes asked of one read
_TAKE: Final = 256  # lines handed to the event loop at once
_SELECTABLE: Final = os.name == "posix"  # the input can be waited on with select/poll (not on Windows)
_POLL: Final = hasattr(select, "poll") and sys.platform != "darwin"  # macOS's poll does not work on terminals
COUNT_LIMIT_BYTES: Final = 1024**3
"""A regular file up to this size has its lines counted for the progress bar (about 0.4 s per GiB from the page
cache on the machine this was measured on, in a thread, while the run goes on); a larger one is estimated from
bytes."""
_COUNT_CHUNK: Final = 1024 * 1024


class Line(NamedTuple):
    """One line of input, as read."""

    number: int
    raw: bytes | None  # with its newline; None when longer than MAX_LINE_BYTES (not kept)
    size: int  # bytes of input it took
    partial: bool = False  # only its start was read: the input was stopped in the middle of it


class InputReadError(Exception):
    """The input could not be read past some line."""


def describe_os_error(error: BaseException) -> str:
    """An OSError's text without its errno number or file name; another error's type and text."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Input:
    """The opened input: its descriptor, what ``fstat`` says of it, and its size when it is a regular file."""

    def __init__(self, fd: int, info: os.stat_result, *, owned: bool) -> None:
        self.fd = fd
        self.info = info
        self._owned = owned
        self.size: int | None = None
        self.start = 0  # where reading starts (standard input may have been read from already)
        if stat.S_ISREG(info.st_mode):
            with contextlib.suppress(OSError):
                self.start = os.lseek(fd, 0, os.SEEK_CUR)
                self.size = max(0, info.st_size - self.start)

    @property
    def countable(self) -> bool:
        """True when counting its lines is cheap: a regular file of at most ``COUNT_LIMIT_BYTES``, read with pread."""
        return self.size is not None and self.size <= COUNT_LIMIT_BYTES and hasattr(os, "pread")

    def close(self) -> None:
        """Close the descriptor if this opened it (never standard input's)."""
        if self._owned:
            self._owned = False
            with contextlib.suppress(OSError):
                os.close(self.fd)


def open_input(name: str) -> Input:
    """Open ``name``, or standard input for ``-``; raise ``UsageError`` when it cannot be read."""
    if name == "-":
        stdin = sys.stdin
        try:
            if stdin is None:  # the process was started with descriptor 0 closed
                raise OSError(errno.EBADF, "closed")
            fd = stdin.fileno()
            info = os.fstat(fd)
        except (OSError, ValueError, AttributeError):
            raise UsageError("cannot read standard input: it is closed") from None
        return Input(fd, info, owned=False)
    try:
        fd = os.open(name, os.O_RDONLY)
    except OSError as exc:
        raise UsageError(f"cannot open {name}: {describe_os_error(exc)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
    except OSError as exc:
        os.close(fd)
        raise UsageError(f"cannot open {name}: {describe_os_error(exc)}") from None
    return Input(fd, info, owned=True)


class LineCounter:
    """Counts a regular file's lines in a daemon thread (``os.pread``: the reader's offset is not moved).

    ``on_count(lines)`` is called in the event loop once the count is known,
    unless ``stop()`` came first. A last line without a newline counts.
    """

    def __init__(self, source: Input, loop: asyncio.AbstractEventLoop, on_count: Callable[[int], None]) -> None:
        self._source = source
        self._loop = loop
        self._on_count = on_count
        self._stopped = threading.Event()

    def start(self) -> None:
        """Start counting."""
        threading.Thread(target=self._count, name="aiopersonalize-events-counter", daemon=True).start()

    def stop(self) -> None:
        """Count no more and report nothing."""
        self._stopped.set()

    def _count(self) -> None:
        source = self._source
        assert source.size is not None
        offset, end = source.start, source.start + source.size
        lines = 0
        last = b"\n"
        try:
            while offset < end and not self._stopped.is_set():
                chunk = os.pread(source.fd, min(_COUNT_CHUNK, end - offset), offset)
                if not chunk:
                    break
                lines += chunk.count(b"\n")
                last = chunk[-1:]
                offset += len(chunk)
        except OSError:
            return  # the bar keeps its estimate; reading proper reports a real problem
        if last != b"\n":
            lines += 1
        if not self._stopped.is_set():
            with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
                self._loop.call_soon_threadsafe(self._report, lines)

    def _report(self, lines: int) -> None:
        if not self._stopped.is_set():
            self._on_count(lines)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LineFeed:
    """Lines of a descriptor, read by a daemon thread into a bounded buffer that the event loop takes from.

    The thread never touches the loop except to wake a waiting coroutine.
    ``stop()`` asks it to read nothing more; ``halt()`` also waits (briefly)
    for it to end, after which ``drain()`` gives every line it read that was
    not taken yet.
    """

    def __init__(
        self, fd: int, loop: asyncio.AbstractEventLoop, *, max_bytes: int = _BUFFER_BYTES, chunk: int = _CHUNK
    ) -> None:
        self._fd = fd
        self._loop = loop
        self._max_bytes = max_bytes
        self._chunk = chunk
        self._cond = threading.Condition()
        self._lines: deque[Line] = deque()
        self._held = 0  # bytes held in _lines
        self._lines_read = 0
        self._at_end = False
        self._done = False
        self._stopping = False
        self._abandoned = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake_fds: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    @property
    def lines_read(self) -> int:
        """How many whole lines have been read from the input."""
        return self._lines_read

    @property
    def at_end(self) -> bool:
        """True once the end of the input was read."""
        return self._at_end

    def start(self) -> None:
        """Start reading."""
        if _SELECTABLE:
            self._wake_fds = os.pipe()
        self._thread = threading.Thread(target=self._work, name="aiopersonalize-events-reader", daemon=True)
        self._thread.start()

    # the thread --------------------------------------------------------------------------------------------------

    def _work(self) -> None:
        error: BaseException | None = None
        try:
            self._read()
        except Exception as exc:
            error = exc
        with self._cond:
            self._done = True
            self._error = error
            self._cond.notify_all()
            self._ring()

    def _read(self) -> None:
        fd = self._fd
        limit = MAX_LINE_BYTES + 1  # a line's bytes with its newline
        readable = self._waiter_for_input()
        carry = bytearray()  # the start of a line whose end has not been read yet
        skipped = 0  # while skipping an overlong line: its bytes so far
        number = 0
        while readable():
            try:
                chunk = os.read(fd, self._chunk)
            except BlockingIOError:  # a non-blocking descriptor with nothing to read after all
                continue
            if not chunk:
                if skipped or carry:  # a last line without a newline
                    number += 1
                    self._push([Line(number, None if skipped else bytes(carry), skipped or len(carry))])
                with self._cond:
                    self._at_end = True
                return
            lines: list[Line] = []
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                number += 1
                length = end + 1 - start
                if skipped:
                    lines.append(Line(number, None, skipped + length))
                    skipped = 0
                elif carry:
                    carry += chunk[start : end + 1]
                    raw = bytes(carry)
                    carry.clear()
                    lines.append(Line(number, raw if len(raw) <= limit else None, len(raw)))
                else:
                    lines.append(Line(number, chunk[start : end + 1] if length <= limit else None, length))
                start = end + 1
            if start < len(chunk):
                if skipped:
                    skipped += len(chunk) - start
                else:
                    carry += chunk[start:]
                    if len(carry) >= limit:  # longer than a line may be, and no end yet: skip the rest of it
                        skipped = len(carry)
                        carry.clear()
            if lines:
                self._push(lines)
        if skipped or carry:  # stopped in the middle of a line: hand over what was read of it
            self._push([Line(number + 1, None if skipped else bytes(carry), skipped or len(carry), partial=True)])

    def _waiter_for_input(self) -> Callable[[], bool]:
        """A function that waits until the input can be read (True) or ``stop()`` was called (False)."""
        fd = self._fd
        wake = self._wake_fds[0] if self._wake_fds is not None else None

        def plain() -> bool:
            return not self._stopping

        if wake is None:
            return plain
        if _POLL:
            poller = select.poll()
            try:
                poller.register(fd, select.POLLIN | select.POLLPRI)
            except (OSError, ValueError):
                return plain
            poller.register(wake, select.POLLIN)

            def wait_poll() -> bool:
                while not self._stopping:
                    events = dict(poller.poll())
                    if wake in events:
                        return False
                    if fd in events:  # readable, at its end, or in error: the read says which
                        return True
                return False

            return wait_poll

        def wait_select() -> bool:
            while not self._stopping:
                try:
                    ready, _, _ = select.select([fd, wake], [], [])
                except (OSError, ValueError):  # a descriptor select cannot watch: read it as it is
                    return not self._stopping
                if wake in ready:
                    return False
                if fd in ready:
                    return True
            return False

        return wait_select

    def _push(self, lines: list[Line]) -> None:
        size = sum(len(line.raw) for line in lines if line.raw is not None)
        with self._cond:
            while self._held >= self._max_bytes and self._lines and not self._stopping:
                self._cond.wait()
            if self._abandoned:  # the run has ended without us
                return
            self._lines.extend(lines)
            self._held += size
            whole = [line.number for line in lines if not line.partial]
            if whole:
                self._lines_read = whole[-1]
            self._ring()

    def _ring(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_wake, waiter)

    # the event loop ----------------------------------------------------------------------------------------------

    async def take(self, limit: int = _TAKE) -> list[Line] | None:
        """Up to ``limit`` lines, waiting for at least one; None once the reading has ended and all were taken."""
        while True:
            with self._cond:
                if self._lines:
                    count = min(limit, len(self._lines))
                    batch = [self._lines.popleft() for _ in range(count)]
                    self._held -= sum(len(line.raw) for line in batch if line.raw is not None)
                    self._cond.notify_all()
                    return batch
                if self._done:
                    if self._error is not None:
                        raise InputReadError(describe_os_error(self._error)) from self._error
                    return None
                waiter = self._loop.create_future()
                self._waiter = waiter
            await waiter

    def stop(self) -> None:
        """Read nothing more: the thread hands over what it has read and ends."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        if self._wake_fds is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake_fds[1], b"\0")

    async def halt(self, timeout: float) -> None:
        """``stop()``, then wait up to ``timeout`` seconds for the thread to end; after that, it is left behind.

        A thread left behind (blocked in a read that cannot be woken, as on
        Windows) reads at most one more piece, which is discarded.
        """
        self.stop()
        deadline = self._loop.time() + timeout
        while True:
            with self._cond:
                if self._done or self._thread is None:
                    return
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    self._abandoned = True
                    return
                waiter = self._loop.create_future()
                self._waiter = waiter
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    def drain(self) -> list[Line]:
        """Every line read and not yet taken (after ``halt()``)."""
        with self._cond:
            lines = list(self._lines)
            self._lines.clear()
            self._held = 0
            self._cond.notify_all()
            return lines

    def close(self) -> None:
        """Stop reading, and release the wake-up pipe once the thread has ended."""
        self.stop()
        with self._cond:
            finished = self._done or self._thread is None
        if finished and self._wake_fds is not None:
            for fd in self._wake_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_fds = None
