"""The console script ``aiopersonalize-events`` (also ``python -m aiopersonalize_events``).

One ``put-*`` sub-command per entry of the operations table streams JSON
Lines (one record per line, in the service's camelCase shape) from a file or
standard input to the service: each line is parsed and validated into a
shape, records are cut into calls of at most ten (``put-events`` groups its
lines by ``sessionId`` and ``userId``, in bounded memory), and the calls run
concurrently, paced at the service quota. A line that cannot be sent, and a
record the service refused, is reported with its line number and written with
the reason to ``--failed-out``; the rest go on. Ctrl-C stops intake, lets
the calls in flight finish, and writes every record not sent to
``--failed-out``. ``emulator`` serves the local emulator and ``demo`` runs the
quick-start demo.

Exit status: 0 every record accepted; 1 some were not (they are in
``--failed-out``); 2 usage error or unreadable input; 130 interrupted.

Only the entry point imports this module; ``import aiopersonalize_events`` does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import os
import signal
import stat
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Final, NamedTuple, Protocol
from urllib.parse import urlsplit

import attrs

from . import _operations as ops
from ._batching import BatchResult, RateLimiter
from ._credentials import Credentials
from ._endpoints import is_loopback_host
from ._version import __version__
from .errors import (
    AccessDeniedException,
    NoCredentialsError,
    NoRegionError,
    PersonalizeEventsError,
    ResourceNotFoundException,
    ServiceError,
    ValidationError,
)
from .serde import from_wire, to_wire

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LineError",
    "MAX_LINE_BYTES",
    "ParsedLine",
    "build_parser",
    "line_members",
    "main",
    "parse_line",
]

EXIT_OK: Final = 0
"""Every record was accepted (or, with ``--dry-run``, is valid)."""
EXIT_FAILED: Final = 1
"""Some records were not accepted; they are in ``--failed-out``."""
EXIT_USAGE: Final = 2
"""A usage error, or input (or ``--failed-out``) that cannot be opened or read."""
EXIT_INTERRUPTED: Final = 130
"""Stopped by Ctrl-C (SIGINT); what was not sent is in ``--failed-out``."""
_EXIT_TERMINATED: Final = 143

MAX_LINE_BYTES: Final = 1024 * 1024
"""A longer line is refused without being held in memory (the largest valid record is far smaller)."""
_BUFFER_BYTES: Final = 8 * 1024 * 1024  # lines read ahead of the parser, at most
_TAKE: Final = 256  # lines parsed per turn of the event loop
_MAX_HELD: Final = 10_000  # put-events: records held in partial groups before the oldest group is sent
_GRACE_SECONDS: Final = 30.0  # after Ctrl-C, how long calls in flight may take to finish
_MAX_MESSAGES: Final = 20  # problems printed on stderr before only counting them
_LOCAL_REGION: Final = "us-east-1"
_LOCAL_ACCESS_KEY: Final = "AKIDLOCALEMULATOR"
_LOCAL_SECRET: Final = "local-emulator-placeholder"  # not a secret: only for a loopback endpoint


# -- parsing one line -------------------------------------------------------------------------------------------


class LineError(Exception):
    """A line that cannot become a record; ``reason`` says why, in the input's camelCase names."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ParsedLine(NamedTuple):
    """A valid line: its record shape and the request members it carries (``sessionId``/``userId`` for events)."""

    record: Any
    members: tuple[Any, ...]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_path(path: str) -> str:
    """``metric_attribution.event_attribution_source`` -> ``metricAttribution.eventAttributionSource``."""
    return ".".join(_camel(part) for part in path.split("."))


@functools.cache
def line_members(op: ops.Operation) -> tuple[str, ...]:
    """The request members each line carries besides its record (``session_id``, ``user_id`` for PutEvents)."""
    return tuple(
        field.name for field in attrs.fields(op.request) if field.name not in (op.resource_field, op.record_field)
    )


@functools.cache
def _required(op: ops.Operation) -> frozenset[str]:
    return frozenset(f.name for f in attrs.fields(op.request) if f.default is attrs.NOTHING)


