"""One run of a ``put-*`` sub-command: intake, grouping, calls, stopping, and what the summary says.

Every line takes one path: the feed reads it, ``parse_line`` checks it once
and builds its record, the package's ``Grouper`` collects records into
batches (by ``sessionId``/``userId`` for events; the oldest group is cut
early when too many records are held), and each batch is one plain
``client.put_*`` call, at most ``concurrency`` at once, paced by the
``RateLimiter``. Each line ends in exactly one place: the service, or
``--failed-out`` with the reason, or, after a stop, among the lines the
summary says were not read.

Retries: the client retries each call (``--max-attempts``); the calls are
made by the package's one delivery engine (``_delivery``, as the recorder's
and the forwarder's are), at most ``concurrency`` at once, paced by the rate
limiter: a batch whose call still failed with a transient error (throttling,
5xx, a dropped connection, a timeout) is sent again after the policy's wait
(backoff with full jitter, or ``Retry-After``; its cost from the client-wide
budget), and with the budget empty it goes as a probe, one at a time. This
goes on while the run is not stopped, until ``--deadline`` when one is given;
a batch still failing then goes to ``--failed-out`` marked ``"retryable": true``.

Stopping: a signal (SIGINT, SIGTERM), a set-up error no other record can
escape (``error.fault`` is ``SETUP``: an unknown tracker or dataset, refused
credentials or permissions, no credentials), or an endpoint that could not be reached before any call was
answered (connection refused, DNS failure, connect timeout) stops intake at
once: nothing more is read or sent, what was read and not sent goes to
``--failed-out``, batches waiting to be retried are not sent, and calls in
flight may end (30 s at most; a second signal cuts that short). When
``--failed-out`` itself cannot be written, or the input cannot be read any
further, intake stops too, but what was read is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NamedTuple, TypeAlias

from .. import _operations as ops
from .._batching import AcquireLimit, Grouper, RateLimiter
from .._delivery import Delivery
from .._retry import RetryPolicy, wait_floor
from ..errors import ConnectTimeoutError, EndpointConnectionError, Fault, PersonalizeEventsError, ServiceError
from .console import Console
from .failed import FailedOut
from .feed import MAX_LINE_BYTES, InputReadError, Line, LineFeed
from .lines import LineError, as_input, line_members, parse_line, raw_record
from .status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE

__all__ = ["Run", "handle_signals"]

_MAX_HELD: Final = 10_000  # records held in partial groups before the oldest group is sent as it is
_GRACE_SECONDS: Final = 30.0  # after a stop, how long calls in flight may take to finish
_HALT_SECONDS: Final = 2.0  # after a stop, how long to wait for the reading thread to hand over
_PROBE_WAIT: Final = 1.0  # the least wait before a batch goes again as a probe (0 with set_testing(True))


class Held(NamedTuple):
    """A valid record waiting for its call, with its line number and the input bytes it took."""

    number: int
    size: int
    record: Any


Key: TypeAlias = "tuple[Any, ...]"


class Batch:
    """The records of one call: their request members (``key``), and whether a call of theirs is in flight."""

    __slots__ = ("flying", "held", "key")

    def __init__(self, key: Key, held: list[Held]) -> None:
        self.key = key
        self.held = held
        self.flying = False  # a call is at the service now (else: queued, or waiting to be sent again)

    def __iter__(self) -> Iterator[Any]:  # key, held = batch
        return iter((self.key, self.held))

    def __len__(self) -> int:
        return len(self.held)


class _Outcomes:
    """What the delivery engine tells the run about each batch."""

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    def sent(self, batch: Batch) -> None:
        run = self._run
        run.sent += len(batch.held)
        run.console.advance(len(batch.held), sum(h.size for h in batch.held))

    def refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self._run._refused(batch, error)

    def held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        self._run._held(batch, error)

    def unsent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        self._run._not_sent(batch, error)


def _lines_text(numbers: Sequence[int]) -> str:
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return f"{len(numbers)} records, lines {min(numbers)}-{max(numbers)}"


def _is_unreachable(error: PersonalizeEventsError) -> bool:
    """The endpoint could not be connected to: refused, no such host, or no answer to connecting."""
    return isinstance(error, (EndpointConnectionError, ConnectTimeoutError))


class Run:
    """One run: lines in, calls out, every record accounted for; ``client`` None for a dry run."""

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
    ) -> None:
        self.op = op
        self.resource = resource
        self.feed = feed
        self.console = console
        self.failed = failed
        failed.on_error = self._failed_out_failed
        self.dry_run = client is None
        self.members = line_members(op)
        self.call: Callable[..., Any] | None = getattr(client, op.snake_name) if client is not None else None
        self.policy: RetryPolicy | None = client.retry_policy if client is not None else None
        self.deadline_seconds = deadline
        if isinstance(rate, (int, float)):
            self.limiter: AcquireLimit | None = RateLimiter(rate) if rate else None
        else:
            self.limiter = rate  # a shared limiter (--rate-limiter), used as it is
        self.engine: Delivery[Batch] | None = None
        if self.policy is not None:
            self.engine = Delivery(
                self._send,
                _Outcomes(self),
                policy=self.policy,
                max_concurrency=concurrency,
                limiter=self.limiter,
                min_wait=wait_floor(_PROBE_WAIT),
                name=f"aiopersonalize-events {op.name}",
            )
        self.grouper: Grouper[Key, Held] = Grouper(op.records_per_call, max_records=_MAX_HELD)
        self.taken: deque[Line] = deque()  # read, not yet parsed
        self.ready: deque[Batch] = deque()  # cut from the grouper, waiting for room in the engine
        self.sent = self.valid = self.calls = 0
        self.retries = 0  # attempts after the first: the client's within a call, and batches sent again
        self.reached = False  # the service answered a call (accepted or refused): the endpoint is reachable
        self.stopping = False
        self.stop_reason: str | None = None  # why intake stopped at once (a signal, a fatal refusal)
        self.stop_retryable = True  # whether what a stop leaves unsent may succeed if sent again as it is
        self.end_reason: str | None = None  # why intake ended early, sending what it had read
        self.signal_status: int | None = None
        self.exit_override: int | None = None
        self.hurry = asyncio.Event()
        self.intake_task: asyncio.Task[None] | None = None

    async def go(self) -> None:
        """Read, check, group and send until the input ends or a stop; then settle everything."""
        if self.deadline_seconds is not None and self.engine is not None:  # no re-send after it
            self.engine.deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        self.feed.start()
        task = self.intake_task = asyncio.create_task(self._intake())
        await asyncio.wait([task])
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
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
                    await self._launch_ready()
            await asyncio.sleep(0)  # let the calls in flight run between pieces of input
        self.ready.extend(Batch(key, held) for key, held in self.grouper.cut())
        await self._launch_ready()
        if self.engine is not None:
            await self.engine.drain()

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

    # calls -----------------------------------------------------------------------------------------------------------

    async def _launch_ready(self) -> None:
        """Hand each ready batch to the engine, once it has room (so that intake waits for the calls)."""
        ready = self.ready
        engine = self.engine
        if engine is None:  # a dry run sends nothing
            return
        while ready:
            await engine.room()
            if self.stopping:
                return
            engine.submit(ready.popleft())

    async def _send(self, batch: Batch) -> None:
        """The engine's send: one call for a batch; the client's own retries are counted."""
        assert self.call is not None
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
            raise  # still flying: it is reported as interrupted while in flight
        except PersonalizeEventsError as exc:
            batch.flying = False
            self.retries += max(0, exc.attempts - 1)
            self.reached = self.reached or isinstance(exc, ServiceError)
            raise
        except BaseException:
            batch.flying = False
            raise
        batch.flying = False
        self.reached = True
        self.retries += getattr(meta, "retry_attempts", 0)

    def _held(self, batch: Batch, error: PersonalizeEventsError) -> None:
        """A batch will be sent again: count it; a set-up error, or an endpoint never reached, stops the run."""
        self.retries += 1
        if self.stopping:
            return
        if error.fault is Fault.SETUP:
            code = getattr(error, "code", None) or type(error).__name__
            self.console.problem("refused records", f"{_lines_text([h.number for h in batch.held])}: {error}")
            self.stop(f"stopped after {code}", retryable=False)
        elif _is_unreachable(error) and not self.reached:
            self.stop(f"stopped: the endpoint cannot be reached ({type(error).__name__})", retryable=True)

    def _not_sent(self, batch: Batch, error: PersonalizeEventsError | None) -> None:
        """The engine stopped, or the deadline passed, with ``batch`` unsent: to --failed-out with why."""
        if batch.flying:
            self._unsent(
                batch, "interrupted while in flight: the service may or may not have stored it", retryable=True
            )
        elif error is not None and (not self.stopping or error.fault is Fault.SETUP or _is_unreachable(error)):
            retryable = self.stop_retryable if self.stopping else True  # past --deadline: may succeed later
            self._unsent(batch, str(error), retryable=retryable)
        else:
            self._unsent(batch, f"not sent: {self.stop_reason or 'interrupted'}", retryable=self.stop_retryable)

    def _refused(self, batch: Batch, error: PersonalizeEventsError) -> None:
        key, held = batch
        reason = str(error)
        self.console.problem("refused records", f"{_lines_text([h.number for h in held])}: not accepted: {reason}")
        for h in held:
            self._keep(h.number, reason, as_input(self.op, key, h.record), retryable=error.retryable)
        self.console.advance(len(held), sum(h.size for h in held))

    def _unsent(self, batch: Batch, reason: str, *, retryable: bool) -> None:
        key, held = batch
        for h in held:
            self._keep(h.number, reason, as_input(self.op, key, h.record), retryable=retryable)
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
        self._keep(line.number, reason, record, text, retryable=self.stop_retryable and not line.partial)
        self.console.advance(1, line.size)

    # stopping --------------------------------------------------------------------------------------------------------

    def stop(self, reason: str, *, retryable: bool = True) -> None:
        """Stop intake at once (a signal, or an error every record would meet); the rest is settled by ``go``.

        ``retryable`` says whether the records left unsent may succeed when sent again as they are
        (after a signal or an unreachable endpoint, yes; after a 404 or 403, not without a change).
        Batches waiting to be sent again are not: they are cancelled at once.
        """
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        self.stop_retryable = retryable
        self.feed.stop()
        task = self.intake_task
        if task is not None and not task.done():
            task.cancel()
        if self.engine is not None:
            self.engine.halt()  # batches queued or waiting to be sent again: not sent, at once

    def on_signal(self, reason: str, status: int) -> None:
        """SIGINT or SIGTERM: the first stops intake; the next one stops waiting for the calls in flight."""
        if self.signal_status is None:
            self.signal_status = status
        if self.stopping:
            self.hurry.set()
            if self.engine is not None:
                self.engine.hurry()
            self.console.say("stopping now")
            return
        where = "goes to --failed-out" if self.failed.path else "is counted in the summary"
        flying = self.engine.in_flight if self.engine is not None else 0
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
        retryable = self.stop_retryable
        await self.feed.halt(_HALT_SECONDS)
        ready, self.ready = self.ready, deque()
        for batch in [*ready, *(Batch(key, held) for key, held in self.grouper.cut())]:
            self._unsent(batch, reason, retryable=retryable)
        taken, self.taken = self.taken, deque()
        for line in [*taken, *self.feed.drain()]:
            self._unread(line, reason)
        if self.engine is not None:
            if self.hurry.is_set():
                self.engine.hurry()
            await self.engine.stop(_GRACE_SECONDS)  # calls in flight may end; then they are cancelled

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
