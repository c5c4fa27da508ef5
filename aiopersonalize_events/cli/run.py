"""One run of a ``put-*`` sub-command: intake, grouping, calls, stopping, and what the summary says.

Every line takes one path: the feed reads it, ``parse_line`` checks it once
and builds its record, the package's ``Grouper`` collects records into
batches (by ``sessionId``/``userId`` for events; the oldest group is cut
early when too many records are held), and each batch is one plain
``client.put_*`` call, made by the package's delivery engine (``Delivery``,
the one the recorder drives): at most ``concurrency`` calls at once, each
paced by the ``RateLimiter``. Each line ends in exactly one place: the
service, or ``--failed-out`` with the reason, or, after a stop, among the
lines the summary says were not read.

What follows a failed call is the engine's rule, decided by the error's
``fault``; this module lists no status or code:

- the records are refused (``Fault.RECORDS``): they go to ``--failed-out``
  with the reason, ``"retryable": false``;
- it may pass (``Fault.TRANSIENT``: throttling, 5xx, a dropped connection, a
  timeout): the batch is sent again after the client's backoff (or
  ``Retry-After``), its cost taken from the client-wide retry budget; with
  the budget empty it waits and goes as the one probe in flight. This goes
  on until ``--deadline`` when one is given; a batch failing after it goes
  to ``--failed-out`` marked ``"retryable": true``;
- the set-up is wrong (``Fault.SETUP``: no credentials, credentials the
  service rejects, no permission, an unknown tracking id or dataset): the
  records are held, not failed, and one ERROR line says what to fix; intake
  pauses (nothing more is read or sent but the held batches, which probe
  again one at a time); once a call gets through, everything goes on. The
  hold lasts ``--setup-wait`` seconds (and never past ``--deadline``); then
  the run stops as after a signal, every record read and not sent goes to
  ``--failed-out`` with the error as its reason, ``"retryable": true``, and
  the exit status is 1.

Stopping: a signal (SIGINT, SIGTERM), a set-up error not fixed within
``--setup-wait``, or an endpoint that could not be reached before any call
was answered (connection refused, DNS failure, connect timeout) stops intake
at once: nothing more is read or sent, what was read and not sent goes to
``--failed-out``, batches waiting to be sent again are not sent, and calls in
flight may end (30 s at most; a second signal cuts that short). When
``--failed-out`` itself cannot be written, or the input cannot be read any
further, intake stops too, but what was read is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple, TypeAlias

from .. import _operations as ops
from .._batching import AcquireLimit, Grouper, RateLimiter
from .._delivery import Delivery
from .._retry import wait_floor
from ..errors import (
    ConnectTimeoutError,
    EndpointConnectionError,
    Fault,
    PersonalizeEventsError,
    ServiceError,
)
from .console import Console
from .failed import FailedOut
from .feed import MAX_LINE_BYTES, InputReadError, Line, LineFeed
from .lines import LineError, as_input, line_members, parse_line, raw_record
from .options import SETUP_WAIT_SECONDS
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE

__all__ = ["Run", "handle_signals"]

_MAX_HELD: Final = 10_000  # records held in partial groups before the oldest group is sent as it is
_GRACE_SECONDS: Final = 30.0  # after a stop, how long calls in flight may take to finish
_HALT_SECONDS: Final = 2.0  # after a stop, how long to wait for the reading thread to hand over
_PROBE_WAIT: Final = 1.0  # the least wait before a held batch (budget empty, set-up wrong) goes again as a probe


class Held(NamedTuple):
    """A valid record waiting for its call, with its line number and the input bytes it took."""

    number: int
    size: int
    record: Any


Key: TypeAlias = "tuple[Any, ...]"


class Batch:
    """The records of one call: their request members (``key``), and whether its call is at the service now."""

    __slots__ = ("flying", "held", "key")

    def __init__(self, key: Key, held: list[Held]) -> None:
        self.key = key
        self.held = held
        self.flying = False  # its call was made and has not ended: a stop may leave it stored or not

    def __iter__(self) -> Iterator[Any]:  # key, held = batch
        return iter((self.key, self.held))

    def __len__(self) -> int:
        return len(self.held)


def _lines_text(numbers: Sequence[int]) -> str:
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return f"{len(numbers)} records, lines {min(numbers)}-{max(numbers)}"


def _is_unreachable(error: PersonalizeEventsError) -> bool:
    """The endpoint could not be connected to: refused, no such host, or no answer to connecting."""
    return isinstance(error, (EndpointConnectionError, ConnectTimeoutError))


def _condition(error: PersonalizeEventsError) -> str:
    return str(getattr(error, "code", None) or type(error).__name__)


class _ConsoleLog(logging.Handler):
    """The engine's log lines at INFO and above, on the run's console (its set-up ERROR line, its recovery)."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.say(f"{record.levelname.lower()}: {record.getMessage()}")


