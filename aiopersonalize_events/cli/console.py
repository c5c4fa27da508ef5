"""Messages, the progress bar and the summary on standard error, which may fail without stopping anything.

Standard error is for people: when it is closed, full (``2>/dev/full``) or a
pipe whose reader went away (``2>&1 >/dev/null | head -n 1``), the run goes
on and the records still go to the service or to ``--failed-out``; the
console only stops writing. ``settle_std_streams`` then keeps the
interpreter's own flush at exit from failing or complaining.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import IO, Any, Final, Protocol

__all__ = ["Console", "one_line", "say_error", "settle_std_streams"]

_MAX_MESSAGES: Final = 20  # problems of one kind printed before only counting them
# a message is one line: control characters (from a record or a service's message) are shown escaped
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_CONTROLS.update({0x09: " ", 0x0A: "\\n", 0x0D: "\\r"})


def one_line(message: str) -> str:
    """``message`` with control characters escaped (``\\n``, ``\\r``, ``\\x1b``): one line on a terminal."""
    return message.translate(_CONTROLS)


class _Bar(Protocol):
    total: float | None
    disable: bool

    def update(self, n: float = 1) -> bool | None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class Console:
    """Messages on ``stream`` (standard error), and the progress bar when there is one (tqdm, on a terminal).

    Nothing here raises: the first write that fails turns the console off.
    """

    def __init__(
        self, stream: IO[str] | None, *, progress: bool = False, total_bytes: int | None = None, unit: str = "records"
    ) -> None:
        self._stream = stream
        self._broken = stream is None
        self._bar: _Bar | None = None
        self._tqdm: Any = None
        self._total_bytes = total_bytes
        self._total_lines: int | None = None  # counted: the exact total, blank lines taken off as they are met
        self._counting = False
        self._blank = 0
        self._done = 0
        self._done_bytes = 0
        self._trim: Any = None
        self._columns = 80
        self._counts: dict[str, int] = {}
        if progress and stream is not None and _isatty(stream):
            try:
                module: Any = importlib.import_module("tqdm")
            except ImportError:
                module = None
                self.say(
                    "note: no progress bar without tqdm: pip install 'aiopersonalize-events[cli]' (or --no-progress)"
                )
            if module is not None:
                # our own subclass: no monitor thread, and tqdm's class is left as it is
                bar_class: Any = type("_QuietTqdm", (module.tqdm,), {"monitor_interval": 0})
                self._tqdm = bar_class
                self._trim = importlib.import_module("tqdm.utils").disp_trim  # by display width, wide characters too
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    self._columns = os.get_terminal_size(stream.fileno()).columns
                try:
                    self._bar = bar_class(
                        total=None, unit=f" {unit}", file=stream, dynamic_ncols=True, mininterval=0.2, leave=False
                    )
                except (OSError, ValueError):
                    self._fail()

    @property
    def has_bar(self) -> bool:
        """True while a progress bar is drawn."""
        return self._bar is not None

    @property
    def broken(self) -> bool:
        """True once writing failed (or there is no standard error): nothing more is written."""
        return self._broken

    def _fail(self) -> None:
        self._broken = True
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.disable = True  # so that closing it writes nothing

    def say(self, message: str) -> None:
        """Print one line, above the bar if there is one; never raises.

        Under a bar the line is cut to the terminal's width (ending in ``...``):
        a longer one would wrap, and the bar, redrawn on the line below, would
        leave copies of itself behind. Without a bar the whole line is written.
        """
        if self._broken:
            return
        message = one_line(message)
        if self._bar is not None and self._trim is not None:
            width = max(20, self._columns - 1)
            if len(message) > width // 2 and self._trim(message, width) != message:
                message = self._trim(message, width - 3) + "..."
        try:
            try:
                self._write(message)
            except UnicodeEncodeError:  # a stream stricter than sys.stderr's backslashreplace
                self._write(message.encode("ascii", "backslashreplace").decode("ascii"))
        except (OSError, ValueError):  # closed, full, a broken pipe, a terminal gone
            self._fail()

    def _write(self, message: str) -> None:
        stream = self._stream
        assert stream is not None
        if self._bar is not None and self._tqdm is not None:
            self._tqdm.write(message, file=stream)
        else:
            stream.write(message + "\n")
            stream.flush()

    def problem(self, kind: str, message: str) -> None:
        """Print a problem, at most ``_MAX_MESSAGES`` of each kind; the rest are only counted."""
        seen = self._counts.get(kind, 0) + 1
        self._counts[kind] = seen
        if seen <= _MAX_MESSAGES:
            self.say(message)
        elif seen == _MAX_MESSAGES + 1:
            self.say(f"(more {kind} not shown)")

    @property
    def total(self) -> int | None:
        """The progress bar's total: counted when the input's lines were counted, else estimated from bytes."""
        if self._total_lines is not None:
            return max(self._done, self._total_lines - self._blank)
        if self._counting:
            return None  # the count comes in a moment: no guess meanwhile
        if self._total_bytes and self._done_bytes:
            # an estimate of the records in the whole file, from the bytes settled so far: gives the ETA
            return max(self._done, round(self._done * self._total_bytes / self._done_bytes))
        return None

    def counting(self) -> None:
        """The input's lines are being counted: show no estimated total until ``set_total_lines``."""
        self._counting = True

    def set_total_lines(self, lines: int) -> None:
        """The input's lines, counted: the total becomes exact (blank lines are taken off as they are met)."""
        self._total_lines = lines
        self._redraw(0)

    def advance(self, records: int, size: int) -> None:
        """Count ``records`` settled (sent, failed or checked) that took ``size`` bytes of input (0: a blank line)."""
        self._done += records
        self._done_bytes += size
        if records == 0 and size:
            self._blank += 1
        if records > 0:
            self._redraw(records)

    def _redraw(self, records: int) -> None:
        bar = self._bar
        if bar is None:
            return
        try:
            total = self.total
            if total is not None:
                bar.total = total
            if records:
                bar.update(records)
            else:
                bar.refresh()
        except (OSError, ValueError):
            self._fail()

    def close(self) -> None:
        """Remove the progress bar."""
        bar, self._bar = self._bar, None
        if bar is not None:
            try:
                bar.close()
            except (OSError, ValueError):
                self._fail()


def say_error(message: str) -> None:
    """Print ``message`` on standard error if it can be written (before a run's console exists)."""
    Console(sys.stderr).say(message)


def settle_std_streams() -> None:
    """Flush standard output and error; put /dev/null under one that cannot be written.

    What a failed write left in a stream's buffer would otherwise make the
    interpreter's flush at exit fail again: a complaint on standard error
    and exit status 120 instead of the run's (the recipe of Python's
    documentation for SIGPIPE).
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
            continue
        except (OSError, ValueError):
            pass
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            continue
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
