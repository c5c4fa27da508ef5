"""The ``--failed-out`` file: one strict JSON object per record not accepted, with its line and the reason.

Each entry is ``{"line": N, "reason": "...", "retryable": true|false,
"record": ...}`` on one line (``retryable``: the record may be accepted if
sent again as it is: it met throttling, a 5xx, a dropped connection or an
unreachable endpoint, or was not sent because the run stopped; false for an
invalid line or a record the service refused as it is),
written straight to the file (no buffer to lose), and always strict JSON: a
record holding a number JSON cannot hold (``1e400`` read as infinity) is
written as the line's text instead, and a lone surrogate (from a ``\\ud800``
escape) stays escaped as the input had it. The file is never the input: it
is checked (same device and inode, so also through a symlink or
``/dev/stdin``) before anything is truncated.

Writing never raises: the first failure (a full disk, a closed pipe) is
kept in ``error`` and reported once through ``on_error``; from then on
records are only counted in ``lost``, and the run says which lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from typing import Any

from .feed import describe_os_error
from .status import UsageError

__all__ = ["FailedOut"]


def _dumps(entry: dict[str, Any], ascii_only: bool) -> str:
    return json.dumps(entry, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"))


def encode_entry(line: int, reason: str, record: Any, text: str | None = None, *, retryable: bool = False) -> bytes:
    """One entry as a line of strict JSON in UTF-8; ``text`` (the line) replaces a record JSON cannot hold."""
    entry = {"line": line, "reason": reason, "retryable": retryable, "record": record}
    try:
        body = _dumps(entry, ascii_only=False)
    except (ValueError, TypeError, RecursionError):  # NaN or infinity in the record, or nesting too deep
        entry["record"] = text
        body = _dumps(entry, ascii_only=False)
    try:
        return (body + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form, so keep the \\uXXXX escape
        return (_dumps(entry, ascii_only=True) + "\n").encode("ascii")


class FailedOut:
    """Where records not accepted go; without a path they are only counted."""

    def __init__(self, path: str | None = None, fd: int | None = None, *, regular: bool = False) -> None:
        self.path = path
        self._fd = fd
        self._regular = regular
        self._offset = 0
        self.count = 0
        """Records not accepted, written or not."""
        self.lost = 0
        """Of them, those that could not be written (after ``error``)."""
        self.error: str | None = None
        """Why writing failed, once it has."""
        self.on_error: Callable[[str], None] | None = None
        """Called once, with ``error``, when writing first fails."""

    @classmethod
    def open(cls, path: str | None, *, input_info: os.stat_result | None = None) -> FailedOut:
        """Open (create, then empty) ``path``; raise ``UsageError`` when it cannot be, or when it is the input."""
        if path is None:
            return cls()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # not O_TRUNC: first make sure it is not the input
        except OSError as exc:
            raise UsageError(f"cannot write --failed-out {path}: {describe_os_error(exc)}") from None
        try:
            info = os.fstat(fd)
            if input_info is not None and (info.st_dev, info.st_ino) == (input_info.st_dev, input_info.st_ino):
                raise UsageError(f"--failed-out {path} is the input itself: refusing to overwrite it")
            regular = stat.S_ISREG(info.st_mode)
            if regular:
                os.ftruncate(fd, 0)
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"cannot write --failed-out {path}: {describe_os_error(exc)}") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, regular=regular)

    def write(self, line: int, reason: str, record: Any, text: str | None = None, *, retryable: bool = False) -> bool:
        """Keep one record not accepted; False when it could not be written (it is then counted in ``lost``)."""
        self.count += 1
        fd = self._fd
        if fd is None:
            if self.path is not None:  # closed, or failed before
                self.lost += 1
                return False
            return True
        data = encode_entry(line, reason, record, text, retryable=retryable)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as exc:
            self._failed(exc, torn=written > 0)
            self.lost += 1
            return False
        self._offset += written
        return True

    def _failed(self, error: OSError, *, torn: bool) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            if torn and self._regular:  # leave whole lines only
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._offset)
            with contextlib.suppress(OSError):
                os.close(fd)
        self.error = describe_os_error(error)
        if self.on_error is not None:
            self.on_error(self.error)

    def close(self) -> None:
        """Close the file; idempotent, never raises."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