class _Outcomes:
    """The engine's ``Outcomes`` for a run: each batch's end, handed to the run's own bookkeeping."""

    __slots__ = ("run",)

    def __init__(self, run: Run) -> None:
        self.run = run

    def sent(self, batch: Batch) -> None:
        self.run._on_sent(batch)

    def refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self.run._on_refused(batch, error)

    def held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self.run._on_held(batch, error)

    def unsent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        self.run._on_unsent(batch, error)


class Run:
    """One run: lines in, calls out, every record accounted for; ``client`` None for a dry run.

    ``deadline``: seconds after the start past which a failed batch is not
    sent again; ``setup_wait``: how long a set-up error may hold the records
    (intake paused) before the run stops.
    """

    def __init__(
        self,
        op: ops.Operation,
        *,
        resource: str,
        feed: LineFeed,
        console: Console,
        failed: FailedOut,
        client: Any,
        concurrency: int,
        rate: float | AcquireLimit | None,
        deadline: float | None = None,
        setup_wait: float = SETUP_WAIT_SECONDS,
    ) -> None:
        self.op = op
        self.resource = resource
        self.feed = feed
        self.console = console
        self.failed = failed
        failed.on_error = self._failed_out_failed
        self.dry_run = client is None
        self.members = line_members(op)
        self.call: Any = getattr(client, op.snake_name) if client is not None else None
        self.deadline_seconds = deadline
        self.setup_wait = setup_wait
        if isinstance(rate, (int, float)):
            limiter: AcquireLimit | None = RateLimiter(rate) if rate else None
        else:
            limiter = rate  # a shared limiter (--rate-limiter), used as it is
        self.log = logging.getLogger(f"aiopersonalize_events.cli.{op.snake_name}")
        self.log.propagate = False
        self.log.handlers[:] = [_ConsoleLog(console)]
        self.delivery: Delivery[Batch] | None = None
        if client is not None:
            self.delivery = Delivery(
                self._send, _Outcomes(self), policy=client.retry_policy, max_concurrency=concurrency,
                limiter=limiter, min_wait=wait_floor(_PROBE_WAIT), name=op.cli_name, logger=self.log,
            )  # fmt: skip
        self.grouper: Grouper[Key, Held] = Grouper(op.records_per_call, max_records=_MAX_HELD)
        self.taken: deque[Line] = deque()  # read, not yet parsed
        self.ready: deque[Batch] = deque()  # cut from the grouper, not yet given to the engine
        self.sent = self.valid = self.calls = 0
        self.retries = 0  # attempts after the first: the client's within a call, and batches sent again
        self.reached = False  # the service answered a call (accepted or refused): the endpoint is reachable
        self.stopping = False
        self.unreachable = False  # a call found the endpoint unreachable: the run stops, starting no other call
        self.stop_reason: str | None = None  # why intake stopped at once (a signal, a set-up error, no endpoint)
        self.end_reason: str | None = None  # why intake ended early, sending what it had read
        self.signal_status: int | None = None
        self.exit_override: int | None = None
        self.hurry = asyncio.Event()
        self.resumed = asyncio.Event()  # set when a set-up error is fixed (or the run stops): intake goes on
        self.setup_timer: asyncio.TimerHandle | None = None
        self.intake_task: asyncio.Task[None] | None = None

    async def go(self) -> None:
        """Read, check, group and send until the input ends or a stop; then settle everything."""
        if self.deadline_seconds is not None and self.delivery is not None:
            self.delivery.deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        self.feed.start()
        task = self.intake_task = asyncio.create_task(self._intake())
        await asyncio.wait([task])
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
        if self.setup_timer is not None:
            self.setup_timer.cancel()
        if self.stopping:
            await self._wind_down()

    # intake ----------------------------------------------------------------------------------------------------------

    async def _intake(self) -> None:
        feed = self.feed
        taken = self.taken
        while True:
            if not taken:
                try:
                    lines = await feed.take()
                except InputReadError as exc:
                    self._read_failed(exc)
                    break
                if lines is None:
                    break
                taken.extend(lines)
            while taken:
                self._take(taken.popleft())
                if self.ready:
                    await self._submit_ready()
            await asyncio.sleep(0)  # let the calls in flight run between pieces of input
        self.ready.extend(Batch(key, held) for key, held in self.grouper.cut())
        await self._submit_ready()
        if self.delivery is not None:
            await self.delivery.drain()

    def _take(self, line: Line) -> None:
        """Parse one line: count it (dry run), hold its record, or write it to --failed-out with the reason."""
        if line.partial:
            text = None if line.raw is None else line.raw.decode("utf-8", "replace")
            self._invalid(line, "only the start of this line was read: the input was stopped here", text, text)
            return
        if line.raw is None:
            self._invalid(line, f"line longer than {MAX_LINE_BYTES} bytes", None)
            return
        try:
            text = line.raw.decode("utf-8-sig" if line.number == 1 else "utf-8")
        except UnicodeDecodeError:
            shown = line.raw.decode("utf-8", "replace").rstrip("\r\n")
            self._invalid(line, "not UTF-8 text", shown, shown)
            return
        text = text.rstrip("\r\n")
        if not text.strip():
            self.console.advance(0, line.size)
            return
        try:
            parsed = parse_line(self.op, text, assign_event_id=not self.dry_run)
        except LineError as exc:
            self._invalid(line, exc.reason, exc.record, text)
            return
        if self.dry_run:
            self.valid += 1
            self.console.advance(1, line.size)
            return
        ready = self.grouper.add(parsed.members, Held(line.number, line.size, parsed.record))
        if ready:
            self.ready.extend(Batch(key, held) for key, held in ready)

    def _invalid(self, line: Line, reason: str, record: Any, text: str | None = None) -> None:
        self.console.problem("invalid lines", f"line {line.number}: {reason}")
        self._keep(line.number, reason, record, text, retryable=False)
        self.console.advance(1, line.size)

    def _keep(self, number: int, reason: str, record: Any, text: str | None = None, *, retryable: bool) -> None:
        if not self.failed.write(number, reason, record, text, retryable=retryable):
            self.console.problem("records not kept", f"line {number}: not kept (--failed-out failed): {reason}")

    # calls: the engine makes them and tells us how each batch ended (sent, refused, held, unsent) -----------------

    async def _submit_ready(self) -> None:
        """Give each ready batch to the engine when a call could start at once; paused while the set-up is wrong."""
        delivery = self.delivery
        ready = self.ready
        while ready and delivery is not None:
            while delivery.setup_errors and not self.stopping:
                self.resumed.clear()
                await self.resumed.wait()
            await delivery.room()
            if self.stopping or self.unreachable:
                return
            delivery.submit(ready.popleft())

    async def _send(self, batch: Batch) -> None:
        """One call for ``batch`` (the engine's ``send``): counted, and its request built here."""
        key, held = batch
        request: dict[str, Any] = {
            self.op.resource_field: self.resource,
            self.op.record_field: [h.record for h in held],
        }
        request.update(zip(self.members, key, strict=True))
        self.calls += 1
        batch.flying = True
        try:
            meta = await self.call(**request)
        except asyncio.CancelledError:
            raise  # still flying: the service may or may not have stored it
        except PersonalizeEventsError as error:
            batch.flying = False
            self.retries += max(0, error.attempts - 1)
            self.reached = self.reached or isinstance(error, ServiceError)
            raise
        batch.flying = False
        self.reached = True
        self.retries += getattr(meta, "retry_attempts", 0)

    def _on_sent(self, batch: Batch) -> None:
        """The engine: the service accepted ``batch``."""
        self.sent += len(batch)
        self.console.advance(len(batch), sum(h.size for h in batch.held))
        delivery = self.delivery
        if self.setup_timer is not None and delivery is not None and not delivery.setup_errors:
            self.setup_timer.cancel()  # fixed: calls get through again
            self.setup_timer = None
            self.resumed.set()

    def _on_refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """The engine: the service refused these records for good."""
        key, held = batch
        reason = str(error)
        self.console.problem("refused records", f"{_lines_text([h.number for h in held])}: not accepted: {reason}")
        for h in held:
            self._keep(h.number, reason, as_input(self.op, key, h.record), retryable=False)
        self.console.advance(len(held), sum(h.size for h in held))

    def _on_held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """The engine: ``batch`` will be sent again; a set-up error pauses intake, an endpoint never reached stops."""
        self.retries += 1
        if self.stopping:
            return
        loop = asyncio.get_running_loop()
        if _is_unreachable(error) and not self.reached:
            reason = f"stopped: the endpoint cannot be reached ({type(error).__name__})"
            self.unreachable = True  # no new call from now on (a slot this failure freed could start one first)
            loop.call_soon(self.stop, reason)  # not from inside the engine's own bookkeeping
        elif error.fault is Fault.SETUP and self.setup_timer is None:
            wait = self.setup_wait
            deadline = None if self.delivery is None else self.delivery.deadline
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - loop.time()))
            self.console.say(
                f"the run waits up to {wait:g}s for this to be fixed (--setup-wait), reading no more input "
                "meanwhile; then it stops and what was read and not sent is kept (Ctrl-C stops now)"
            )
            self.setup_timer = loop.call_later(wait, self._setup_not_fixed, error)

    def _on_unsent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        """The engine: it stopped (or the deadline passed) with ``batch`` not delivered."""
        if batch.flying:
            reason = "interrupted while in flight: the service may or may not have stored it"
        elif self.stopping and (error is None or error.fault is not Fault.SETUP):
            reason = f"not sent: {self.stop_reason or 'interrupted'}"
        elif error is not None and error.fix:
            reason = f"{error} (not sent: {self.stop_reason or 'past --deadline'}; to fix: {error.fix})"
        else:
            reason = str(error) if error is not None else "not sent"
        self._unsent(batch, reason)

    def _unsent(self, batch: Batch, reason: str) -> None:
        key, held = batch
        for h in held:
            self._keep(h.number, reason, as_input(self.op, key, h.record), retryable=True)
        self.console.advance(len(held), sum(h.size for h in held))

    def _unread(self, line: Line, reason: str) -> None:
        """A line read but not parsed when intake stopped: to --failed-out as it was read."""
        if line.raw is None:
            record: Any = None
            text = None
        else:
            text = line.raw.decode("utf-8-sig" if line.number == 1 else "utf-8", "replace").rstrip("\r\n")
            if not line.partial and not text.strip():
                self.console.advance(0, line.size)
                return
            record = text if line.partial else raw_record(text)
        if line.partial:
            reason += " (only the start of this line was read)"
        self._keep(line.number, reason, record, text, retryable=not line.partial)
        self.console.advance(1, line.size)

    # stopping --------------------------------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop intake at once (a signal, a set-up error not fixed in time, no endpoint); ``go`` settles the rest.

        What is left unsent may succeed when sent again as it is (after the
        set-up is fixed, for a set-up error): ``--failed-out`` marks it
        retryable. Batches waiting to be sent again are not: they are unsent now.
        """
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        self.resumed.set()
        self.feed.stop()
        task = self.intake_task
        if task is not None and not task.done():
            task.cancel()

    def _setup_not_fixed(self, error: PersonalizeEventsError) -> None:
        self.setup_timer = None
        delivery = self.delivery
        if delivery is not None and delivery.setup_errors:
            self.stop(f"stopped after {_condition(delivery.setup_errors[0])}")

    def on_signal(self, reason: str, status: int) -> None:
        """SIGINT or SIGTERM: the first stops intake; the next one stops waiting for the calls in flight."""
        if self.signal_status is None:
            self.signal_status = status
        if self.stopping:
            self.hurry.set()
            self.console.say("stopping now")
            return
        where = "goes to --failed-out" if self.failed.path else "is counted in the summary"
        flying = 0 if self.delivery is None else self.delivery.in_flight
        self.console.say(
            f"{reason}: reading no more input; finishing {flying} call(s) in flight; "
            f"what was read and not sent {where} (again to stop at once)"
        )
        self.stop(reason)

    def _failed_out_failed(self, error: str) -> None:
        self.console.say(
            f"error: cannot write --failed-out {self.failed.path}: {error}: reading no more input; "
            "sending what was read; records not accepted from now on are named here by line only"
        )
        self.end_reason = self.end_reason or "--failed-out could not be written"
        self.feed.stop()

    def _read_failed(self, error: InputReadError) -> None:
        self.console.say(f"error: cannot read the input after line {self.feed.lines_read}: {error}")
        self.end_reason = self.end_reason or "the input could not be read"
        self.exit_override = EXIT_USAGE

    async def _wind_down(self) -> None:
        """After a stop: nothing more is read; what was read and not sent is written; calls in flight end (bounded)."""
        reason = f"not sent: {self.stop_reason}"
        await self.feed.halt(_HALT_SECONDS)
        ready, self.ready = self.ready, deque()
        for batch in [*ready, *(Batch(key, held) for key, held in self.grouper.cut())]:
            self._unsent(batch, reason)
        taken, self.taken = self.taken, deque()
        for line in [*taken, *self.feed.drain()]:
            self._unread(line, reason)
        delivery = self.delivery
        if delivery is None:
            return
        stopping = asyncio.create_task(delivery.stop(_GRACE_SECONDS))  # waiting batches are unsent at once
        hurry = asyncio.create_task(self.hurry.wait())
        try:
            await asyncio.wait([stopping, hurry], return_when=asyncio.FIRST_COMPLETED)
            if not stopping.done():
                delivery.hurry()  # a second signal: cancel the calls in flight now
            await stopping
        finally:
            hurry.cancel()

    # the end ---------------------------------------------------------------------------------------------------------

    def summary(self, seconds: float) -> str:
        """The one-line summary: what was sent, failed, not kept and not read."""
        failed = self.failed
        if not failed.count or failed.path is None:
            where = ""
        elif failed.lost == failed.count:
            where = f" (not kept: cannot write {failed.path}: {failed.error})"
        elif failed.lost:
            where = f" (see {failed.path}; {failed.lost} not kept: cannot write it: {failed.error})"
        else:
            where = f" (see {failed.path})"
        if self.dry_run:
            text = f"dry run: valid {self.valid}, invalid {failed.count}{where}, nothing sent, {seconds:.1f}s"
        else:
            retried = f", {self.retries} retried" if self.retries else ""
            text = f"sent {self.sent}, failed {failed.count}{where}, {self.calls} calls{retried}, {seconds:.1f}s"
        reason = self.stop_reason or self.end_reason
        if reason is not None:
            text = f"{reason}: {text}"
        if not self.feed.at_end:
            text += f"; input not read from line {self.feed.lines_read + 1} on"
        return text

    def exit_status(self) -> int:
        """130/143 after a signal; 2 when the input could not be read; 1 when a record was not accepted; else 0."""
        if self.signal_status is not None:
            return self.signal_status
        if self.exit_override is not None:
            return self.exit_override
        return EXIT_FAILED if self.failed.count else EXIT_OK


@contextlib.contextmanager
def handle_signals(loop: asyncio.AbstractEventLoop, run: Run) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``run.on_signal`` while the run lasts (where the loop can: main thread, POSIX)."""
    installed: list[signal.Signals] = []
    for signum, reason, status in (
        (signal.SIGINT, "interrupted", EXIT_INTERRUPTED),
        (signal.SIGTERM, "terminated", EXIT_TERMINATED),
    ):
        try:
            loop.add_signal_handler(signum, run.on_signal, reason, status)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
