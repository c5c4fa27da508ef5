"""Chunking any number of records into calls of at most ten: the ``*_batched`` helpers.

``run_batched`` takes the records as a list, any iterable or an async
iterable, pulls them lazily (a stream is never materialised whole), cuts them
into calls of ``records_per_call``, runs at most ``max_concurrency`` calls at
once, paces them to ``requests_per_second`` when given, and reports what went
where in a ``BatchResult``. A list is checked whole before anything is sent;
in a stream, a record of the wrong type becomes a failure at its position and
the rest go on.

It is not driven by the delivery engine (``_delivery``), on purpose: it holds
nothing and sends nothing again after a call has ended. A call is retried
within the client's call (its attempts and the retry budget), and whatever it
could not deliver is handed back in ``BatchResult.failures`` with the error,
whose ``fault`` says whether sending it again can help; so there is no wait
between calls, no probe, no held batch and no deadline for the engine to keep.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Final, Generic, Protocol, TypeAlias, TypeVar

import attrs

from . import _limits as L
from . import _operations as ops
from ._validators import check_positive_int
from .errors import PersonalizeEventsError, ValidationError

__all__ = [
    "DEFAULT_RATE",
    "BatchError",
    "AcquireLimit",
    "BatchFailure",
    "BatchIncompleteError",
    "BatchResult",
    "Grouper",
    "Rate",
    "RateLimiter",
    "run_batched",
]

R = TypeVar("R")


class _ServiceRate(enum.Enum):
    """``DEFAULT_RATE``: pace calls at the operation's service quota (10/s for PutItems and PutUsers, others unpaced).

    The one value of this type is the default of every ``requests_per_second``
    option; pass a number for another rate, ``None`` for no pacing, or an object
    with ``async def acquire() -> None`` to share one limit between callers.
    """

    DEFAULT = "the operation's service quota"


DEFAULT_RATE: Final = _ServiceRate.DEFAULT
"""Pace calls at the operation's service quota (10/s for PutItems and PutUsers, unpaced for the others)."""

Rate: TypeAlias = "float | _ServiceRate | AcquireLimit | None"
"""A ``requests_per_second`` option: a number, ``None`` for no pacing, ``DEFAULT_RATE``, or a shared limiter."""


@attrs.frozen
class BatchFailure(Generic[R]):
    """Records that were not accepted, with the exception that says why.

    ``position`` is the index of the first of ``records`` in the input, so a
    caller can find them again; ``error`` is the ``ValidationError`` of a bad
    record or the error of the failed call (after the client's retries).
    """

    records: tuple[R, ...] = attrs.field(repr=lambda r: f"<{len(r)} records>")
    error: PersonalizeEventsError
    position: int


@attrs.frozen
class BatchResult(Generic[R]):
    """What a ``*_batched`` call did: records ``sent`` and accepted, ``calls`` made, and ``failures``.

    Records in ``failures`` were not accepted by the service (or not valid);
    nothing is dropped silently, so ``sent + sum(len(f.records))`` equals the
    number of records given.
    """

    sent: int
    calls: int
    failures: tuple[BatchFailure[R], ...] = ()

    @property
    def failed(self) -> int:
        """How many records are in ``failures``."""
        return sum(len(f.records) for f in self.failures)

    @property
    def ok(self) -> bool:
        """True when every record was accepted."""
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise ``BatchError`` (carrying this result) when any record failed."""
        if self.failures:
            raise BatchError(self)


class BatchError(PersonalizeEventsError):
    """Raised by ``BatchResult.raise_for_failures()``; ``result`` holds the failures and their records."""

    def __init__(self, result: BatchResult[Any]) -> None:
        self.result = result
        first = result.failures[0].error
        super().__init__(
            f"{result.failed} record(s) in {len(result.failures)} failure(s) were not accepted "
            f"({result.sent} sent in {result.calls} calls); first: {first}"
        )


class BatchIncompleteError(BatchError):
    """A ``*_batched`` call could not finish because its input failed (an async iterable raised).

    ``result`` says what was done before that: records sent, and records read
    but not sent (in ``failures``); records not yet read are in neither. The
    input's exception is ``__cause__``.
    """

    def __init__(self, result: BatchResult[Any], cause: BaseException) -> None:
        self.result = result
        PersonalizeEventsError.__init__(
            self,
            f"the input failed ({type(cause).__name__}) after {result.sent} record(s) were sent in "
            f"{result.calls} call(s); {result.failed} read but not sent",
        )


class AcquireLimit(Protocol):
    """A shared rate limit: anything with ``async def acquire()`` that returns when one more call may go."""

    async def acquire(self) -> None:
        """Wait until one more call is allowed, then take it."""


class RateLimiter:
    """Spaces calls to at most ``rate`` per second, allowing a burst of ``rate`` calls (a token bucket).

    ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValidationError("requests_per_second", "must be a positive number or None")
        self._rate = float(rate)
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def acquire(self) -> None:
        """Wait until one more call is allowed, then take it."""
        while True:
            now = self._now()
            if self._last is not None:
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self._rate)