@functools.cache
def _has_event_id(op: ops.Operation) -> bool:
    return "event_id" in attrs.fields_dict(op.record)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _reason(op: ops.Operation, error: ValidationError) -> str:
    path = error.path
    prefix = f"{op.record_field}[0]"
    if path.startswith(prefix):
        path = path[len(prefix) :].lstrip(".")
    return f"{_camel_path(path)}: {error.message}" if path else error.message


def parse_line(op: ops.Operation, text: str, *, resource: str, assign_event_id: bool = False) -> ParsedLine:
    """Turn one JSON line into a validated record for ``op``, or raise ``LineError`` saying why not.

    The line is an object in the service's camelCase shape; for ``put-events``
    it also carries ``sessionId`` and optionally ``userId``. The whole request
    the record would travel in is validated (with ``resource``, the tracking
    id or dataset ARN), so a record that passes is one the client will send.
    With ``assign_event_id``, a record that may carry an ``eventId`` and has
    none gets a random one, so that resending it is de-duplicated.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise LineError(f"not valid JSON ({detail})") from None
    except RecursionError:
        raise LineError("not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise LineError(f"must be a JSON object, not {_json_type(data)}")
    members = line_members(op)
    values: dict[str, Any] = {}
    required = _required(op)
    for name in members:
        wire = _camel(name)
        if wire in data:
            values[name] = data.pop(wire)
        elif name in required:
            raise LineError(f"{wire}: is required")
    if assign_event_id and "eventId" not in data and _has_event_id(op):
        data["eventId"] = uuid.uuid4().hex
    try:
        record = from_wire(op.record, data)
        op.request(**{op.resource_field: resource, op.record_field: (record,)}, **values)
    except ValidationError as exc:
        raise LineError(_reason(op, exc)) from None
    except (TypeError, ValueError) as exc:  # defensive: a value no check above foresaw
        raise LineError(f"cannot be read as {op.record.__name__} ({type(exc).__name__})") from None
    return ParsedLine(record, tuple(values.get(name) for name in members))


def _as_input(op: ops.Operation, parsed: ParsedLine) -> dict[str, Any]:
    """The record back in the input's JSON Lines form (``properties`` as a JSON string)."""
    out: dict[str, Any] = {
        _camel(name): value for name, value in zip(line_members(op), parsed.members, strict=True) if value is not None
    }
    out.update(to_wire(parsed.record))
    return out


def _raw_record(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _check_resource(op: ops.Operation, value: str) -> str | None:
    """Why ``value`` is no valid tracking id or dataset ARN for ``op``, or None when it is (the shapes' own checks)."""
    from . import _limits, _shapes

    try:
        if op.resource_field == "dataset_arn":
            _shapes._check_arn(value)
        else:
            _shapes._check_text(op.resource_field, value, _limits.ID_MAX)
    except ValidationError as exc:
        return exc.message
    return None


# -- reading lines without blocking the event loop ----------------------------------------------------------------


class _Line(NamedTuple):
    number: int
    raw: bytes | None  # None: longer than MAX_LINE_BYTES
    size: int


class _InputReadError(Exception):
    """The input could not be read past some line."""


class _LineFeed:
    """Reads lines of a binary stream in a daemon thread into a bounded buffer that the event loop takes from.

    The thread never touches the loop except to wake a waiting ``take()``,
    and a daemon thread blocked on a terminal or pipe never holds up exit.
    """

    def __init__(self, stream: IO[bytes], loop: asyncio.AbstractEventLoop, max_bytes: int = _BUFFER_BYTES) -> None:
        self._stream = stream
        self._loop = loop
        self._max_bytes = max_bytes
        self._cond = threading.Condition()
        self._lines: deque[_Line] = deque()
        self._bytes = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.last_read = 0

    def start(self) -> None:
        threading.Thread(target=self._work, name="aiopersonalize-events-reader", daemon=True).start()

    def _work(self) -> None:
        number = 0
        error: BaseException | None = None
        try:
            while True:
                raw = self._stream.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                number += 1
                size = len(raw)
                if size > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while True:  # skip the rest of an overlong line, a piece at a time
                        more = self._stream.readline(MAX_LINE_BYTES)
                        size += len(more)
                        if not more or more.endswith(b"\n"):
                            break
                    self._push(_Line(number, None, size))
                else:
                    self._push(_Line(number, raw, size))
        except Exception as exc:
            error = exc
        with self._cond:
            self._done = True
            self._error = error
            self._ring()

    def _push(self, line: _Line) -> None:
        with self._cond:
            while self._bytes >= self._max_bytes and self._lines:
                self._cond.wait()
            self._lines.append(line)
            self._bytes += line.size
            self._ring()

    def _ring(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def take(self, limit: int = _TAKE) -> list[_Line] | None:
        """Up to ``limit`` lines, waiting for at least one; None at the end of the input."""
        while True:
            with self._cond:
                if self._lines:
                    count = min(limit, len(self._lines))
                    batch = [self._lines.popleft() for _ in range(count)]
                    self._bytes -= sum(line.size for line in batch)
                    self._cond.notify()
                    self.last_read = batch[-1].number
                    return batch
                if self._done:
                    if self._error is not None:
                        raise _InputReadError(_describe_os_error(self._error)) from self._error
                    return None
                waiter = self._loop.create_future()
                self._waiter = waiter
            await waiter


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _describe_os_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# -- output: messages, progress, failed records --------------------------------------------------------------------


class _Bar(Protocol):
    total: float | None

    def update(self, n: float = 1) -> bool | None: ...
    def refresh(self) -> None: ...
    def close(self) -> None: ...
    def clear(self) -> None: ...


class _Console:
    """Messages on stderr, and the progress bar when there is one (tqdm, when installed, on a terminal)."""

    def __init__(self, stream: IO[str], *, progress: bool, total_bytes: int | None, unit: str) -> None:
        self._stream = stream
        self._bar: _Bar | None = None
        self._tqdm: Any = None
        self._total_bytes = total_bytes
        self._done = 0
        self._done_bytes = 0
        self._counts: dict[str, int] = {}
        if progress and _isatty(stream):
            try:
                module: Any = importlib.import_module("tqdm")
            except ImportError:
                module = None
            if module is not None:
                module.tqdm.monitor_interval = 0  # no monitor thread
                self._tqdm = module.tqdm
                self._bar = module.tqdm(
                    total=None, unit=f" {unit}", file=stream, dynamic_ncols=True, mininterval=0.2, leave=False
                )

    @property
    def has_bar(self) -> bool:
        return self._bar is not None

    def say(self, message: str) -> None:
        """Print one line on stderr, above the bar if there is one."""
        if self._bar is not None and self._tqdm is not None:
            self._tqdm.write(message, file=self._stream)
        else:
            print(message, file=self._stream, flush=True)

    def problem(self, kind: str, message: str) -> None:
        """Print a problem, at most ``_MAX_MESSAGES`` of each kind; the rest are only counted."""
        seen = self._counts.get(kind, 0) + 1
        self._counts[kind] = seen
        if seen <= _MAX_MESSAGES:
            self.say(message)
        elif seen == _MAX_MESSAGES + 1:
            self.say(f"(more {kind} not shown: see --failed-out)")

    def advance(self, records: int, size: int) -> None:
        """Count ``records`` settled (sent, failed or checked) that took ``size`` bytes of input."""
        self._done += records
        self._done_bytes += size
        bar = self._bar
        if bar is None or records <= 0:
            return
        if self._total_bytes and self._done_bytes:
            # an estimate of the records in the whole file, from the bytes settled so far: gives the ETA
            bar.total = max(self._done, round(self._done * self._total_bytes / self._done_bytes))
        bar.update(records)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _FailedOut:
    """The ``--failed-out`` file: one JSON object per record not accepted, with its line and the reason."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        if path is not None:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, line: int, reason: str, record: Any) -> None:
        self.count += 1
        if self._file is not None:
            entry = {"line": line, "reason": reason, "record": record}
            self._file.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


# -- the load ---------------------------------------------------------------------------------------------------


class _Chunk:
    """Records bound for one call, with their line numbers and the input bytes they took."""

    __slots__ = ("key", "lines", "records", "size")

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.lines: list[int] = []
        self.records: list[ParsedLine] = []
        self.size = 0


def _lines_text(lines: Sequence[int]) -> str:
    if len(lines) == 1:
        return f"line {lines[0]}"
    return f"{len(lines)} records, lines {min(lines)}-{max(lines)}"


def _is_fatal(error: PersonalizeEventsError) -> bool:
    """An error no other record of this run can escape: unknown resource, refused credentials."""
    if isinstance(error, (ResourceNotFoundException, AccessDeniedException, NoCredentialsError, NoRegionError)):
        return True
    return isinstance(error, ServiceError) and error.http_status == 403


class _Load:
    """One run of a ``put-*`` sub-command: intake, calls in flight, accounting, and the summary."""

    def __init__(
        self,
        op: ops.Operation,
        *,
        resource: str,
        feed: _LineFeed,
        console: _Console,
        failed: _FailedOut,
        client: Any,
        concurrency: int,
        rate: float | None,
    ) -> None:
        self.op = op
        self.resource = resource
        self.feed = feed
        self.console = console
        self.failed = failed
        self.client = client
        self.dry_run = client is None
        self.members = line_members(op)
        self.send_batch: Callable[..., Any] | None = (
            getattr(client, f"{op.snake_name}_batched") if client is not None else None
        )
        self.slots = asyncio.Semaphore(concurrency)
        self.limiter = RateLimiter(rate) if rate else None
        self.taken: deque[_Line] = deque()
        self.held: dict[tuple[Any, ...], _Chunk] = {}
        self.held_count = 0
        self.in_flight: dict[asyncio.Task[None], _Chunk] = {}
        self.sent = self.valid = self.calls = 0
        self.stop_reason: str | None = None  # "interrupted", "terminated", or why the run stopped early
        self.exit_override: int | None = None
        self.hurry = asyncio.Event()
        self.unread_after: int | None = None
        self.intake_task: asyncio.Task[None] | None = None

    # intake ----------------------------------------------------------------------------

    async def intake(self) -> None:
        while True:
            if not self.taken:
                batch = await self.feed.take()
                if batch is None:
                    break
                self.taken.extend(batch)
            while self.taken:
                line = self.taken.popleft()
                parsed = self._parse(line)
                if parsed is None:
                    continue
                if self.dry_run:
                    self.valid += 1
                    self.console.advance(1, line.size)
                    continue
                await self._hold(line, parsed)
            await asyncio.sleep(0)  # let the calls in flight run between batches of parsing
        for key in list(self.held):
            await self._launch(self._release(key))
        while self.in_flight:
            await asyncio.wait(list(self.in_flight))

    def _parse(self, line: _Line) -> ParsedLine | None:
        if line.raw is None:
            self._invalid(line, f"line longer than {MAX_LINE_BYTES} bytes", None)
            return None
        try:
            text = line.raw.decode("utf-8-sig" if line.number == 1 else "utf-8")
        except UnicodeDecodeError:
            self._invalid(line, "not UTF-8 text", line.raw.decode("utf-8", "replace").rstrip("\r\n"))
            return None
        if not text.strip():
            self.console.advance(0, line.size)
            return None
        try:
            return parse_line(self.op, text.rstrip("\r\n"), resource=self.resource, assign_event_id=not self.dry_run)
        except LineError as exc:
            self._invalid(line, exc.reason, _raw_record(text.rstrip("\r\n")))
            return None

    def _invalid(self, line: _Line, reason: str, record: Any) -> None:
        self.console.problem("invalid lines", f"line {line.number}: {reason}")
        self.failed.write(line.number, reason, record)
        self.console.advance(1, line.size)

    async def _hold(self, line: _Line, parsed: ParsedLine) -> None:
        key = parsed.members
        chunk = self.held.get(key)
        if chunk is None:
            chunk = self.held[key] = _Chunk(key)
        chunk.lines.append(line.number)
        chunk.records.append(parsed)
        chunk.size += line.size
        self.held_count += 1
        if len(chunk.records) >= self.op.records_per_call:
            await self._launch(self._release(key))
        while self.held_count > _MAX_HELD:  # too many partial groups: send the oldest as it is
            await self._launch(self._release(next(iter(self.held))))

    def _release(self, key: tuple[Any, ...]) -> _Chunk:
        chunk = self.held.pop(key)
        self.held_count -= len(chunk.records)
        return chunk

    async def _launch(self, chunk: _Chunk) -> None:
        try:
            await self.slots.acquire()
        except asyncio.CancelledError:
            self._unsent(chunk, self._unsent_reason())
            raise
        try:
            if self.limiter is not None:
                await self.limiter.acquire()
        except asyncio.CancelledError:
            self.slots.release()
            self._unsent(chunk, self._unsent_reason())
            raise
        task = asyncio.create_task(self._send(chunk))
        self.in_flight[task] = chunk

    # sending ---------------------------------------------------------------------------

    async def _send(self, chunk: _Chunk) -> None:
        assert self.send_batch is not None
        fixed = dict(zip(self.members, chunk.key, strict=True))
        records = [parsed.record for parsed in chunk.records]
        try:
            result: BatchResult[Any] = await self.send_batch(
                **{self.op.resource_field: self.resource, self.op.record_field: records},
                **fixed,
                max_concurrency=1,
                requests_per_second=None,
            )
        except asyncio.CancelledError:
            self._unsent(chunk, "interrupted while in flight: the service may or may not have stored it")
            raise
        except PersonalizeEventsError as exc:  # the request itself was refused before any I/O
            self._refused(chunk, range(len(chunk.records)), exc)
        else:
            self.calls += result.calls
            self.sent += result.sent
            for failure in result.failures:
                span = range(failure.position, failure.position + len(failure.records))
                self._refused(chunk, span, failure.error)
            sent_size = chunk.size if not result.failures else chunk.size * result.sent // len(chunk.records)
            self.console.advance(result.sent, sent_size)
        finally:
            self.slots.release()
            task = asyncio.current_task()
            if task is not None:
                self.in_flight.pop(task, None)

    def _refused(self, chunk: _Chunk, span: range, error: PersonalizeEventsError) -> None:
        lines = [chunk.lines[i] for i in span]
        reason = str(error)
        self.console.problem("refused records", f"{_lines_text(lines)}: not accepted: {reason}")
        for i in span:
            self.failed.write(chunk.lines[i], reason, _as_input(self.op, chunk.records[i]))
        self.console.advance(len(span), chunk.size * len(span) // max(1, len(chunk.records)))
        if _is_fatal(error) and self.stop_reason is None:
            code = getattr(error, "code", None) or type(error).__name__
            self.stop(f"stopped after {code}")

    def _unsent(self, chunk: _Chunk, reason: str) -> None:
        for line, parsed in zip(chunk.lines, chunk.records, strict=True):
            self.failed.write(line, reason, _as_input(self.op, parsed))
        self.console.advance(len(chunk.records), chunk.size)

    def _unsent_reason(self) -> str:
        return f"not sent: {self.stop_reason or 'interrupted'}"

    # stopping ----------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop intake (Ctrl-C, SIGTERM, or an error every record would meet); settle everything else."""
        if self.stop_reason is not None:
            self.hurry.set()  # a second Ctrl-C: do not wait for calls in flight or the rest of the input
            self.console.say("stopping now")
            return
        self.stop_reason = reason
        if reason in ("interrupted", "terminated"):
            self.console.say(
                f"{reason}: finishing {len(self.in_flight)} call(s) in flight, writing the rest to --failed-out "
                "(Ctrl-C again to stop at once)"
            )
        task = self.intake_task
        if task is not None and not task.done():
            task.cancel()

    async def wind_down(self) -> None:
        """After a stop: settle held records, let calls in flight end (bounded), then account for unread lines."""
        reason = self._unsent_reason()
        for key in list(self.held):
            self._unsent(self._release(key), reason)
        if self.in_flight:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _GRACE_SECONDS
            hurry = asyncio.create_task(self.hurry.wait())
            try:
                while self.in_flight and not self.hurry.is_set() and loop.time() < deadline:
                    await asyncio.wait(
                        [*self.in_flight, hurry], timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
                    )
            finally:
                hurry.cancel()
            for task in list(self.in_flight):
                task.cancel()
            if self.in_flight:
                await asyncio.wait(list(self.in_flight))
        await self._drain(reason)

    async def _drain(self, reason: str) -> None:
        while True:
            while self.taken:
                line = self.taken.popleft()
                if line.raw is None:
                    self.failed.write(line.number, reason, None)
                else:
                    text = line.raw.decode("utf-8", "replace").rstrip("\r\n")
                    if not text.strip():
                        continue
                    self.failed.write(line.number, reason, _raw_record(text))
                self.console.advance(1, line.size)
            if self.hurry.is_set():
                self.unread_after = self.feed.last_read
                return
            take = asyncio.create_task(self.feed.take())
            hurry = asyncio.create_task(self.hurry.wait())
            try:
                await asyncio.wait([take, hurry], return_when=asyncio.FIRST_COMPLETED)
            finally:
                hurry.cancel()
            if not take.done():
                take.cancel()
                self.unread_after = self.feed.last_read
                return
            try:
                batch = take.result()
            except _InputReadError as exc:
                self.console.say(f"error: cannot read the input after line {self.feed.last_read}: {exc}")
                self.unread_after = self.feed.last_read
                self.exit_override = EXIT_USAGE
                return
            if batch is None:
                return
            self.taken.extend(batch)


# -- command functions ------------------------------------------------------------------------------------------------


def _is_loopback(url: str | None) -> bool:
    if not url:
        return False
    return is_loopback_host(urlsplit(url).hostname or "")


class _UsageError(Exception):
    pass


class _LocalFallback:
    """The default credential chain; for a loopback endpoint, placeholder keys when the chain finds none."""

    def __init__(self, profile: str | None, *, local: bool, console: _Console) -> None:
        from ._credentials import default_provider

        self._chain = default_provider(profile)
        self._local = local
        self._console = console
        self._placeholder: Credentials | None = None

    async def resolve(self) -> Credentials:
        if self._placeholder is not None:
            return self._placeholder
        try:
            return await self._chain.resolve()
        except NoCredentialsError:
            if not self._local:
                raise
        self._console.say("no AWS credentials found: signing with placeholder credentials for the local endpoint")
        self._placeholder = Credentials(_LOCAL_ACCESS_KEY, _LOCAL_SECRET)
        return self._placeholder


async def _make_client(args: argparse.Namespace, console: _Console) -> Any:
    """The opened client for a ``put-*`` run; a loopback endpoint (the emulator) gets a region and placeholder keys."""
    from ._client import PersonalizeEventsClient
    from ._config import ClientConfig
    from ._credentials import resolve_region

    local = _is_loopback(args.endpoint_url)
    try:
        region = await resolve_region(args.region, args.profile)
    except NoRegionError as exc:
        if not local:
            raise _UsageError(f"{exc} (or use --region)") from None
        region = _LOCAL_REGION
    provider = _LocalFallback(args.profile, local=local, console=console)
    config = ClientConfig(max_connections=max(args.concurrency, ClientConfig().max_connections))
    try:
        client = PersonalizeEventsClient(
            region=region, credentials=provider, profile=args.profile, endpoint_url=args.endpoint_url, config=config
        )
    except ValidationError as exc:
        raise _UsageError(f"--{exc.path.replace('_', '-')}: {exc.message}") from None
    try:
        await client.open()  # resolves the endpoint: a malformed region is a usage error, found now
        await provider.resolve()  # and missing credentials too, before any line is read
    except (ValidationError, NoCredentialsError) as exc:
        await client.close()
        if isinstance(exc, ValidationError):
            raise _UsageError(f"--{exc.path.replace('_', '-')}: {exc.message}") from None
        raise _UsageError(str(exc)) from None
    except BaseException:
        await client.close()
        raise
    return client


def _open_input(name: str) -> tuple[IO[bytes], int | None]:
    if name == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = open(name, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise _UsageError(f"cannot open {name}: {exc.strerror or exc}") from None
    size: int | None = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode):
            size = info.st_size - (stream.tell() if stream.seekable() else 0)
    return stream, size


def _run_put(op: ops.Operation, args: argparse.Namespace) -> int:
    resource: str = getattr(args, op.resource_field)
    problem = _check_resource(op, resource)
    if problem is not None:
        print(f"error: --{op.resource_field.replace('_', '-')}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        stream, size = _open_input(args.file)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        try:
            failed = _FailedOut(args.failed_out)
        except OSError as exc:
            print(f"error: cannot write --failed-out {args.failed_out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            return asyncio.run(_put(op, args, resource, stream, size, failed))
        finally:
            failed.close()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


async def _put(
    op: ops.Operation, args: argparse.Namespace, resource: str, stream: IO[bytes], size: int | None, failed: _FailedOut
) -> int:
    started = time.perf_counter()
    unit = "events" if op is ops.PUT_EVENTS else "records"
    console = _Console(sys.stderr, progress=not args.no_progress, total_bytes=size, unit=unit)
    try:
        client: Any = None
        if not args.dry_run:
            try:
                client = await _make_client(args, console)
            except _UsageError as exc:
                console.say(f"error: {exc}")
                return EXIT_USAGE
        loop = asyncio.get_running_loop()
        feed = _LineFeed(stream, loop)
        rate = op.rate if args.rate is None else (args.rate or None)
        load = _Load(
            op,
            resource=resource,
            feed=feed,
            console=console,
            failed=failed,
            client=client,
            concurrency=args.concurrency,
            rate=rate,
        )
        with _signals(loop, load):
            if client is not None:
                async with client:
                    await _drive(load, feed)
            else:
                await _drive(load, feed)
    finally:
        console.close()
    seconds = time.perf_counter() - started
    console.say(_summary(load, failed, seconds))
    if load.exit_override is not None:
        return load.exit_override
    if load.stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    if load.stop_reason == "terminated":
        return _EXIT_TERMINATED
    return EXIT_FAILED if failed.count else EXIT_OK


async def _drive(load: _Load, feed: _LineFeed) -> None:
    feed.start()
    load.intake_task = asyncio.create_task(load.intake())
    await asyncio.wait([load.intake_task])
    task = load.intake_task
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        if not isinstance(error, _InputReadError):
            raise error  # type: ignore[misc]
        load.console.say(f"error: cannot read the input after line {feed.last_read}: {error}")
        load.exit_override = EXIT_USAGE
        load.unread_after = feed.last_read
        load.stop_reason = "the input could not be read"
        load.hurry.set()  # nothing more to read
    if load.stop_reason is not None:
        await load.wind_down()


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, load: _Load) -> Iterator[None]:
    installed: list[signal.Signals] = []
    for signum, reason in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")):
        try:
            loop.add_signal_handler(signum, load.stop, reason)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _summary(load: _Load, failed: _FailedOut, seconds: float) -> str:
    if failed.count and failed.path:
        where = f" (see {failed.path})"
    elif failed.count:
        where = " (not kept: use --failed-out PATH)"
    else:
        where = ""
    if load.dry_run:
        text = f"dry run: valid {load.valid}, invalid {failed.count}{where}, nothing sent, {seconds:.1f}s"
    else:
        text = f"sent {load.sent}, failed {failed.count}{where}, {load.calls} calls, {seconds:.1f}s"
    if load.stop_reason is not None:
        text = f"{load.stop_reason}: {text}"
    if load.unread_after is not None:
        text += f"; input not read after line {load.unread_after}"
    return text


def _run_emulator(args: argparse.Namespace) -> int:
    from .emulator.__main__ import run

    return run(args)


def _run_demo(args: argparse.Namespace) -> int:
    del args
    from ._demo import main as demo_main

    return demo_main()


# -- the parser ---------------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of calls per second") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a number of calls per second, at least 0")
    return value


_EXAMPLES: Final = {
    "PutEvents": '{"sessionId": "s1", "userId": "u1", "eventType": "click", "sentAt": 1700000000, "itemId": "i1"}',
    "PutItems": '{"itemId": "i1", "properties": {"GENRE": "drama"}}',
    "PutUsers": '{"userId": "u1", "properties": {"AGE": 33}}',
    "PutActions": '{"actionId": "a1", "properties": {"CATEGORY": "promo"}}',
    "PutActionInteractions": (
        '{"actionId": "a1", "sessionId": "s1", "userId": "u1", "eventType": "Taken", "timestamp": 1700000000}'
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one sub-command per operation, plus ``emulator`` and ``demo``."""
    parser = argparse.ArgumentParser(
        prog="aiopersonalize-events",
        description="Send JSON Lines to Amazon Personalize Events, serve the local emulator, or run the demo.",
        epilog="Exit status: 0 all accepted, 1 some not (see --failed-out), 2 usage or unreadable input, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for op in ops.OPERATIONS:
        resource_option = "--" + op.resource_field.replace("_", "-")
        what = "tracker" if op.resource_field == "tracking_id" else "dataset"
        sub = commands.add_parser(
            op.cli_name,
            help=f"send JSON Lines to {op.name}",
            description=f"Send JSON Lines, one {op.record.__name__} per line in the service's camelCase shape, "
            f"to {op.name} in calls of at most {op.records_per_call}."
            + (
                " Each line also carries its sessionId and optional userId; lines are grouped by them."
                if line_members(op)
                else ""
            ),
            epilog=f"example line: {_EXAMPLES.get(op.name, '')}",
        )
        sub.add_argument(
            resource_option,
            dest=op.resource_field,
            required=True,
            metavar="ID" if op.resource_field == "tracking_id" else "ARN",
            help=f"the {what} to send to",
        )
        sub.add_argument(
            "file", nargs="?", default="-", metavar="FILE", help="JSON Lines file, or - for stdin (default)"
        )
        sub.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile)")
        sub.add_argument("--profile", help="named profile of the shared AWS config and credentials files")
        sub.add_argument("--endpoint-url", metavar="URL", help="send to this endpoint (e.g. the emulator's URL)")
        sub.add_argument(
            "--concurrency", type=_positive_int, default=4, metavar="N", help="calls in flight at once (default: 4)"
        )
        quota = f"{op.rate:g}, the service quota" if op.rate else "unpaced"
        sub.add_argument(
            "--rate",
            type=_rate,
            default=None,
            metavar="R",
            help=f"calls per second at most, 0 for unpaced (default: {quota})",
        )
        sub.add_argument("--dry-run", action="store_true", help="validate only, send nothing (needs no credentials)")
        sub.add_argument(
            "--failed-out", metavar="PATH", help="write records not accepted to PATH as JSON Lines, with the reason"
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
        sub.set_defaults(handler=lambda args, op=op: _run_put(op, args))
    emulator = commands.add_parser(
        "emulator",
        help="serve the local Personalize Events emulator",
        description="Serve the local emulator until interrupted; prints its URL on stdout.",
    )
    from .emulator.__main__ import add_arguments

    add_arguments(emulator)
    emulator.set_defaults(handler=_run_emulator)
    demo = commands.add_parser(
        "demo",
        help="run the quick-start demo against the built-in emulator",
        description="Show every feature in about a screen, against an in-process emulator (no AWS account).",
    )
    demo.set_defaults(handler=_run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:  # outside the put-* runs, which handle SIGINT themselves
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