K = TypeVar("K", bound=Hashable)

_NOTHING: Final[tuple[Any, ...]] = ()


class Grouper(Generic[K, R]):
    """Collects records into groups by key and cuts them into batches of at most ``size``.

    The one grouping component of the package: the recorder groups events by
    (session, user) with it and the command line groups input lines by the
    request members they share. ``add(key, record)`` returns the batches that
    are ready: the record's group when it reached ``size``, and, while more
    than ``max_records`` are held, the oldest groups cut early (so memory
    stays bounded however many keys there are). ``cut()`` empties it, oldest
    group first; ``pop_oldest()`` takes back the oldest record held (for a
    drop-oldest overflow policy). Nothing here awaits or does I/O.
    """

    __slots__ = ("_groups", "_held", "max_records", "size")

    def __init__(self, size: int = L.RECORDS_PER_CALL, *, max_records: int | None = None) -> None:
        self.size = size
        self.max_records = max_records
        self._groups: dict[K, list[R]] = {}
        self._held = 0

    def __len__(self) -> int:
        """The number of records held in open groups."""
        return self._held

    @property
    def groups(self) -> int:
        """The number of open groups."""
        return len(self._groups)

    def add(self, key: K, record: R) -> Sequence[tuple[K, list[R]]]:
        """Add ``record`` to the group of ``key``; return the batches that are now ready (usually none)."""
        groups = self._groups
        group = groups.get(key)
        if group is None:
            groups[key] = [record]
        else:
            group.append(record)
            if len(group) >= self.size:
                del groups[key]
                self._held -= len(group) - 1
                return ((key, group),)
        self._held += 1
        cap = self.max_records
        if cap is None or self._held <= cap:
            return _NOTHING
        ready: list[tuple[K, list[R]]] = []
        while self._held > cap:
            oldest = next(iter(groups))
            batch = groups.pop(oldest)
            self._held -= len(batch)
            ready.append((oldest, batch))
        return ready

    def cut(self) -> list[tuple[K, list[R]]]:
        """Remove and return every group, full or not, oldest first."""
        groups, self._groups = self._groups, {}
        self._held = 0
        return list(groups.items())

    def pop_oldest(self) -> tuple[K, R] | None:
        """Remove and return the oldest record held (of the oldest group), or None when empty."""
        if not self._groups:
            return None
        key = next(iter(self._groups))
        group = self._groups[key]
        record = group.pop(0)
        if not group:
            del self._groups[key]
        self._held -= 1
        return key, record


async def _aiter(records: Iterable[R] | AsyncIterable[R]) -> AsyncIterator[R]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


def _check_record(op: ops.Operation, record: object, path: str) -> None:
    """A record must be of the operation's shape; the shape checked its members when it was made."""
    if type(record) is not op.record and not isinstance(record, op.record):
        article = "an" if op.record.__name__[0] in "AEIO" else "a"  # an Event, an Item, a User
        raise ValidationError(path, f"must be {article} {op.record.__name__}, not {type(record).__name__}")


def _limiter(op: ops.Operation, requests_per_second: Rate) -> AcquireLimit | None:
    if isinstance(requests_per_second, _ServiceRate):
        return RateLimiter(op.rate) if op.rate is not None else None
    if requests_per_second is None:
        return None
    if isinstance(requests_per_second, (int, float)) and not isinstance(requests_per_second, bool):
        return RateLimiter(requests_per_second)
    if not isinstance(requests_per_second, bool) and callable(getattr(requests_per_second, "acquire", None)):
        return requests_per_second
    raise ValidationError("requests_per_second", "must be a positive number, None, or an object with acquire()")


async def run_batched(
    invoke: Callable[[ops.Operation, Any], Awaitable[Any]],
    op: ops.Operation,
    fixed: dict[str, Any],
    records: Iterable[R] | AsyncIterable[R],
    *,
    max_concurrency: int = 4,
    requests_per_second: Rate = DEFAULT_RATE,
) -> BatchResult[R]:
    """Send ``records`` through ``invoke`` in calls of at most ``op.records_per_call``.

    ``fixed`` holds the request's other members (``tracking_id``, ...). Each
    record is checked once (its type: its members were checked when it was
    made) and each call's request is built once, before that call; a list is
    checked whole before anything is sent, and a bad fixed member fails with
    the first request, before any I/O. Every record given ends in ``sent`` or
    in ``failures``, whatever exception a call raises. When the input itself
    fails (an async iterable raises), ``BatchIncompleteError`` carries what
    was done. Cancelling this coroutine cancels the calls in flight and waits
    for them to end.
    """
    check_positive_int("max_concurrency", max_concurrency)
    calls: _Calls[R] = _Calls(invoke, op, fixed, max_concurrency, _limiter(op, requests_per_second))
    checked = False
    if isinstance(records, Sequence):
        for i, record in enumerate(records):
            _check_record(op, record, f"{op.record_field}[{i}]")
        checked = True
        if records:
            calls.first_request = calls.request(records[: op.records_per_call])  # checks the fixed members too
    try:
        await _cut_and_send(calls, records, checked)
        await _all_done(calls.tasks)
    finally:
        await calls.cancel()
    return calls.result()


async def _cut_and_send(calls: _Calls[R], records: Iterable[R] | AsyncIterable[R], checked: bool) -> None:
    """Pull ``records`` lazily, cut them into chunks of ``records_per_call`` and launch each; a record of the
    wrong type in a stream (not ``checked``) fails at its position, and a failing input ends the run with
    ``BatchIncompleteError`` once the calls started have ended."""
    size = calls.op.records_per_call
    field = calls.op.record_field
    chunk: list[R] = []
    start = 0
    index = -1
    try:
        async for record in _aiter(records):
            index += 1
            if not checked:
                try:
                    _check_record(calls.op, record, f"{field}[{index}]")
                except ValidationError as error:
                    calls.failures.append(BatchFailure((record,), error, index))
                    continue
            if not chunk:
                start = index
            chunk.append(record)
            if len(chunk) == size:
                full, chunk = chunk, []
                await calls.launch(full, start)
    except (ValidationError, asyncio.CancelledError):
        raise
    except Exception as exc:  # the input failed: finish what was started, then say what was done
        await _all_done(calls.tasks)
        if chunk:
            reason = PersonalizeEventsError(f"not sent: the input failed ({type(exc).__name__})")
            calls.failures.append(BatchFailure(tuple(chunk), reason, start))
        raise BatchIncompleteError(calls.result(), exc) from exc
    if chunk:
        await calls.launch(chunk, start)


class _Calls(Generic[R]):
    """The calls of one ``run_batched``: each chunk's request built once, sent within the concurrency bound and
    the rate limiter, its outcome counted (``sent``, ``calls``) or kept as a failure; never a record lost."""

    __slots__ = ("calls", "failures", "first_request", "fixed", "invoke", "limiter", "op", "sent", "slots", "tasks")

    def __init__(
        self,
        invoke: Callable[[ops.Operation, Any], Awaitable[Any]],
        op: ops.Operation,
        fixed: dict[str, Any],
        max_concurrency: int,
        limiter: AcquireLimit | None,
    ) -> None:
        self.invoke = invoke
        self.op = op
        self.fixed = fixed
        self.limiter = limiter
        self.first_request: Any = None  # a list's first request, built (and checked) before anything is sent
        self.failures: list[BatchFailure[R]] = []
        self.sent = 0
        self.calls = 0
        self.slots = asyncio.Semaphore(max_concurrency)
        self.tasks: set[asyncio.Task[None]] = set()

    def request(self, chunk: Sequence[R]) -> Any:
        """The request for ``chunk`` (the first one built checks the fixed members, before any I/O)."""
        return self.op.request(**self.fixed, **{self.op.record_field: chunk})

    async def launch(self, chunk: list[R], position: int) -> None:
        """Build the chunk's request, wait for a slot (and the limiter), then send it in a task of its own."""
        if self.first_request is not None:
            request, self.first_request = self.first_request, None
        else:
            request = self.request(chunk)
        await self.slots.acquire()
        if self.limiter is not None:
            try:
                await self.limiter.acquire()
            except BaseException:
                self.slots.release()
                raise
        task = asyncio.create_task(self._send(request, chunk, position))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, request: Any, chunk: list[R], position: int) -> None:
        try:
            self.calls += 1
            await self.invoke(self.op, request)
            self.sent += len(chunk)
        except PersonalizeEventsError as error:
            self.failures.append(BatchFailure(tuple(chunk), error, position))
        except Exception as exc:  # a bug, a custom credential provider that raised: never lose the records
            unexpected = PersonalizeEventsError(f"the call failed unexpectedly: {type(exc).__name__}: {exc}")
            unexpected.__cause__ = exc
            self.failures.append(BatchFailure(tuple(chunk), unexpected, position))
        finally:
            self.slots.release()

    async def cancel(self) -> None:
        """Cancel the calls still in flight and wait for them to end."""
        if self.tasks:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def result(self) -> BatchResult[R]:
        """What was done so far, the failures in input order."""
        self.failures.sort(key=lambda f: f.position)
        return BatchResult(sent=self.sent, calls=self.calls, failures=tuple(self.failures))


async def _all_done(tasks: set[asyncio.Task[None]]) -> None:
    """Wait until every task in ``tasks`` has ended.

    The set loses a task in its done callback, one loop iteration after the
    task ended; and since Python 3.12 ``gather`` of tasks that have all ended
    returns without yielding to the loop. Waiting "while the set is not
    empty" could then spin forever without letting the callback run, so
    this looks at the tasks themselves.
    """
    while pending := [task for task in tasks if not task.done()]:
        await asyncio.gather(*pending)
